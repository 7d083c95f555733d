// The public API of @fleetgate/device-sdk: what a device program needs. The wire format as the hub
// and tools use it (codec, limits, frame checks, tokens, close codes) is `@fleetgate/device-sdk/wire`;
// the Node file queue store is `@fleetgate/device-sdk/node`.
export type { WaitOptions } from './abort.js'
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js'
export { UNKNOWN_COMMAND, type CommandContext, type CommandHandler } from './command-dispatcher.js'
export { DeviceClient } from './client.js'
export type { DeviceClientEvents } from './client-events.js'
export { TypedEmitter, type EventMap, type Listener } from './emitter.js'
export { SDK_ERROR_CODES, SdkError, type SdkErrorCode, type SdkErrorOptions } from './errors.js'
export {
  DEFAULT_MAX_QUEUED_READINGS,
  MAX_LINGER_MS,
  MAX_TOKEN_TTL_SEC,
  realClock,
  type Clock,
  type DeviceClientOptions,
  type OverflowPolicy,
} from './options.js'
export { MemoryQueueStore, type QueueStore, type StoredQueue, type StoredReading, type StoredReport } from './queue-store.js'
export type { SendOptions, TelemetryReading } from './reading.js'
export { PACING_JITTER_RESERVE_SEC } from './token-bucket.js'
// The frames a device program meets: `hello` (connect), `cmd` (the command event), `res` (sendFrame);
// twin documents and the hub's refusals of a report (client.twin).
export type { CommandFrame, HelloFrame, HubLimits, JsonValue, Metrics, NakReason, Reading, ResultFrame, Tags, TwinDocument, TwinRefusal } from './protocol.js'
export type { KeyType } from './token.js'
export type { AuthMode, WebSocketConstructor, WebSocketHandler, WebSocketLike } from './transport.js'
export type { DesiredTwin, DeviceTwin, DeviceTwinEvents } from './twin.js'
export { MAX_PENDING_REPORTS } from './twin-reports.js'
