// The audit trail of operators' acts (docs/rest.md), over an AuditStore.
export { AuditLog } from './audit-log.js'
export type { AuditEntry } from '../store/index.js'
