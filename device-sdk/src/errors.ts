import type { NakReason, TwinRefusal } from './frames.js'

/**
 * Every failure the SDK reports, as a closed union of codes: branch on `err.code`, never on the message.
 * - `SDK_ERR_NAK`: the hub refused a frame (`nak`); it will not be stored and must not be resent.
 *   `reason` holds the hub's reason code.
 * - `SDK_ERR_CLOSED`: the client was closed (by `close()`) before the operation could finish.
 * - `SDK_ERR_QUEUE_FULL`: the offline queue has no room left for another reading (overflow `'reject'`),
 *   or 10,000 twin reports wait for the hub's answer already.
 * - `SDK_ERR_DROPPED`: a queued reading was dropped to make room for a newer one (overflow `'drop-oldest'`).
 * - `SDK_ERR_INVALID_READING`: a reading breaks the wire rules (docs/protocol.md) or does not fit in the
 *   hub's frame limit; it was never sent.
 * - `SDK_ERR_STORE`: the queue store failed to load, write or remove readings (the `cause` says why).
 * - `SDK_ERR_INVALID_OPTION`: an option or argument is missing, unknown or out of range.
 * - `SDK_ERR_HANDSHAKE`: a connect attempt failed before the hub's `hello` (network, HTTP status, timeout).
 * - `SDK_ERR_UNAUTHORIZED`: the hub refused the token (HTTP 401) or ended the session with 4003
 *   (device disabled, deleted or its key rotated); the client keeps retrying with backoff.
 * - `SDK_ERR_REPLACED`: the hub closed the session with 4001 because a newer session of the same
 *   device took over; the client stops reconnecting so two instances do not evict each other forever.
 * - `SDK_ERR_PROTOCOL`: the hub sent something the SDK cannot accept (a text frame, bytes that do not
 *   decode, a frame before `hello`), or a frame could not be encoded.
 * - `SDK_ERR_HUB`: the hub reported a protocol error with an `err` frame (the frame is the `cause`).
 * - `SDK_ERR_TOKEN`: a device token could not be signed (bad key, no WebCrypto, bad expiry).
 * - `SDK_ERR_COMMAND`: a command handler threw, or returned a result that is not JSON (the device
 *   answered `ok: false`).
 * - `SDK_ERR_ABORTED`: the caller's AbortSignal ended a wait (connect, send, sendBatch, flush, close,
 *   twin.report); what the call started goes on (see WaitOptions).
 * - `SDK_ERR_INVALID_REPORT`: a twin report breaks the twin rules (docs/twins.md: a JSON object, 8
 *   levels, keys of 1 to 128 bytes without `$`) or does not fit in the hub's frame limit; it was never sent.
 * - `SDK_ERR_REPORT_REFUSED`: the hub refused a twin report (`twa` with `e`); `reason` holds its code
 *   (`invalid`, `too_large`, `rate`). Nothing changed on the hub.
 */
export const SDK_ERROR_CODES = [
  'SDK_ERR_NAK',
  'SDK_ERR_CLOSED',
  'SDK_ERR_QUEUE_FULL',
  'SDK_ERR_DROPPED',
  'SDK_ERR_INVALID_READING',
  'SDK_ERR_STORE',
  'SDK_ERR_INVALID_OPTION',
  'SDK_ERR_HANDSHAKE',
  'SDK_ERR_UNAUTHORIZED',
  'SDK_ERR_REPLACED',
  'SDK_ERR_PROTOCOL',
  'SDK_ERR_HUB',
  'SDK_ERR_TOKEN',
  'SDK_ERR_COMMAND',
  'SDK_ERR_ABORTED',
  'SDK_ERR_INVALID_REPORT',
  'SDK_ERR_REPORT_REFUSED',
] as const

/** One of SDK_ERROR_CODES (each explained above and in docs/errors.md). */
export type SdkErrorCode = (typeof SDK_ERROR_CODES)[number]

/** Options of an SdkError: the `cause`, and for SDK_ERR_NAK and SDK_ERR_REPORT_REFUSED the hub's reason code. */
export interface SdkErrorOptions extends ErrorOptions {
  reason?: NakReason | TwinRefusal
}

/** The one error class of the SDK: `code` is stable, `message` is for humans, `cause` keeps what went wrong below. */
export class SdkError extends Error {
  override readonly name = 'SdkError'
  /**
   * Why the hub refused: for SDK_ERR_NAK the frame's nak reason (`invalid`, `rate`, `seq`,
   * `too_many`), for SDK_ERR_REPORT_REFUSED the twin report's (`invalid`, `too_large`, `rate`);
   * undefined otherwise.
   */
  readonly reason: NakReason | TwinRefusal | undefined

  constructor(
    readonly code: SdkErrorCode,
    message: string,
    options?: SdkErrorOptions,
  ) {
    super(message, options)
    this.reason = options?.reason
  }
}
