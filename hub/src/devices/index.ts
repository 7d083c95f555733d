// Who is known and who is online: the registry (records, keys, last-seen times over a
// RegistryStore), the table of live sessions, and where sessions are (this node or, in cluster
// mode, any).
export type { DevicePage, DeviceQuery, DeviceKey, DeviceRecord } from '../store/index.js'
export { parseEd25519PublicKey, type IssuedSecret, type PublicKeyLookup } from './keys.js'
export { localPresence, type Presence, type SessionPlace } from './presence.js'
export { grantOf, previousKeyInGrace, Registry, revokedReason, type ListFilter, type NewDevice, type SessionGrant } from './registry.js'
export { Sessions, type Peer, type SessionHooks } from './sessions.js'
