/** Every error code the bridge raises; branch on `err.code`, never on the message. */
export type BridgeErrorCode =
  /** An option or setting is invalid; the message names it (for the uplink: `FLEETGATE_MQTT_UPLINK`). */
  | 'BRIDGE_ERR_INVALID_OPTION'
  /** A publish call got an argument that cannot make a topic (a bad device id or command id). */
  | 'BRIDGE_ERR_INVALID_ARGUMENT'
  /** The uplink could not connect, subscribe or publish; reported through `onError`, never thrown. */
  | 'BRIDGE_ERR_UPLINK'
  /** A hub callback (`onCommand`, `onInvalidCommand`, `authenticate`) threw; reported through `onError`. */
  | 'BRIDGE_ERR_HANDLER'
  /** aedes reported an internal error (its `error` event); reported through `onError`. */
  | 'BRIDGE_ERR_BROKER'

/** The bridge's one error class: a closed set of codes, causes wrapped, never swallowed. */
export class BridgeError extends Error {
  override readonly name = 'BridgeError'
  constructor(
    readonly code: BridgeErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** Wraps anything thrown into an `Error` so it can be a `cause`. */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
