/**
 * Error codes of the console:
 * - `CONSOLE_ERR_HTTP`: the hub answered with an error status (`status`, and `apiCode` from its body).
 * - `CONSOLE_ERR_NETWORK`: no answer (the hub is down or unreachable).
 * - `CONSOLE_ERR_RESPONSE`: an answer the console cannot read (not the contract's shape).
 * - `CONSOLE_ERR_STREAM`: the event stream broke a bound or its framing.
 */
export type ConsoleErrorCode = 'CONSOLE_ERR_HTTP' | 'CONSOLE_ERR_NETWORK' | 'CONSOLE_ERR_RESPONSE' | 'CONSOLE_ERR_STREAM'

/** The console's one error class; branch on `code` (and `status`, `apiCode` for HTTP errors). */
export class ConsoleError extends Error {
  override readonly name = 'ConsoleError'
  constructor(
    readonly code: ConsoleErrorCode,
    message: string,
    /** HTTP status for `CONSOLE_ERR_HTTP`, else 0. */
    readonly status = 0,
    /** The REST error code (`{"error": code}`), when the hub gave one. */
    readonly apiCode = '',
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** Whether `err` is an HTTP error answer with `status`. */
export function isHttpStatus(err: unknown, status: number): boolean {
  return err instanceof ConsoleError && err.code === 'CONSOLE_ERR_HTTP' && err.status === status
}

/** A sentence for the operator: the hub's own message when it gave one. */
export function describeError(err: unknown): string {
  if (err instanceof ConsoleError) return err.message
  if (err instanceof Error) return err.message
  return String(err)
}
