// The public API of @fleetgate/device-sdk: everything a device, the hub or a tool imports.
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js'
export { MAX_CBOR_NESTING } from './cbor-scan.js'
export { UNKNOWN_COMMAND, type CommandContext, type CommandHandler } from './command-dispatcher.js'
export { DeviceClient } from './client.js'
export type { DeviceClientEvents } from './client-events.js'
export { TypedEmitter, type EventMap, type Listener } from './emitter.js'
export { SdkError, type SdkErrorCode, type SdkErrorOptions } from './errors.js'
export {
  DEFAULT_MAX_QUEUED_READINGS,
  MAX_LINGER_MS,
  MAX_TOKEN_TTL_SEC,
  realClock,
  type Clock,
  type DeviceClientOptions,
  type OverflowPolicy,
} from './options.js'
export { checkTags } from './frame-checks.js'
export { MemoryQueueStore, type QueueStore, type StoredQueue, type StoredReading } from './queue-store.js'
export type { SendOptions, TelemetryReading } from './reading.js'
export { PACING_JITTER_RESERVE_SEC, TokenBucket } from './token-bucket.js'
export {
  COMMAND_ID_PATTERN,
  DEVICE_ID_PATTERN,
  MAX_BATCH_READINGS,
  MAX_METRIC_TEXT_BYTES,
  MAX_METRICS,
  MAX_TAG_VALUE_BYTES,
  MAX_TAGS,
  MAX_TS_MS,
  METRIC_KEY_PATTERN,
  RESERVED_TAG_KEY,
  decodeDeviceFrame,
  decodeHubFrame,
  encodeFrame,
  nextStamp,
  utf8ByteLength,
  type AckFrame,
  type BatchFrame,
  type CommandFrame,
  type Decoded,
  type DecodeFailure,
  type DecodeFailureCode,
  type DeviceFrame,
  type ErrorFrame,
  type HelloFrame,
  type HubFrame,
  type HubLimits,
  type JsonValue,
  type Metrics,
  type NakFrame,
  type NakReason,
  type Reading,
  type ResultFrame,
  type Tags,
  type TelemetryFrame,
} from './protocol.js'
export {
  MAX_TOKEN_LENGTH,
  base64urlDecode,
  base64urlEncode,
  parseToken,
  signToken,
  type KeyType,
  type ParsedToken,
  type SignTokenOptions,
} from './token.js'
export {
  DEVICE_ENDPOINT_PATH,
  type AuthMode,
  type WebSocketConstructor,
  type WebSocketHandler,
  type WebSocketLike,
} from './transport.js'
