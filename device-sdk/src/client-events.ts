// The events a DeviceClient emits, one typed map (STYLE: Names).
import type { SdkError } from './errors.js'
import type { CommandFrame, HelloFrame } from './frames.js'

/** Events of a DeviceClient, with their listener arguments. */
export type DeviceClientEvents = {
  /** A session is open: the hub's `hello`. */
  connected: [HelloFrame]
  /** A session that had emitted `connected` ended, with the WebSocket close code and reason. */
  disconnected: [{ code: number; reason: string }]
  /** The next attempt starts in `delayMs` ms; `attempt` counts from 1 since the backoff was last reset. */
  reconnecting: [{ attempt: number; delayMs: number }]
  /** Something went wrong; the client carries on (reconnecting) unless the error says otherwise. */
  error: [SdkError]
  /** A command from the hub, as it arrives; handle() answers it. */
  command: [CommandFrame]
}
