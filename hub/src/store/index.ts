// The hub's persistence: the records it keeps, one small interface per concern, and their two
// implementations: lmdb (one node, everything in one environment) and PostgreSQL (cluster mode,
// beside the node's lmdb spool and history).
export type {
  AuditStore,
  BatchStore,
  Claim,
  ClusterStore,
  CommandStore,
  DevicePage,
  DeviceQuery,
  HistoryBlock,
  HistoryHour,
  HistoryStore,
  HubStores,
  InsertOutcome,
  NodeRecord,
  RegistryStore,
  SessionOwner,
  SpoolStore,
  StorageEngine,
  StoredHistoryBlock,
  TwinStore,
} from './interfaces.js'
export { pageOf } from './interfaces.js'
export { openLmdbSpool, openLmdbStores, type LocalStore } from './lmdb/index.js'
export {
  migrate,
  openPostgresStores,
  POSTGRES_DEFAULTS,
  readMigrations,
  REGISTRY_CHANNEL,
  type PostgresStoresOptions,
  type PostgresTuning,
} from './pg/index.js'
export { ENVIRONMENT_OPTIONS, storeDir } from './lmdb/environment.js'
export { checkStore, readAtStartAsync, type StoreCheck } from './lmdb/store-check.js'
export {
  COMMAND_STATUSES,
  commandKey,
  zeroCounts,
  type AuditEntry,
  type BatchInfo,
  type CommandRecord,
  type CommandStatus,
  type DeviceKey,
  type DeviceRecord,
  type SpooledEntry,
  type SpoolEntry,
  type SpoolRun,
  type SpoolSlot,
  type TwinChange,
  type TwinRecord,
} from './records.js'
