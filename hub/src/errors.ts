/** Every error code the hub raises, each explained for users in docs/errors.md (a test holds the two together). */
export const HUB_ERROR_CODES = [
  'HUB_ERR_CONFIG',
  'HUB_ERR_UWS_FALLBACK',
  'HUB_ERR_LISTEN',
  'HUB_ERR_STORE',
  'HUB_ERR_STORE_UNAVAILABLE',
  'HUB_ERR_STORE_DAMAGED',
  'HUB_ERR_BACKUP',
  'HUB_ERR_TOKENS_FILE',
  'HUB_ERR_INFLUX',
  'HUB_ERR_DEAD_LETTER',
] as const

/** One of HUB_ERROR_CODES; branch on `err.code`, never on the message. */
export type HubErrorCode = (typeof HUB_ERROR_CODES)[number]

/** The hub's one error class: a closed set of codes, causes wrapped, never swallowed. */
export class HubError extends Error {
  override readonly name = 'HubError'
  constructor(
    readonly code: HubErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** Whether `err`, or an error in its chain of causes, is a HubError with `code`. */
export function hasCode(err: unknown, code: HubErrorCode): boolean {
  for (let at: unknown = err, depth = 0; at instanceof Error && depth < 16; at = at.cause, depth++) {
    if (at instanceof HubError && at.code === code) return true
  }
  return false
}
