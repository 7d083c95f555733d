// Who may do what: device tokens checked against the registry, the per-address failure limiter,
// operator tokens and their scopes (the scopes themselves are the bridge's, shared with its ACL).
export { scopeAllows, type Scope } from '@fleetgate/bridge'
export { DeviceAuthenticator, FAILURE_LIMIT_DEFAULTS, FailureLimiter, type DeviceAuthFailure, type DeviceAuthResult, type FailureLimitOptions } from './device-auth.js'
export { adminTokenPath, OperatorAuthenticator, readTokensFile, resolveAdminToken, tokenDigest, type AdminToken, type Operator } from './operator-auth.js'
