// Codec fixtures in the style of mqtt-packet's test.js: every good frame decodes, encodes and
// round-trips; every bad one yields its exact failure.
import { Decoder, Encoder } from 'cbor-x'
import { describe, expect, it } from 'vitest'
import { type Metrics, type Reading, type Tags, type TwinDocument } from '../src/index.js'
import {
  decodeDeviceFrame,
  decodeHubFrame,
  encodeFrame,
  MAX_BATCH_READINGS,
  MAX_TS_MS,
  utf8ByteLength,
  type DecodeFailure,
  type DeviceFrame,
  type HubFrame,
} from '../src/wire.js'

// Hostile and hand-shaped input: Map values let a test write keys such as __proto__ or 1.
const rawEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, variableMapSize: true, tagUint8Array: false })
const cbor = (value: unknown): Uint8Array => new Uint8Array(rawEncoder.encode(value))
const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'))
const genericDecoder = new Decoder({ mapsAsObjects: true, useRecords: false })
const withNumbers = (value: unknown): unknown => {
  if (typeof value === 'bigint') return Number(value)
  if (Array.isArray(value)) return value.map(withNumbers)
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withNumbers(v)]))
  return value
}
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts))

const metrics = (count: number): Metrics => Object.fromEntries(Array.from({ length: count }, (_, i) => [`m${i}`, i]))
const tags = (count: number): Tags => Object.fromEntries(Array.from({ length: count }, (_, i) => [`g${i}`, `v${i}`]))
/** `{key: {key: ... 1}}` with `levels` objects. */
const nested = (levels: number, key = 'a'): TwinDocument => {
  let value: TwinDocument = { [key]: 1 }
  for (let i = 1; i < levels; i++) value = { [key]: value }
  return value
}
const readings = (count: number): Reading[] => Array.from({ length: count }, (_, i) => ({ ts: 1_700_000_000_000 + i, m: { temp: 20 + i / 10 } }))

// Multi-byte text at the byte limits: é is 2 bytes, € 3, 😀 4 (a surrogate pair).
const text256 = 'é'.repeat(128)
const text257 = `${'é'.repeat(128)}a`
const emoji256 = '😀'.repeat(64)
const euro257 = `${'€'.repeat(85)}ab`
const tag128 = 'é'.repeat(64)
const tag129 = `${'é'.repeat(64)}a`

interface GoodDevice {
  name: string
  frame: DeviceFrame
  hex?: string
}

const goodDeviceFrames: GoodDevice[] = [
  { name: 'tm minimal', frame: { t: 'tm', s: 1, m: { a: 1 } }, hex: 'a3 6174 62746d 6173 01 616d a1 6161 01' },
  {
    name: 'tm with ts, tags and every value kind',
    frame: {
      t: 'tm',
      s: 9_007_199_254_740_991,
      ts: 1_700_000_000_123,
      m: { temp: 21.5, hum: 40, neg: -7, big: 5_000_000_000, low: -5_000_000_000, ok: true, off: false, state: 'idle', empty: '' },
      g: { site: 'lab-1', 'rack.no': '7' },
    },
  },
  { name: 'tm s 0 and ts 0', frame: { t: 'tm', s: 0, ts: 0, m: { a: 0 } } },
  { name: 'tm with the latest ts InfluxDB stores', frame: { t: 'tm', s: 1, ts: MAX_TS_MS, m: { a: 0 } } },
  { name: 'tb with readings at both ends of the ts range', frame: { t: 'tb', s: 1, r: [{ ts: 0, m: { a: 0 } }, { ts: MAX_TS_MS, m: { a: 1 } }] } },
  { name: 'tm with 64 metrics', frame: { t: 'tm', s: 2, m: metrics(64) } },
  { name: 'tm with 256-byte texts (2- and 4-byte UTF-8)', frame: { t: 'tm', s: 3, m: { a: text256, b: emoji256 } } },
  { name: 'tm with 16 tags and a 128-byte tag value', frame: { t: 'tm', s: 4, m: { a: 1 }, g: { ...tags(15), long: tag128 } } },
  { name: 'tm with an empty tags map', frame: { t: 'tm', s: 5, m: { a: 1 }, g: {} } },
  { name: 'tm with keys constructor and prototype', frame: { t: 'tm', s: 6, m: { constructor: 1, prototype: 2 }, g: { constructor: 'x' } } },
  { name: 'tm with a 64-character key', frame: { t: 'tm', s: 7, m: { [`_${'a'.repeat(63)}`]: 1 } } },
  { name: 'tb with 1 reading', frame: { t: 'tb', s: 10, r: [{ ts: 1, m: { a: 1 }, g: { k: 'v' } }] } },
  { name: 'tb with 500 readings', frame: { t: 'tb', s: 11, r: readings(MAX_BATCH_READINGS) } },
  { name: 'res ok with a JSON result', frame: { t: 'res', id: 'cmd-1.a_b', ok: true, r: { list: [1, 'two', null, true, { x: 1.5 }], n: -3 } } },
  { name: 'res failed with an error text', frame: { t: 'res', id: 'c', ok: false, e: 'no such valve' } },
  { name: 'res with a null result', frame: { t: 'res', id: 'c', ok: true, r: null } },
  { name: 'res with a text result', frame: { t: 'res', id: 'c', ok: true, r: 'done' } },
  { name: 'twr', frame: { t: 'twr', id: '1', p: { setpoint: 21.5 } }, hex: 'a3 6174 63747772 6269 64 6131 6170 a1 68736574706f696e74 fb4035800000000000' },
  { name: 'twr deleting, nesting and replacing', frame: { t: 'twr', id: 'report-7', p: { gone: null, fan: { speed: 3, modes: ['eco', null, 1] }, on: false } } },
  { name: 'twr with an empty patch', frame: { t: 'twr', id: 'x', p: {} } },
  { name: 'twr with a 64-character id of 4-byte characters', frame: { t: 'twr', id: '😀'.repeat(64), p: { a: 1 } } },
  { name: 'twr nesting 8 levels with 128-byte keys', frame: { t: 'twr', id: 'deep', p: nested(8, 'é'.repeat(64)) } },
  { name: 'twr with keys constructor and prototype', frame: { t: 'twr', id: 'k', p: { constructor: 1, prototype: { toString: 2 } } } },
]

interface GoodHub {
  name: string
  frame: HubFrame
  hex?: string
}

const goodHubFrames: GoodHub[] = [
  {
    name: 'hello',
    frame: { t: 'hello', dev: 'dev-1', now: 1_700_000_000_000, v: '0.1.0', lim: { frame: 65_536, batch: 500, rate: 100, window: 64 } },
  },
  { name: 'hello with a fractional rate', frame: { t: 'hello', dev: 'd', now: 0, v: '', lim: { frame: 1, batch: 1, rate: 0.5, window: 1 } } },
  { name: 'ack', frame: { t: 'ack', s: 1 }, hex: 'a2 6174 6361636b 6173 01' },
  { name: 'ack beyond 32 bits', frame: { t: 'ack', s: 2 ** 40 } },
  { name: 'nak invalid', frame: { t: 'nak', s: 7, e: 'invalid' } },
  { name: 'nak rate', frame: { t: 'nak', s: 7, e: 'rate' } },
  { name: 'nak seq', frame: { t: 'nak', s: 7, e: 'seq' }, hex: 'a3 6174 636e616b 6173 07 6165 63736571' },
  { name: 'nak too_many', frame: { t: 'nak', s: 7, e: 'too_many' } },
  { name: 'cmd minimal', frame: { t: 'cmd', id: 'c1', n: 'reboot' } },
  { name: 'cmd with params and deadline', frame: { t: 'cmd', id: 'c2', n: 'valve.set', p: { open: true, pct: 40, who: ['a'] }, exp: 1_700_000_010_000 } },
  { name: 'err', frame: { t: 'err', e: 'invalid', msg: 'frame 3 is not a map' } },
  { name: 'twd empty', frame: { t: 'twd', v: 0, d: {} }, hex: 'a3 6174 63747764 6176 00 6164 a0' },
  { name: 'twd with a document', frame: { t: 'twd', v: 12, d: { setpoint: 19, modes: ['eco', null], nested: { a: { b: true } } } } },
  { name: 'twd with a version beyond 32 bits', frame: { t: 'twd', v: 2 ** 40, d: { a: 'x' } } },
  { name: 'twa applied', frame: { t: 'twa', id: 'r1', v: 3 }, hex: 'a3 6174 63747761 6269 64 627231 6176 03' },
  { name: 'twa invalid', frame: { t: 'twa', id: 'r1', e: 'invalid' } },
  { name: 'twa too_large', frame: { t: 'twa', id: 'r1', e: 'too_large' } },
  { name: 'twa rate', frame: { t: 'twa', id: 'r1', e: 'rate' } },
]

describe('good device frames', () => {
  it.each(goodDeviceFrames)('$name: encodes, decodes and round-trips', ({ frame, hex: expected }) => {
    const bytes = encodeFrame(frame)
    if (expected !== undefined) expect(toHex(bytes)).toBe(expected.replace(/\s+/g, ''))
    expect(decodeDeviceFrame(bytes)).toStrictEqual({ ok: true, frame })
    // standard CBOR: a generic decoder reads the same map (64-bit integers come back as bigint)
    expect(withNumbers(genericDecoder.decode(bytes))).toStrictEqual(frame)
    // and the hub-side decoder does not take it
    expect(decodeHubFrame(bytes).ok).toBe(false)
  })
})

describe('good hub frames', () => {
  it.each(goodHubFrames)('$name: encodes, decodes and round-trips', ({ frame, hex: expected }) => {
    const bytes = encodeFrame(frame)
    if (expected !== undefined) expect(toHex(bytes)).toBe(expected.replace(/\s+/g, ''))
    expect(decodeHubFrame(bytes)).toStrictEqual({ ok: true, frame })
    expect(decodeDeviceFrame(bytes)).toMatchObject({ ok: false, code: 'unknown_type' })
  })
})

describe('encodeFrame', () => {
  it('writes integers beyond 32 bits as CBOR uint64, not float', () => {
    const bytes = encodeFrame({ t: 'hello', dev: 'd', now: 1_700_000_000_000, v: '1', lim: { frame: 1, batch: 1, rate: 1, window: 1 } })
    // now: 1b 0000018bcfe56800
    expect(toHex(bytes)).toContain('636e6f771b0000018bcfe56800')
  })

  it('writes a negative metric beyond 32 bits as a CBOR negative integer', () => {
    const bytes = encodeFrame({ t: 'tm', s: 1, m: { low: -5_000_000_000 } })
    // -5e9 = -1 - 4999999999 (0x12a05f1ff)
    expect(toHex(bytes)).toContain('636c6f773b000000012a05f1ff')
  })

  it('writes an ack\'s s as the shortest CBOR uint at every width, as a generic decoder reads it', () => {
    const heads: Array<[number, string]> = [
      [0, '00'],
      [23, '17'],
      [24, '1818'],
      [255, '18ff'],
      [256, '190100'],
      [65_535, '19ffff'],
      [65_536, '1a00010000'],
      [2 ** 32 - 1, '1affffffff'],
      [2 ** 32, '1b0000000100000000'],
      [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    ]
    for (const [s, head] of heads) {
      const bytes = encodeFrame({ t: 'ack', s })
      expect(toHex(bytes)).toBe(`a26174636163${'6b'}6173${head}`)
      expect(withNumbers(genericDecoder.decode(bytes))).toStrictEqual({ t: 'ack', s })
    }
  })

  it('refuses an ack whose s is no uint with SDK_ERR_PROTOCOL', () => {
    for (const s of [-1, 1.5, Number.NaN, 2 ** 53]) expect(() => encodeFrame({ t: 'ack', s })).toThrow(expect.objectContaining({ code: 'SDK_ERR_PROTOCOL' }))
  })

  it('leaves out undefined optional keys and keys the type does not have', () => {
    const frame = { t: 'tm', s: 1, ts: undefined, m: { a: 1 }, g: undefined, extra: 'x' } as unknown as DeviceFrame
    expect(toHex(encodeFrame(frame))).toBe('a3617462746d617301616da1616101')
  })

  it('refuses an unknown frame type with SDK_ERR_PROTOCOL', () => {
    expect(() => encodeFrame({ t: 'zz' } as unknown as DeviceFrame)).toThrowError(expect.objectContaining({ code: 'SDK_ERR_PROTOCOL' }))
  })

  it('does not change the frame it encodes', () => {
    const frame: DeviceFrame = { t: 'tm', s: 1, ts: 1_700_000_000_000, m: { big: 5_000_000_000 } }
    const copy = structuredClone(frame)
    encodeFrame(frame)
    expect(frame).toStrictEqual(copy)
  })
})

interface Bad {
  name: string
  bytes: Uint8Array
  code: DecodeFailure['code']
  s?: number
  id?: string
  t?: DecodeFailure['t']
  reason: string
}

const tm = (fields: Record<string, unknown>): Uint8Array => cbor({ t: 'tm', s: 5, ...fields })
const tmMetrics = (m: unknown): Uint8Array => cbor({ t: 'tm', s: 5, m })
const tmTags = (g: unknown): Uint8Array => cbor({ t: 'tm', s: 5, m: { a: 1 }, g })
const tb = (r: unknown): Uint8Array => cbor({ t: 'tb', s: 6, r })
const goodTm = encodeFrame({ t: 'tm', s: 1, m: { a: 1 } })

const badDeviceFrames: Bad[] = [
  // not CBOR
  { name: 'no bytes', bytes: new Uint8Array(0), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'a truncated map', bytes: hex('a2 6174 62746d'), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'a truncated text', bytes: hex('a1 6174 65 7461'), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'trailing bytes', bytes: concat(goodTm, hex('00')), code: 'not_cbor', reason: '1 trailing bytes after the data item' },
  { name: 'two data items', bytes: concat(goodTm, goodTm), code: 'not_cbor', reason: '15 trailing bytes after the data item' },
  { name: 'a lone break byte', bytes: hex('ff'), code: 'not_cbor', reason: 'unexpected break byte at offset 0' },
  { name: 'reserved additional information', bytes: hex('1c'), code: 'not_cbor', reason: 'reserved additional information 28 at offset 0' },
  { name: 'a 2^64-element array header', bytes: hex('9b ffffffffffffffff'), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'a 2^32-entry map header', bytes: hex('ba ffffffff 00'), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'nesting 100,000 deep', bytes: new Uint8Array(100_000).fill(0x81), code: 'not_cbor', reason: 'nested deeper than 32 levels' },
  { name: '100,000 nested tags', bytes: concat(new Uint8Array(100_000).fill(0xc0), hex('00')), code: 'not_cbor', reason: 'nested deeper than 32 levels' },
  { name: 'an indefinite-length text with a byte-string chunk', bytes: hex('7f 6161 4161 ff'), code: 'not_cbor', reason: 'a chunk of an indefinite-length string at offset 3 is not a definite-length string of the same type' },
  { name: 'an indefinite-length text in an indefinite-length text', bytes: hex('7f 7f 6161 ff ff'), code: 'not_cbor', reason: 'a chunk of an indefinite-length string at offset 1 is not a definite-length string of the same type' },
  { name: 'an integer in an indefinite-length byte string', bytes: hex('5f 01 ff'), code: 'not_cbor', reason: 'a chunk of an indefinite-length string at offset 1 is not a definite-length string of the same type' },
  { name: 'an indefinite-length text without its break', bytes: hex('a1 6174 7f 6274 6d'), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'a truncated chunk', bytes: hex('7f 6361 62 ff'), code: 'not_cbor', reason: 'unexpected end of data' },
  { name: 'an unassigned simple value', bytes: hex('f0'), code: 'not_cbor', reason: 'unsupported simple value at offset 0' },
  { name: 'a 9-byte bignum', bytes: hex('c2 49 010000000000000000'), code: 'not_cbor', reason: 'bignum over 64 bits' },
  { name: 'a shared reference (tag 28)', bytes: hex('d81c a0'), code: 'not_cbor', reason: 'unsupported CBOR tag 28' },
  { name: 'a cbor-x record (tag 0xdfff)', bytes: hex('d9dfff 83 19e000 81 6161 01'), code: 'not_cbor', reason: 'unsupported CBOR tag 57343' },
  // not a map
  { name: 'an array', bytes: cbor([{ t: 'tm' }]), code: 'not_map', reason: 'expected a CBOR map, got an array' },
  { name: 'a text', bytes: cbor('tm'), code: 'not_map', reason: 'expected a CBOR map, got text "tm"' },
  { name: 'a number', bytes: hex('01'), code: 'not_map', reason: 'expected a CBOR map, got 1' },
  { name: 'null', bytes: hex('f6'), code: 'not_map', reason: 'expected a CBOR map, got null' },
  { name: 'a byte string', bytes: hex('41 00'), code: 'not_map', reason: 'expected a CBOR map, got a byte string' },
  { name: 'an indefinite-length text', bytes: hex('7f 6174 616d ff'), code: 'not_map', reason: 'expected a CBOR map, got text "tm"' },
  // no known type
  { name: 'a map without t', bytes: cbor({ s: 1, m: { a: 1 } }), code: 'unknown_type', reason: 't: missing' },
  { name: 'an empty map', bytes: hex('a0'), code: 'unknown_type', reason: 't: missing' },
  { name: 'an unknown t', bytes: cbor({ t: 'tx', s: 1 }), code: 'unknown_type', reason: 't: expected tm, tb, res or twr, got "tx"' },
  { name: 'a hub type', bytes: cbor({ t: 'ack', s: 1 }), code: 'unknown_type', reason: 't: expected tm, tb, res or twr, got "ack"' },
  { name: 'a number t', bytes: cbor({ t: 1 }), code: 'unknown_type', reason: 't: expected tm, tb, res or twr, got 1' },
  // seq
  { name: 'tm without s', bytes: cbor({ t: 'tm', m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got nothing' },
  { name: 'negative s', bytes: tm({ s: -1, m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got -1' },
  { name: 'float s', bytes: tm({ s: 1.5, m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got 1.5' },
  { name: 'NaN s', bytes: tm({ s: Number.NaN, m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got NaN' },
  { name: 'text s', bytes: tm({ s: '1', m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got text "1"' },
  { name: 's of 2^53', bytes: tm({ s: 2n ** 53n, m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got 9007199254740992' },
  { name: 's of 2^64 - 1', bytes: tm({ s: 2n ** 64n - 1n, m: { a: 1 } }), code: 'invalid', reason: 's: expected an unsigned integer, got 18446744073709551615' },
  // ts
  { name: 'negative ts', bytes: tm({ ts: -1, m: { a: 1 } }), code: 'invalid', s: 5, reason: 'ts: expected an unsigned integer (Unix ms) up to 9223372036854, got -1' },
  { name: 'float ts', bytes: tm({ ts: 0.5, m: { a: 1 } }), code: 'invalid', s: 5, reason: 'ts: expected an unsigned integer (Unix ms) up to 9223372036854, got 0.5' },
  { name: 'null ts', bytes: tm({ ts: null, m: { a: 1 } }), code: 'invalid', s: 5, reason: 'ts: expected an unsigned integer (Unix ms) up to 9223372036854, got null' },
  { name: 'ts 1 ms past what InfluxDB stores', bytes: tm({ ts: MAX_TS_MS + 1, m: { a: 1 } }), code: 'invalid', s: 5, reason: 'ts: expected an unsigned integer (Unix ms) up to 9223372036854, got 9223372036855' },
  { name: 'ts of 2^53 - 1', bytes: tm({ ts: 2 ** 53 - 1, m: { a: 1 } }), code: 'invalid', s: 5, reason: 'ts: expected an unsigned integer (Unix ms) up to 9223372036854, got 9007199254740991' },
  // metrics
  { name: 'no metrics', bytes: tm({}), code: 'invalid', s: 5, reason: 'm: expected a map of 1 to 64 metrics, got nothing' },
  { name: 'metrics as an array', bytes: tmMetrics([1]), code: 'invalid', s: 5, reason: 'm: expected a map of 1 to 64 metrics, got an array' },
  { name: '0 metrics', bytes: tmMetrics({}), code: 'invalid', s: 5, reason: 'm: 0 metrics, expected 1 to 64' },
  { name: '65 metrics', bytes: tmMetrics(metrics(65)), code: 'invalid', s: 5, reason: 'm: 65 metrics, expected 1 to 64' },
  { name: 'NaN', bytes: tmMetrics({ temp: Number.NaN }), code: 'invalid', s: 5, reason: 'm.temp: not a finite number (NaN)' },
  { name: 'Infinity', bytes: tmMetrics({ temp: Number.POSITIVE_INFINITY }), code: 'invalid', s: 5, reason: 'm.temp: not a finite number (Infinity)' },
  { name: '-Infinity', bytes: tmMetrics({ temp: Number.NEGATIVE_INFINITY }), code: 'invalid', s: 5, reason: 'm.temp: not a finite number (-Infinity)' },
  { name: 'a NaN half float', bytes: hex('a3 6174 62746d 6173 05 616d a1 6161 f97e00'), code: 'invalid', s: 5, reason: 'm.a: not a finite number (NaN)' },
  { name: 'an integer beyond 2^53', bytes: tmMetrics({ n: 2n ** 60n }), code: 'invalid', s: 5, reason: 'm.n: integer 1152921504606846976 beyond ±(2^53 - 1)' },
  { name: '257 bytes of 2-byte text', bytes: tmMetrics({ a: text257 }), code: 'invalid', s: 5, reason: 'm.a: text of 257 bytes, at most 256' },
  { name: '257 bytes of 3-byte text', bytes: tmMetrics({ a: euro257 }), code: 'invalid', s: 5, reason: 'm.a: text of 257 bytes, at most 256' },
  { name: 'null value', bytes: tmMetrics({ a: null }), code: 'invalid', s: 5, reason: 'm.a: expected a finite number, a bool or text, got null' },
  { name: 'array value', bytes: tmMetrics({ a: [1] }), code: 'invalid', s: 5, reason: 'm.a: expected a finite number, a bool or text, got an array' },
  { name: 'map value', bytes: tmMetrics({ a: { b: 1 } }), code: 'invalid', s: 5, reason: 'm.a: expected a finite number, a bool or text, got a map' },
  { name: 'byte string value', bytes: tmMetrics({ a: new Uint8Array([1]) }), code: 'invalid', s: 5, reason: 'm.a: expected a finite number, a bool or text, got a byte string' },
  { name: 'date value (tag 1)', bytes: tmMetrics({ a: new Date(0) }), code: 'invalid', s: 5, reason: 'm.a: expected a finite number, a bool or text, got a tagged value' },
  { name: 'key starting with a digit', bytes: tmMetrics({ '1a': 1 }), code: 'invalid', s: 5, reason: 'm: bad key "1a", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' },
  { name: 'empty key', bytes: tmMetrics({ '': 1 }), code: 'invalid', s: 5, reason: 'm: bad key "", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' },
  { name: 'key with a space', bytes: tmMetrics({ 'a b': 1 }), code: 'invalid', s: 5, reason: 'm: bad key "a b", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' },
  { name: '65-character key', bytes: tmMetrics({ [`a${'b'.repeat(64)}`]: 1 }), code: 'invalid', s: 5, reason: `m: bad key "a${'b'.repeat(63)}…", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$` },
  { name: 'integer key', bytes: tmMetrics(new Map([[1, 1]])), code: 'invalid', s: 5, reason: 'm: key 1 is not text' },
  { name: '__proto__ metric key', bytes: tmMetrics(new Map([['__proto__', 1]])), code: 'invalid', s: 5, reason: 'm: reserved key "__proto__"' },
  // tags
  { name: 'tags as text', bytes: tmTags('x'), code: 'invalid', s: 5, reason: 'g: expected a map of at most 16 tags, got text "x"' },
  { name: '17 tags', bytes: tmTags(tags(17)), code: 'invalid', s: 5, reason: 'g: 17 tags, at most 16' },
  { name: 'device tag', bytes: tmTags({ device: 'x' }), code: 'invalid', s: 5, reason: 'g: reserved key "device" (the hub sets it)' },
  { name: 'empty tag value', bytes: tmTags({ k: '' }), code: 'invalid', s: 5, reason: 'g.k: empty text, expected 1 to 128 bytes' },
  { name: '129-byte tag value', bytes: tmTags({ k: tag129 }), code: 'invalid', s: 5, reason: 'g.k: text of 129 bytes, at most 128' },
  { name: 'number tag value', bytes: tmTags({ k: 1 }), code: 'invalid', s: 5, reason: 'g.k: expected text, got 1' },
  { name: 'bad tag key', bytes: tmTags({ 'k/1': 'v' }), code: 'invalid', s: 5, reason: 'g: bad key "k/1", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' },
  { name: '__proto__ tag key', bytes: tmTags(new Map([['__proto__', 'x']])), code: 'invalid', s: 5, reason: 'g: reserved key "__proto__"' },
  // batches
  { name: 'tb without r', bytes: cbor({ t: 'tb', s: 6 }), code: 'invalid', s: 6, reason: 'r: expected an array of 1 to 500 readings, got nothing' },
  { name: 'tb with a map r', bytes: tb({ ts: 1 }), code: 'invalid', s: 6, reason: 'r: expected an array of 1 to 500 readings, got a map' },
  { name: 'tb with 0 readings', bytes: tb([]), code: 'invalid', s: 6, reason: 'r: 0 readings, expected 1 to 500' },
  { name: 'tb with 501 readings', bytes: tb(readings(501)), code: 'invalid', s: 6, reason: 'r: 501 readings, expected 1 to 500' },
  { name: 'tb with a non-map reading', bytes: tb([{ ts: 1, m: { a: 1 } }, 7]), code: 'invalid', s: 6, reason: 'r[1]: expected a map, got 7' },
  { name: 'reading without ts', bytes: tb([{ ts: 1, m: { a: 1 } }, { m: { a: 1 } }]), code: 'invalid', s: 6, reason: 'r[1].ts: expected an unsigned integer (Unix ms) up to 9223372036854, got nothing' },
  { name: 'reading with a ts InfluxDB cannot store', bytes: tb([{ ts: 1, m: { a: 1 } }, { ts: MAX_TS_MS + 1, m: { a: 1 } }]), code: 'invalid', s: 6, reason: 'r[1].ts: expected an unsigned integer (Unix ms) up to 9223372036854, got 9223372036855' },
  { name: 'reading with a bad metric', bytes: tb([{ ts: 1, m: { a: 1 } }, { ts: 2, m: { x: 'y' } }, { ts: 3, m: { temp: Number.NaN } }]), code: 'invalid', s: 6, reason: 'r[2].m.temp: not a finite number (NaN)' },
  { name: 'reading with a device tag', bytes: tb([{ ts: 1, m: { a: 1 }, g: { device: 'x' } }]), code: 'invalid', s: 6, reason: 'r[0].g: reserved key "device" (the hub sets it)' },
  { name: 'tb with a float s', bytes: cbor({ t: 'tb', s: 0.1, r: readings(1) }), code: 'invalid', reason: 's: expected an unsigned integer, got 0.1' },
  // results
  { name: 'res without id', bytes: cbor({ t: 'res', ok: true }), code: 'invalid', reason: 'id: expected 1 to 64 of A-Z a-z 0-9 _ . -, got nothing' },
  { name: 'res with a bad id', bytes: cbor({ t: 'res', id: 'a/b', ok: true }), code: 'invalid', reason: 'id: expected 1 to 64 of A-Z a-z 0-9 _ . -, got "a/b"' },
  { name: 'res with a 65-character id', bytes: cbor({ t: 'res', id: 'a'.repeat(65), ok: true }), code: 'invalid', reason: `id: expected 1 to 64 of A-Z a-z 0-9 _ . -, got "${'a'.repeat(64)}…"` },
  { name: 'res without ok', bytes: cbor({ t: 'res', id: 'c1' }), code: 'invalid', id: 'c1', t: 'res', reason: 'ok: expected a bool, got nothing' },
  { name: 'res with ok 1', bytes: cbor({ t: 'res', id: 'c1', ok: 1 }), code: 'invalid', id: 'c1', t: 'res', reason: 'ok: expected a bool, got 1' },
  { name: 'res with a byte string in r', bytes: cbor({ t: 'res', id: 'c1', ok: true, r: { a: [1, new Uint8Array([1])] } }), code: 'invalid', id: 'c1', t: 'res', reason: 'r.a[1]: a byte string is not JSON' },
  { name: 'res with NaN in r', bytes: cbor({ t: 'res', id: 'c1', ok: true, r: [Number.NaN] }), code: 'invalid', id: 'c1', t: 'res', reason: 'r[0]: not a finite number (NaN)' },
  { name: 'res with undefined in r', bytes: cbor({ t: 'res', id: 'c1', ok: true, r: [undefined] }), code: 'invalid', id: 'c1', t: 'res', reason: 'r[0]: nothing is not JSON' },
  { name: 'res with an integer key in r', bytes: cbor({ t: 'res', id: 'c1', ok: true, r: new Map([[1, 2]]) }), code: 'invalid', id: 'c1', t: 'res', reason: 'r: key 1 is not text' },
  { name: 'res with a number e', bytes: cbor({ t: 'res', id: 'c1', ok: false, e: 5 }), code: 'invalid', id: 'c1', t: 'res', reason: 'e: expected text, got 5' },
  // twin reports
  { name: 'twr without id', bytes: cbor({ t: 'twr', p: { a: 1 } }), code: 'invalid', reason: 'id: expected text of 1 to 64 characters, got nothing' },
  { name: 'twr with an empty id', bytes: cbor({ t: 'twr', id: '', p: { a: 1 } }), code: 'invalid', reason: 'id: expected text of 1 to 64 characters, got ""' },
  { name: 'twr with a 65-character id', bytes: cbor({ t: 'twr', id: 'é'.repeat(65), p: { a: 1 } }), code: 'invalid', reason: `id: expected text of 1 to 64 characters, got "${'é'.repeat(64)}…"` },
  { name: 'twr with a number id', bytes: cbor({ t: 'twr', id: 7, p: { a: 1 } }), code: 'invalid', reason: 'id: expected text of 1 to 64 characters, got 7' },
  { name: 'twr without p', bytes: cbor({ t: 'twr', id: 'r1' }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p: expected a map (a merge patch), got nothing' },
  { name: 'twr with an array p', bytes: cbor({ t: 'twr', id: 'r1', p: [1] }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p: expected a map (a merge patch), got an array' },
  { name: 'twr with a null p', bytes: cbor({ t: 'twr', id: 'r1', p: null }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p: expected a map (a merge patch), got null' },
  { name: 'twr with a $ key', bytes: cbor({ t: 'twr', id: 'r1', p: { a: { $b: 1 } } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a: key "$b" starts with $ (reserved)' },
  { name: 'twr with an empty key', bytes: cbor({ t: 'twr', id: 'r1', p: { '': 1 } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p: key "" is 0 bytes, expected 1 to 128 bytes' },
  { name: 'twr with a 129-byte key', bytes: cbor({ t: 'twr', id: 'r1', p: { [`${'é'.repeat(64)}a`]: 1 } }), code: 'invalid', id: 'r1', t: 'twr', reason: `p: key "${'é'.repeat(64)}" is 129 bytes, expected 1 to 128 bytes` },
  { name: 'twr nesting 9 levels', bytes: cbor({ t: 'twr', id: 'r1', p: nested(9) }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a.a.a.a.a.a.a.a: nests deeper than 8 levels' },
  { name: 'twr nesting 9 levels through arrays', bytes: cbor({ t: 'twr', id: 'r1', p: { a: [[[[[[[[1]]]]]]]] } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a[0][0][0][0][0][0][0]: nests deeper than 8 levels' },
  { name: 'twr with a byte string', bytes: cbor({ t: 'twr', id: 'r1', p: { a: new Uint8Array([1]) } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a: a byte string is not JSON' },
  { name: 'twr with a date (tag 1)', bytes: cbor({ t: 'twr', id: 'r1', p: { a: new Date(0) } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a: a tagged value is not JSON' },
  { name: 'twr with NaN', bytes: cbor({ t: 'twr', id: 'r1', p: { a: [Number.NaN] } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a[0]: not a finite number (NaN)' },
  { name: 'twr with undefined', bytes: cbor({ t: 'twr', id: 'r1', p: { a: undefined } }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p.a: nothing is not JSON' },
  { name: 'twr with an integer key', bytes: cbor({ t: 'twr', id: 'r1', p: new Map([[1, 2]]) }), code: 'invalid', id: 'r1', t: 'twr', reason: 'p: key 1 is not text' },
]

describe('bad device frames', () => {
  it.each(badDeviceFrames)('$name: $code', ({ bytes, code, s, id, t, reason }) => {
    const expected: DecodeFailure = { ok: false, code, reason }
    if (s !== undefined) expected.s = s
    if (id !== undefined) expected.id = id
    if (t !== undefined) expected.t = t
    expect(decodeDeviceFrame(bytes)).toStrictEqual(expected)
  })
})

const hello = { t: 'hello', dev: 'd1', now: 1, v: '1', lim: { frame: 1, batch: 1, rate: 1, window: 1 } }

const badHubFrames: Bad[] = [
  { name: 'a device type', bytes: cbor({ t: 'tm', s: 1, m: { a: 1 } }), code: 'unknown_type', reason: 't: expected hello, ack, nak, cmd, err, twd or twa, got "tm"' },
  { name: 'an array', bytes: cbor([]), code: 'not_map', reason: 'expected a CBOR map, got an array' },
  { name: 'hello with a bad dev', bytes: cbor({ ...hello, dev: 'a.b' }), code: 'invalid', reason: 'dev: expected a device id, got "a.b"' },
  { name: 'hello without now', bytes: cbor({ ...hello, now: undefined }), code: 'invalid', reason: 'now: expected an unsigned integer (Unix ms), got nothing' },
  { name: 'hello without lim', bytes: cbor({ ...hello, lim: 1 }), code: 'invalid', reason: 'lim: expected a map, got 1' },
  { name: 'hello with window 0', bytes: cbor({ ...hello, lim: { ...hello.lim, window: 0 } }), code: 'invalid', reason: 'lim.window: expected a positive integer, got 0' },
  { name: 'hello with rate 0', bytes: cbor({ ...hello, lim: { ...hello.lim, rate: 0 } }), code: 'invalid', reason: 'lim.rate: expected a positive number, got 0' },
  { name: 'ack with a negative s', bytes: cbor({ t: 'ack', s: -2 }), code: 'invalid', reason: 's: expected an unsigned integer, got -2' },
  { name: 'nak with an unknown reason', bytes: cbor({ t: 'nak', s: 3, e: 'nope' }), code: 'invalid', s: 3, reason: 'e: expected invalid, rate, seq or too_many, got "nope"' },
  { name: 'cmd with a bad name', bytes: cbor({ t: 'cmd', id: 'c1', n: 'a b' }), code: 'invalid', id: 'c1', reason: 'n: expected 1 to 64 of A-Z a-z 0-9 _ . -, got "a b"' },
  { name: 'cmd with a float exp', bytes: cbor({ t: 'cmd', id: 'c1', n: 'x', exp: 1.5 }), code: 'invalid', id: 'c1', reason: 'exp: expected an unsigned integer (Unix ms), got 1.5' },
  { name: 'err without msg', bytes: cbor({ t: 'err', e: 'x' }), code: 'invalid', reason: 'msg: expected text, got nothing' },
  { name: 'twd without v', bytes: cbor({ t: 'twd', d: {} }), code: 'invalid', reason: 'v: expected an unsigned integer, got nothing' },
  { name: 'twd with a negative v', bytes: cbor({ t: 'twd', v: -1, d: {} }), code: 'invalid', reason: 'v: expected an unsigned integer, got -1' },
  { name: 'twd with an array d', bytes: cbor({ t: 'twd', v: 1, d: [] }), code: 'invalid', reason: 'd: expected a map (the desired document), got an array' },
  { name: 'twd with a byte string in d', bytes: cbor({ t: 'twd', v: 1, d: { a: new Uint8Array(1) } }), code: 'invalid', reason: 'd.a: a byte string is not JSON' },
  { name: 'twa with both v and e', bytes: cbor({ t: 'twa', id: 'r', v: 1, e: 'rate' }), code: 'invalid', reason: 'expected v (a version) or e (invalid, too_large, rate), got v 1 and e text "rate"' },
  { name: 'twa with neither', bytes: cbor({ t: 'twa', id: 'r' }), code: 'invalid', reason: 'expected v (a version) or e (invalid, too_large, rate), got v nothing and e nothing' },
  { name: 'twa with an unknown e', bytes: cbor({ t: 'twa', id: 'r', e: 'seq' }), code: 'invalid', reason: 'expected v (a version) or e (invalid, too_large, rate), got v nothing and e text "seq"' },
  { name: 'twa with a float v', bytes: cbor({ t: 'twa', id: 'r', v: 1.5 }), code: 'invalid', reason: 'v: expected an unsigned integer, got 1.5' },
  { name: 'twa without id', bytes: cbor({ t: 'twa', v: 1 }), code: 'invalid', reason: 'id: expected text of 1 to 64 characters, got nothing' },
]

describe('bad hub frames', () => {
  it.each(badHubFrames)('$name: $code', ({ bytes, code, s, id, reason }) => {
    const expected: DecodeFailure = { ok: false, code, reason }
    if (s !== undefined) expected.s = s
    if (id !== undefined) expected.id = id
    expect(decodeHubFrame(bytes)).toStrictEqual(expected)
  })
})

describe('decoding details', () => {
  it('leaves out keys a frame type does not have', () => {
    const bytes = cbor({ t: 'tm', s: 1, x: 'extra', m: { a: 1 }, g: { k: 'v' }, ts: 2 })
    expect(decodeDeviceFrame(bytes)).toStrictEqual({ ok: true, frame: { t: 'tm', s: 1, ts: 2, m: { a: 1 }, g: { k: 'v' } } })
    const batch = cbor({ t: 'tb', s: 1, r: [{ ts: 1, m: { a: 1 }, junk: true }] })
    expect(decodeDeviceFrame(batch)).toStrictEqual({ ok: true, frame: { t: 'tb', s: 1, r: [{ ts: 1, m: { a: 1 } }] } })
  })

  it('takes 64-bit CBOR integers that fit in 2^53 - 1 as numbers', () => {
    // s: 1b 001fffffffffffff, ts: 1b 0000000000000005, m.a: 3b 0000000000000000 (-1)
    const bytes = hex('a4 6174 62746d 6173 1b001fffffffffffff 627473 1b0000000000000005 616d a1 6161 3b0000000000000000')
    expect(decodeDeviceFrame(bytes)).toStrictEqual({ ok: true, frame: { t: 'tm', s: 2 ** 53 - 1, ts: 5, m: { a: -1 } } })
  })

  it('takes half and single floats, and integral floats as uints', () => {
    // s: fa 40a00000 (5.0), m.a: f9 3e00 (1.5)
    const bytes = hex('a3 6174 62746d 6173 fa40a00000 616d a1 6161 f93e00')
    expect(decodeDeviceFrame(bytes)).toStrictEqual({ ok: true, frame: { t: 'tm', s: 5, m: { a: 1.5 } } })
  })

  // RFC 8949 §3.2.3: an indefinite-length string is its chunks joined.
  it.each([
    {
      name: 'text keys and values in chunks, an empty chunk, an indefinite map around them',
      // {_ "t": "tm", "s": 1, (_ "m"): {(_ "te", "mp"): (_ "id", "", "le")}}
      hex: 'bf 6174 7f 62746d ff 6173 01 7f 616d ff a1 7f 627465 626d70 ff 7f 626964 60 626c65 ff ff',
      frame: { t: 'tm', s: 1, m: { temp: 'idle' } },
    },
    { name: 'an empty indefinite-length text', hex: 'a3 6174 62746d 6173 02 616d a1 6161 7f ff', frame: { t: 'tm', s: 2, m: { a: '' } } },
    {
      name: 'a chunked text of 300 bytes (a 2-byte length once joined) deep in a result',
      hex: `a4 6174 63726573 6269 64 6163 626f6b f5 6172 81 81 7f 7896 ${'61'.repeat(150)} 7896 ${'62'.repeat(150)} ff`,
      frame: { t: 'res', id: 'c', ok: true, r: [[`${'a'.repeat(150)}${'b'.repeat(150)}`]] },
    },
    {
      name: 'chunks of multi-byte UTF-8 characters',
      hex: 'a3 6174 62746d 6173 03 616d a1 6161 7f 62c3a9 63e282ac ff',
      frame: { t: 'tm', s: 3, m: { a: 'é€' } },
    },
  ])('takes indefinite-length text: $name', ({ hex: text, frame }) => {
    expect(decodeDeviceFrame(hex(text))).toStrictEqual({ ok: true, frame })
  })

  it('takes an indefinite-length byte string as a byte string, which a field then refuses', () => {
    // m.a: (_ h'01', h'0203')
    expect(decodeDeviceFrame(hex('a3 6174 62746d 6173 04 616d a1 6161 5f 4101 420203 ff'))).toStrictEqual({
      ok: false,
      code: 'invalid',
      s: 4,
      reason: 'm.a: expected a finite number, a bool or text, got a byte string',
    })
  })

  it('takes a self-described CBOR prefix (tag 55799)', () => {
    expect(decodeDeviceFrame(concat(hex('d9d9f7'), goodTm))).toStrictEqual({ ok: true, frame: { t: 'tm', s: 1, m: { a: 1 } } })
  })

  it('never lets __proto__ change a prototype', () => {
    const withProto = cbor({ t: 'res', id: 'c', ok: true, r: new Map<string, unknown>([['__proto__', { polluted: true }], ['a', 1]]) })
    const decoded = decodeDeviceFrame(withProto)
    expect(decoded.ok).toBe(true)
    if (!decoded.ok || decoded.frame.t !== 'res') throw new Error('expected a res frame')
    const r = decoded.frame.r as Record<string, unknown>
    // like JSON.parse: an own property, the prototype untouched
    expect(Object.getPrototypeOf(r)).toBe(Object.prototype)
    expect(Object.keys(r)).toStrictEqual(['__proto__', 'a'])
    expect(Object.getOwnPropertyDescriptor(r, '__proto__')?.value).toStrictEqual({ polluted: true })
    expect(JSON.stringify(r)).toBe('{"__proto__":{"polluted":true},"a":1}')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()

    const metricsFrame = decodeDeviceFrame(tmMetrics({ constructor: 1 }))
    if (!metricsFrame.ok || metricsFrame.frame.t !== 'tm') throw new Error('expected a tm frame')
    expect(Object.getPrototypeOf(metricsFrame.frame.m)).toBe(Object.prototype)
    expect(Object.keys(metricsFrame.frame.m)).toStrictEqual(['constructor'])
  })

  it('never throws, whatever the bytes', () => {
    // a seeded generator: the same inputs on every run
    let seed = 0x2545f491
    const random = (): number => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) / 2 ** 32
    }
    const seeds = [...goodDeviceFrames.map(({ frame }) => encodeFrame(frame)), ...goodHubFrames.map(({ frame }) => encodeFrame(frame))]
    let decoded = 0
    for (let i = 0; i < 20_000; i++) {
      const base = seeds[i % seeds.length]!
      const bytes = i % 4 === 0 ? Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)) : Uint8Array.from(base)
      if (i % 4 !== 0) {
        const flips = 1 + Math.floor(random() * 4)
        for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
      }
      const device = decodeDeviceFrame(bytes)
      const hub = decodeHubFrame(bytes)
      expect(typeof device.ok).toBe('boolean')
      expect(typeof hub.ok).toBe('boolean')
      if (device.ok || hub.ok) decoded++
    }
    // the mutations must not all be trivially refused: some still decode
    expect(decoded).toBeGreaterThan(100)
  })

  it('refuses what is not a Uint8Array without throwing', () => {
    expect(decodeDeviceFrame('a1' as unknown as Uint8Array)).toStrictEqual({ ok: false, code: 'not_cbor', reason: 'expected a Uint8Array, got string' })
    expect(decodeHubFrame(new ArrayBuffer(1) as unknown as Uint8Array)).toStrictEqual({
      ok: false,
      code: 'not_cbor',
      reason: 'expected a Uint8Array, got [object ArrayBuffer]',
    })
  })
})

describe('utf8ByteLength', () => {
  it.each([
    ['', 0],
    ['abc', 3],
    ['é', 2],
    ['€', 3],
    ['😀', 4],
    ['a😀é€', 10],
    ['\ud800', 3],
    ['\udc00x', 4],
  ])('%j is %i bytes', (text, bytes) => {
    expect(utf8ByteLength(text)).toBe(bytes)
    expect(utf8ByteLength(text)).toBe(new TextEncoder().encode(text).length)
  })
})
