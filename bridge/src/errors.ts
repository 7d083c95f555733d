/**
 * Every error code the bridge raises, each explained for users in docs/errors.md:
 * - `BRIDGE_ERR_INVALID_OPTION`: an option or setting is invalid; the message names it (for the uplink: `FLEETGATE_MQTT_UPLINK`);
 * - `BRIDGE_ERR_INVALID_ARGUMENT`: a publish call got an argument that cannot make a topic (a bad device id or command id);
 * - `BRIDGE_ERR_UPLINK`: the uplink could not connect, subscribe or publish; reported through `onError`, never thrown;
 * - `BRIDGE_ERR_HANDLER`: a hub callback (`onCommand`, `onInvalidCommand`, `authenticate`) threw; reported through `onError`;
 * - `BRIDGE_ERR_BROKER`: aedes reported an internal error (its `error` event); reported through `onError`.
 */
export const BRIDGE_ERROR_CODES = [
  'BRIDGE_ERR_INVALID_OPTION',
  'BRIDGE_ERR_INVALID_ARGUMENT',
  'BRIDGE_ERR_UPLINK',
  'BRIDGE_ERR_HANDLER',
  'BRIDGE_ERR_BROKER',
] as const

/** One of BRIDGE_ERROR_CODES; branch on `err.code`, never on the message. */
export type BridgeErrorCode = (typeof BRIDGE_ERROR_CODES)[number]

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
