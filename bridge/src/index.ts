export { BRIDGE_ERROR_CODES, BridgeError, type BridgeErrorCode } from './errors.js'
export {
  COMMAND_FILTER,
  MAX_COMMAND_ID_LENGTH,
  TOPIC_ROOT,
  commandResultTopic,
  commandTopic,
  isAllowedFilter,
  isCommandId,
  isDeviceId,
  parseCommandTopic,
  statusTopic,
  telemetryTopic,
  twinTopic,
} from './topics.js'
export {
  MAX_COMMAND_PAYLOAD_BYTES,
  MAX_PAYLOAD_DEPTH,
  MQTT_FORMATS,
  getCodec,
  type Codec,
  type DecodeFailure,
  type DecodeResult,
  type MqttFormat,
} from './codec.js'
export { UPLINK_ACTOR, type Actor, type RefusalReason } from './acl.js'
export { SCOPES, isScope, scopeAllows, type Scope } from './scopes.js'
export { CUT_REASONS, DEFAULT_MAX_PACKET_BYTES, type ConnectionLimitsConfig, type CutReason } from './connection-limits.js'
export { createBroker } from './broker.js'
export {
  type Broker,
  type BrokerOptions,
  type BrokerStats,
  type CommandSource,
  type Disconnection,
  type Refusal,
  type StatusMessage,
  type TelemetryMessage,
} from './broker-api.js'
export { parseUplinkUrl, type UplinkTarget } from './uplink-url.js'
export { createUplink, type Uplink, type UplinkConfig, type UplinkOptions, type UplinkStats } from './uplink.js'
