/**
 * docs/rest.md operator scopes, weakest first: `reader` reads (REST GETs, MQTT subscriptions),
 * `operator` also sends commands, `admin` may do everything. Defined here, where both the broker's
 * ACL and the hub's REST auth (the hub imports the bridge, never the reverse) reach them.
 */
export const SCOPES = ['reader', 'operator', 'admin'] as const

/** One of SCOPES. */
export type Scope = (typeof SCOPES)[number]

/** Whether a token of scope `have` may do what needs scope `need`. */
export function scopeAllows(have: Scope, need: Scope): boolean {
  return SCOPES.indexOf(have) >= SCOPES.indexOf(need)
}

/** Whether `value` names a scope. */
export function isScope(value: unknown): value is Scope {
  return SCOPES.some((scope) => scope === value)
}
