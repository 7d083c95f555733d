import { describe, expect, it } from 'vitest'
import {
  BridgeError,
  commandResultTopic,
  commandTopic,
  isAllowedFilter,
  isCommandId,
  parseCommandTopic,
  statusTopic,
  telemetryTopic,
  twinTopic,
} from '@fleetgate/bridge'
import { matchesFilter } from '../src/topics.js'

const id64 = 'a'.repeat(64)

describe('topic names (docs/mqtt.md)', () => {
  it.each([
    ['d1', 'fleetgate/devices/d1/telemetry', 'fleetgate/devices/d1/status', 'fleetgate/devices/d1/commands'],
    ['A_b-9', 'fleetgate/devices/A_b-9/telemetry', 'fleetgate/devices/A_b-9/status', 'fleetgate/devices/A_b-9/commands'],
    [id64, `fleetgate/devices/${id64}/telemetry`, `fleetgate/devices/${id64}/status`, `fleetgate/devices/${id64}/commands`],
  ])('device %s', (id, telemetry, status, commands) => {
    expect(telemetryTopic(id)).toBe(telemetry)
    expect(statusTopic(id)).toBe(status)
    expect(commandTopic(id)).toBe(commands)
    expect(commandResultTopic(id, 'c-1')).toBe(`${commands}/c-1`)
    expect(twinTopic(id)).toBe(`fleetgate/devices/${id}/twin`)
  })

  it.each(['', 'a/b', 'a+b', 'a#', 'a b', 'ä', 'a'.repeat(65), '$SYS'])('refuses device id %j', (id) => {
    for (const make of [telemetryTopic, statusTopic, twinTopic, commandTopic, (d: string) => commandResultTopic(d, 'c1')]) {
      expect(() => make(id)).toThrow(BridgeError)
      expect(() => make(id)).toThrow(expect.objectContaining({ code: 'BRIDGE_ERR_INVALID_ARGUMENT' }))
    }
  })

  it.each([
    ['c1', true],
    ['0b7f9c7e-3a5d-4c9e-9d1c-2a4f5e6b7c8d', true],
    ['order:42.retry', true],
    ['x'.repeat(128), true],
    ['', false],
    ['x'.repeat(129), false],
    ['a/b', false],
    ['a+', false],
    ['#', false],
    ['$x', false],
    ['a\u0000b', false],
  ])('command id %j usable: %s', (id, ok) => {
    expect(isCommandId(id)).toBe(ok)
    if (ok) expect(commandResultTopic('d1', id)).toBe(`fleetgate/devices/d1/commands/${id}`)
    else expect(() => commandResultTopic('d1', id)).toThrow(expect.objectContaining({ code: 'BRIDGE_ERR_INVALID_ARGUMENT' }))
  })
})

describe('parseCommandTopic', () => {
  it.each([
    ['fleetgate/devices/d1/commands', 'd1'],
    ['fleetgate/devices/A_b-9/commands', 'A_b-9'],
    [`fleetgate/devices/${id64}/commands`, id64],
    ['fleetgate/devices//commands', undefined],
    ['fleetgate/devices/+/commands', undefined],
    ['fleetgate/devices/#', undefined],
    ['fleetgate/devices/d1/commands/c1', undefined],
    ['fleetgate/devices/d1/telemetry', undefined],
    ['fleetgate/devices/a/b/commands', undefined],
    ['fleetgate/devices/d 1/commands', undefined],
    [`fleetgate/devices/${id64}x/commands`, undefined],
    ['/fleetgate/devices/d1/commands', undefined],
    ['fleetgate/devices/d1/commands/', undefined],
    ['Fleetgate/devices/d1/commands', undefined],
    ['fleetgate/device/d1/commands', undefined],
    ['', undefined],
  ])('%j -> %j', (topic, id) => {
    expect(parseCommandTopic(topic)).toBe(id)
  })
})

describe('isAllowedFilter', () => {
  it.each([
    ['fleetgate/#', true],
    ['fleetgate/devices/+/telemetry', true],
    ['fleetgate/devices/d1/status', true],
    ['fleetgate/devices/d1/commands/#', true],
    ['fleetgate', false],
    ['#', false],
    ['+/devices/d1/status', false],
    ['$SYS/#', false],
    ['$share/g/fleetgate/#', false],
    ['other/fleetgate/#', false],
    ['fleetgatex/#', false],
  ])('%j: %s', (filter, ok) => {
    expect(isAllowedFilter(filter)).toBe(ok)
  })
})

describe('matchesFilter (MQTT 3.1.1 §4.7)', () => {
  it.each([
    ['fleetgate/#', 'fleetgate/devices/d1/telemetry', true],
    ['fleetgate/#', 'fleetgate', true],
    ['fleetgate/devices/#', 'fleetgate/devices/d1/commands/c1', true],
    ['fleetgate/devices/d1/#', 'fleetgate/devices/d1', true],
    ['fleetgate/devices/d1/#', 'fleetgate/devices/d10/status', false],
    ['fleetgate/devices/+/telemetry', 'fleetgate/devices/d1/telemetry', true],
    ['fleetgate/devices/+/telemetry', 'fleetgate/devices/d1/status', false],
    ['fleetgate/devices/+/telemetry', 'fleetgate/devices/d1/telemetry/x', false],
    ['fleetgate/devices/+/telemetry', 'fleetgate/devices/telemetry', false],
    ['fleetgate/devices/+', 'fleetgate/devices', false],
    ['fleetgate/devices/+', 'fleetgate/devices/', true],
    ['fleetgate/+/+/commands/+', 'fleetgate/devices/d1/commands/c-7', true],
    ['fleetgate/+/+/commands/+', 'fleetgate/devices/d1/commands', false],
    ['fleetgate/devices/+/#', 'fleetgate/devices/d1', true],
    ['fleetgate/devices/d1/status', 'fleetgate/devices/d1/status', true],
    ['fleetgate/devices/d1/status', 'fleetgate/devices/d1/statuses', false],
    ['fleetgate/devices/d1/status', 'fleetgate/devices/d1', false],
    ['fleetgate/devices/d1', 'fleetgate/devices/d1/status', false],
    ['fleetgate/Devices/#', 'fleetgate/devices/d1/status', false],
  ])('%j matches %j: %s', (filter, topic, matches) => {
    expect(matchesFilter(filter, topic)).toBe(matches)
  })
})
