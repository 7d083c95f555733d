// The hub's persistence: the records it keeps, one small interface per concern, and the lmdb
// implementation that opens them all from one environment.
export type {
  AuditStore,
  BatchStore,
  CommandStore,
  DevicePage,
  DeviceQuery,
  HistoryBlock,
  HistoryHour,
  HistoryStore,
  HubStores,
  RegistryStore,
  SpoolStore,
  StoredHistoryBlock,
} from './interfaces.js'
export { openLmdbStores } from './lmdb/index.js'
export { ENVIRONMENT_OPTIONS, storeDir } from './lmdb/environment.js'
export { checkStore, readAtStartAsync, type StoreCheck } from './lmdb/store-check.js'
export {
  COMMAND_STATUSES,
  type AuditEntry,
  type BatchInfo,
  type CommandRecord,
  type CommandStatus,
  type DeviceKey,
  type DeviceRecord,
  type SpooledEntry,
  type SpoolEntry,
  type SpoolSlot,
} from './records.js'
