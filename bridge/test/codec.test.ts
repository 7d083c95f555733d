import { Decoder, Encoder } from 'cbor-x'
import { describe, expect, it } from 'vitest'
import { BridgeError, MAX_COMMAND_PAYLOAD_BYTES, getCodec, type DecodeFailure, type MqttFormat } from '@fleetgate/bridge'

const plainDecoder = new Decoder({ useRecords: false, mapsAsObjects: true })
const telemetry = { device: 'd1', seq: 7, readings: [{ ts: 1_700_000_000_000, m: { t: 21.5, n: 21, ok: true, s: 'x' }, g: { room: 'k' } }] }
const command = { id: 'c1', name: 'reboot', params: { delay: 5, list: [1, 'a', null, false], nested: { a: { b: [] } } }, ttlMs: 0 }

describe('codec: round trips', () => {
  it.each(['json', 'cbor'] as const)('%s: telemetry, status, command records round-trip exactly', (format) => {
    const codec = getCodec(format)
    for (const value of [telemetry, { device: 'd1', online: true, at: '2024-01-01T00:00:00.000Z' }, command, [], 'text', 0, -1.25, null]) {
      const decoded = codec.decode(codec.encode(value))
      expect(decoded).toEqual({ ok: true, value })
    }
  })

  it('json is UTF-8 JSON.stringify', () => {
    expect(getCodec('json').encode(telemetry).toString('utf8')).toBe(JSON.stringify(telemetry))
    expect(getCodec().format).toBe('json')
  })

  it('cbor is plain CBOR maps (no cbor-x records), readable by any decoder', () => {
    const bytes = getCodec('cbor').encode({ a: 1 })
    // a1 (map of 1) 61 61 ("a") 01
    expect(bytes.toString('hex')).toBe('a1616101')
    expect(plainDecoder.decode(getCodec('cbor').encode(telemetry))).toEqual(telemetry)
  })

  it.each(['json', 'cbor'] as const)('%s: an undefined property is left out, an undefined item is null', (format) => {
    const codec = getCodec(format)
    const value = { ts: 1, m: { t: 1 }, g: undefined, list: [1, undefined] }
    expect(codec.decode(codec.encode(value))).toEqual({ ok: true, value: { ts: 1, m: { t: 1 }, list: [1, null] } })
    if (format === 'cbor') expect(codec.encode(value).equals(codec.encode({ ts: 1, m: { t: 1 }, list: [1, null] }))).toBe(true)
  })

  it('cbor payloads stay intact while later messages are encoded', () => {
    const codec = getCodec('cbor')
    const first = codec.encode(telemetry)
    const copy = Buffer.from(first)
    for (let i = 0; i < 20_000; i++) codec.encode({ device: `d${i}`, seq: i, pad: 'x'.repeat(i % 300) })
    expect(first.equals(copy)).toBe(true)
  })
})

const hex = (h: string): Buffer => Buffer.from(h, 'hex')
const tooLarge = Buffer.alloc(MAX_COMMAND_PAYLOAD_BYTES + 1, 0x20)

describe('codec: bad payloads never throw', () => {
  it.each<[MqttFormat, string, Buffer, DecodeFailure]>([
    ['json', 'not JSON', Buffer.from('not json{'), 'malformed'],
    ['json', 'empty', Buffer.alloc(0), 'malformed'],
    ['json', 'invalid UTF-8', hex('22ff22'), 'malformed'],
    ['json', 'CBOR bytes', hex('a1616101'), 'malformed'],
    ['json', 'two values', Buffer.from('{} {}'), 'malformed'],
    ['json', 'over the size limit', tooLarge, 'too_large'],
    ['cbor', 'truncated map', hex('a161'), 'malformed'],
    ['cbor', 'trailing bytes', hex('a161610101'), 'malformed'],
    ['cbor', 'empty', Buffer.alloc(0), 'malformed'],
    ['cbor', 'a date (tag 1)', hex('c11a514b67b0'), 'not_json'],
    ['cbor', 'a byte string', hex('43010203'), 'not_json'],
    ['cbor', 'undefined', hex('f7'), 'not_json'],
    ['cbor', 'NaN', hex('f97e00'), 'not_json'],
    ['cbor', 'a byte string inside params', new Encoder({ useRecords: false }).encode({ name: 'x', params: Buffer.from([1]) }), 'not_json'],
    ['cbor', 'nested 100 deep', Buffer.concat([Buffer.alloc(100, 0x81), hex('01')]), 'not_json'],
    ['cbor', 'over the size limit', tooLarge, 'too_large'],
  ])('%s: %s -> %s', (format, _what, payload, reason) => {
    expect(getCodec(format).decode(payload)).toEqual({ ok: false, reason })
  })

  it('cbor: a __proto__ key does not change the prototype', () => {
    const payload = Buffer.concat([hex('a169'), Buffer.from('__proto__'), hex('a1617801')])
    const result = getCodec('cbor').decode(payload)
    expect(result.ok).toBe(true)
    expect(({} as Record<string, unknown>)['x']).toBeUndefined()
    if (result.ok) expect(Object.getPrototypeOf(result.value)).toBe(Object.prototype)
  })

  it('refuses an unknown format', () => {
    expect(() => getCodec('xml' as MqttFormat)).toThrow(BridgeError)
    expect(() => getCodec('xml' as MqttFormat)).toThrow(/FLEETGATE_MQTT_FORMAT/)
  })
})
