import { describe, expect, it } from 'vitest'
import { BridgeError, parseUplinkUrl } from '@fleetgate/bridge'

describe('parseUplinkUrl (FLEETGATE_MQTT_UPLINK)', () => {
  it.each([
    ['mqtt://user:pass@broker.example:1884', { protocol: 'mqtt', host: 'broker.example', port: 1884, username: 'user', password: 'pass', redacted: 'mqtt://user:***@broker.example:1884' }],
    ['mqtt://broker.example', { protocol: 'mqtt', host: 'broker.example', port: 1883, username: undefined, password: undefined, redacted: 'mqtt://broker.example:1883' }],
    ['mqtts://u@10.0.0.1/', { protocol: 'mqtts', host: '10.0.0.1', port: 8883, username: 'u', password: undefined, redacted: 'mqtts://u@10.0.0.1:8883' }],
    ['mqtt://h%40b:p%3Aw%2Fd%23@[::1]:1', { protocol: 'mqtt', host: '::1', port: 1, username: 'h@b', password: 'p:w/d#', redacted: 'mqtt://h%40b:***@[::1]:1' }],
    ['mqtt://u:p@h:65535', { protocol: 'mqtt', host: 'h', port: 65535, username: 'u', password: 'p', redacted: 'mqtt://u:***@h:65535' }],
  ])('%s', (url, expected) => {
    expect(parseUplinkUrl(url)).toEqual(expected)
  })

  it.each([
    ['', 'empty'],
    [' mqtt://h', 'spaces'],
    ['broker:1883', 'scheme'],
    ['http://u:secret@h:1883', 'scheme'],
    ['ws://h', 'scheme'],
    ['mqtt:h', 'no host'],
    ['mqtt:///h', 'no host'],
    ['mqtt://h:0', 'port'],
    ['mqtt://h:', 'empty port'],
    ['mqtt://h:70000', 'not a URL'],
    ['mqtt://h:12ab', 'not a URL'],
    ['mqtt://u:secret@h/topic', 'path'],
    ['mqtt://h?clientId=x', 'query'],
    ['mqtt://h#frag', 'fragment'],
    ['mqtt://h#', 'fragment'],
    ['mqtt://:secret@h', 'needs a user name'],
    ['mqtt://u:secret%zz@h', 'percent-encoding'],
  ])('refuses %j (%s), naming the variable and never echoing the password', (url, why) => {
    let error: unknown
    try {
      parseUplinkUrl(url)
    } catch (err) {
      error = err
    }
    if (!(error instanceof BridgeError)) throw new Error(`expected a BridgeError, got ${String(error)}`)
    expect(error.code).toBe('BRIDGE_ERR_INVALID_OPTION')
    expect(error.message).toContain('FLEETGATE_MQTT_UPLINK')
    expect(error.message).toContain(why)
    expect(error.message).not.toContain('secret')
  })
})
