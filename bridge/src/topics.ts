import { DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import { BridgeError } from './errors.js'

/** The first topic level of everything the bridge publishes or accepts: `fleetgate`. */
export const TOPIC_ROOT = 'fleetgate'

/** The filter the uplink subscribes to on the external broker (QoS 1). */
export const COMMAND_FILTER = 'fleetgate/devices/+/commands'

const DEVICES_PREFIX = 'fleetgate/devices/'
const COMMANDS_SUFFIX = '/commands'

/** Whether `id` is a device id (docs/protocol.md). */
export function isDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id)
}

/** Longest command id accepted in a result topic, in UTF-16 code units: 128. */
export const MAX_COMMAND_ID_LENGTH = 128

/**
 * Whether `id` can be the last level of a result topic. The contract leaves the command id's
 * shape open (an idempotency key chosen by the operator), so this checks only what MQTT needs:
 * 1 to 128 characters, none of `/`, `+`, `#` or U+0000, and no leading `$` (MQTT 3.1.1 §4.7).
 */
export function isCommandId(id: string): boolean {
  return (
    id.length > 0 &&
    id.length <= MAX_COMMAND_ID_LENGTH &&
    id.charCodeAt(0) !== 0x24 &&
    !/[/+#\u0000]/.test(id)
  )
}

function device(deviceId: string): string {
  if (!DEVICE_ID_PATTERN.test(deviceId)) {
    throw new BridgeError('BRIDGE_ERR_INVALID_ARGUMENT', `not a device id (docs/protocol.md): ${JSON.stringify(deviceId.slice(0, 80))}`)
  }
  return DEVICES_PREFIX + deviceId
}

/** docs/mqtt.md: `fleetgate/devices/{id}/telemetry`; throws `BRIDGE_ERR_INVALID_ARGUMENT` for a bad id. */
export function telemetryTopic(deviceId: string): string {
  return device(deviceId) + '/telemetry'
}

/** docs/mqtt.md: `fleetgate/devices/{id}/status` (retained); throws `BRIDGE_ERR_INVALID_ARGUMENT` for a bad id. */
export function statusTopic(deviceId: string): string {
  return device(deviceId) + '/status'
}

/** docs/twins.md: `fleetgate/devices/{id}/twin` (retained); throws `BRIDGE_ERR_INVALID_ARGUMENT` for a bad id. */
export function twinTopic(deviceId: string): string {
  return device(deviceId) + '/twin'
}

/** docs/mqtt.md: `fleetgate/devices/{id}/commands`; throws `BRIDGE_ERR_INVALID_ARGUMENT` for a bad id. */
export function commandTopic(deviceId: string): string {
  return device(deviceId) + COMMANDS_SUFFIX
}

/** docs/mqtt.md: `fleetgate/devices/{id}/commands/{cmdId}`; throws `BRIDGE_ERR_INVALID_ARGUMENT` for a bad id. */
export function commandResultTopic(deviceId: string, cmdId: string): string {
  if (!isCommandId(cmdId)) {
    throw new BridgeError('BRIDGE_ERR_INVALID_ARGUMENT', `not a command id usable in a topic: ${JSON.stringify(cmdId.slice(0, 80))}`)
  }
  return device(deviceId) + COMMANDS_SUFFIX + '/' + cmdId
}

/**
 * The device id of a command topic `fleetgate/devices/{id}/commands`, or undefined for any other
 * topic (a result topic, a wildcard, a bad id, extra or missing levels).
 */
export function parseCommandTopic(topic: string): string | undefined {
  if (!topic.startsWith(DEVICES_PREFIX) || !topic.endsWith(COMMANDS_SUFFIX)) return undefined
  const id = topic.slice(DEVICES_PREFIX.length, topic.length - COMMANDS_SUFFIX.length)
  return DEVICE_ID_PATTERN.test(id) ? id : undefined
}

/**
 * Whether an operator may subscribe to `filter`: any filter whose first level is exactly
 * `fleetgate` and that has more levels (`fleetgate/#`, `fleetgate/devices/+/telemetry`).
 * `#`, `+/...`, `$SYS/...` and `$share/...` are refused. The syntax of the filter itself
 * (placement of `+` and `#`) is checked by aedes before this.
 */
export function isAllowedFilter(filter: string): boolean {
  return filter.startsWith(TOPIC_ROOT + '/')
}

/**
 * Whether the topic name `topic` matches the topic filter `filter` (MQTT 3.1.1 §4.7): `+` matches
 * exactly one level, `#` (last) matches the parent level and every level below it. Both are
 * assumed well-formed (aedes checks filters on SUBSCRIBE); `$` topics are not special here,
 * since the hub publishes none.
 */
export function matchesFilter(filter: string, topic: string): boolean {
  let f = 0
  let t = 0
  for (;;) {
    const fEnd = levelEnd(filter, f)
    const level = filter.slice(f, fEnd)
    if (level === '#') return true
    const tEnd = levelEnd(topic, t)
    if (level !== '+' && level !== topic.slice(t, tEnd)) return false
    const filterDone = fEnd === filter.length
    const topicDone = tEnd === topic.length
    if (topicDone) return filterDone || filter.slice(fEnd + 1) === '#'
    if (filterDone) return false
    f = fEnd + 1
    t = tEnd + 1
  }
}

function levelEnd(name: string, from: number): number {
  const slash = name.indexOf('/', from)
  return slash === -1 ? name.length : slash
}
