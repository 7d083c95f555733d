// The audit trail of operators' acts (CONTRACT §4), over an AuditStore.
export { AuditLog } from './audit-log.js'
export type { AuditEntry } from '../store/index.js'
