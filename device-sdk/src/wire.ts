// `@fleetgate/device-sdk/wire`: the wire format as the hub and tools use it (CONTRACT §2 and §3):
// the codec, its limits and patterns, the frame checks, device tokens, byte helpers and close
// codes. A device program needs none of it; `@fleetgate/device-sdk` is its API.
export { MAX_CBOR_NESTING, scanCbor } from './cbor-scan.js'
export { CloseCode } from './close-codes.js'
export { checkTags } from './frame-checks.js'
export {
  COMMAND_ID_PATTERN,
  DEVICE_ID_PATTERN,
  ERROR_FRAME_CODES,
  MAX_BATCH_READINGS,
  MAX_METRIC_TEXT_BYTES,
  MAX_METRICS,
  MAX_TAG_VALUE_BYTES,
  MAX_TAGS,
  MAX_TS_MS,
  METRIC_KEY_PATTERN,
  NAK_REASONS,
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
  type ErrorFrameCode,
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
export { TokenBucket } from './token-bucket.js'
export { DEVICE_ENDPOINT_PATH } from './transport.js'
