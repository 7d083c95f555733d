// Who is known and who is online: the registry (records, keys, last-seen times over a
// RegistryStore) and the table of live sessions.
export type { DevicePage, DeviceQuery, DeviceKey, DeviceRecord } from '../store/index.js'
export { parseEd25519PublicKey, type IssuedSecret, type PublicKeyLookup } from './keys.js'
export { previousKeyInGrace, Registry, type NewDevice } from './registry.js'
export { Sessions, type Peer, type SessionHooks } from './sessions.js'
