// The direct telemetry reader held to the general way (scan, cbor-x, field checks): for every input,
// decodeDeviceFrame must answer exactly what decodeDeviceFrameGenerally answers (frame, or refusal
// with its code, seq and reason), and the reader must take every plain telemetry frame.
import { describe, expect, it } from 'vitest'
import { FrameFuzzer } from '../../test/support/cbor-fuzz.js'
import { fuzzSeed, seededRandom } from '../../test/support/hostile.js'
import { decodeDeviceFrame, decodeDeviceFrameGenerally, encodeFrame, MAX_TS_MS, type DeviceFrame, type Metrics, type Reading, type Tags } from '../src/protocol.js'
import { readTelemetry } from '../src/telemetry-reader.js'

/** How many inputs of each kind decodeDeviceFrame answered like the general way. */
interface Tally {
  /** Read by the direct reader. */
  taken: number
  /** Refused (by the general way, the reader having left them to it). */
  refused: number
  /** Accepted by the general way only. */
  general: number
}

/** Checks one input: decodeDeviceFrame answers exactly what the general way does. */
function agrees(bytes: Uint8Array, tally: Tally): void {
  const expected = decodeDeviceFrameGenerally(bytes)
  const read = readTelemetry(bytes)
  if (read !== undefined) {
    expect(read, `bytes ${Buffer.from(bytes).toString('hex')}`).toStrictEqual(expected)
    // key order too: readings go on to MQTT and InfluxDB in it
    expect(JSON.stringify(read)).toBe(JSON.stringify(expected))
    tally.taken++
  } else if (expected.ok) {
    tally.general++
  } else {
    tally.refused++
  }
  expect(decodeDeviceFrame(bytes)).toStrictEqual(expected)
}

const tally = (): Tally => ({ taken: 0, refused: 0, general: 0 })

// --- frames in their plain form, as encodeFrame writes them -----------------------------------------

function plainFrames(random: () => number, count: number): DeviceFrame[] {
  const int = (n: number): number => Math.floor(random() * n)
  const key = (): string => `${'abcxyz_ABZ'[int(10)] ?? 'k'}${'k9._-'.repeat(13).slice(0, int(64))}`
  const value = (): number | boolean | string => {
    switch (int(9)) {
      case 0:
        return int(24)
      case 1:
        return int(2 ** 32) * (random() < 0.5 ? -1 : 1)
      case 2:
        return (int(2 ** 53) - 2 ** 52) * (random() < 0.5 ? 1 : -1)
      case 3:
        return Number.MAX_SAFE_INTEGER * (random() < 0.5 ? 1 : -1)
      case 4:
        return random() < 0.5
      case 5:
        return 'x'.repeat(int(257))
      case 6:
        return -0
      default:
        return (random() - 0.5) * 10 ** int(30)
    }
  }
  const metrics = (): Metrics => Object.fromEntries(Array.from({ length: 1 + int(random() < 0.1 ? 64 : 5) }, () => [key(), value()]))
  const tags = (): Tags => Object.fromEntries(Array.from({ length: int(random() < 0.1 ? 16 : 3) }, () => [key(), 'v'.repeat(1 + int(128))]))
  const ts = (): number => (random() < 0.05 ? MAX_TS_MS : 1_700_000_000_000 + int(10 ** 9))
  const s = (): number => (random() < 0.1 ? Number.MAX_SAFE_INTEGER : int(2 ** (1 + int(40))))
  const reading = (): Reading => (random() < 0.3 ? { ts: ts(), m: metrics(), g: tags() } : { ts: ts(), m: metrics() })
  return Array.from({ length: count }, (): DeviceFrame => {
    const roll = random()
    if (roll < 0.4) {
      const frame: DeviceFrame = random() < 0.5 ? { t: 'tm', s: s(), m: metrics() } : { t: 'tm', s: s(), ts: ts(), m: metrics() }
      if (random() < 0.3) frame.g = tags()
      return frame
    }
    return { t: 'tb', s: s(), r: Array.from({ length: 1 + int(roll < 0.45 ? 500 : 20) }, reading) }
  })
}

// --- frames close to plain, every encoding choice CBOR allows ----------------------------------------

/** A value to encode: a map is a list of entries, so that keys may repeat and come in any order. */
type Item =
  | { readonly k: 'uint'; readonly n: bigint }
  | { readonly k: 'nint'; readonly n: bigint }
  | { readonly k: 'float'; readonly v: number }
  | { readonly k: 'text'; readonly v: string }
  | { readonly k: 'simple'; readonly v: boolean | null | undefined }
  | { readonly k: 'bytes'; readonly v: number }
  | { readonly k: 'array'; readonly v: readonly Item[] }
  | { readonly k: 'map'; readonly v: ReadonlyArray<readonly [Item, Item]> }

/** Readings of a batch, metrics, tags. */
type EdgeKind = 'r' | 'm' | 'g'

const uint = (n: number | bigint): Item => ({ k: 'uint', n: BigInt(n) })
const text = (v: string): Item => ({ k: 'text', v })

/**
 * Frames built item by item with seeded choices: keys out of order, repeated or unknown; integers
 * of every width, shortest or not, up to 2^64 - 1 either sign; floats of 16, 32 and 64 bits (NaN,
 * infinities, -0); definite and indefinite lengths; text ASCII or not, around every length limit;
 * values of the wrong type. Most are a small step from a plain frame, so the reader takes many.
 */
class NearPlain {
  readonly #random: () => number

  constructor(random: () => number) {
    this.#random = random
  }

  /** How often this frame strays from the plain form, item by item (frames differ: some stray not at all). */
  #odd = 0

  /** Whose item counts reach their limits in this frame (one kind at a time, so the rest may be plain). */
  #edge: EdgeKind | undefined

  #usual(): boolean {
    return this.#random() >= this.#odd
  }

  #unusual(): boolean {
    return this.#random() < this.#odd
  }

  #int(n: number): number {
    return Math.floor(this.#random() * n)
  }

  #chance(p: number): boolean {
    return this.#random() < p
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#int(items.length)] as T
  }

  frame(): Uint8Array {
    this.#odd = this.#pick([0, 0.003, 0.03, 0.15])
    this.#edge = this.#pick([undefined, undefined, 'r', 'm', 'g'])
    const out: number[] = []
    this.#item(out, this.#frameItem())
    return Uint8Array.from(out)
  }

  #frameItem(): Item {
    const tb = this.#chance(0.4)
    const entries: Array<[Item, Item]> = [[text('t'), text(this.#usual() ? (tb ? 'tb' : 'tm') : this.#pick(['tx', 'res', '', 't']))]]
    if (this.#usual()) entries.push([text('s'), this.#seq()])
    if (tb) {
      entries.push([text('r'), this.#usual() ? { k: 'array', v: Array.from({ length: this.#count('r', 3, 500) }, () => this.#reading()) } : this.#wrong()])
    } else {
      if (this.#chance(0.5)) entries.push([text('ts'), this.#ts()])
      if (this.#usual()) entries.push([text('m'), this.#metrics()])
      if (this.#chance(0.3)) entries.push([text('g'), this.#tags()])
    }
    this.#disturb(entries)
    return { k: 'map', v: entries }
  }

  /** Usually nothing; else a key repeated, moved, added, or a key that is not text. */
  #disturb(entries: Array<[Item, Item]>): void {
    if (entries.length === 0 || !this.#unusual()) return
    const at = this.#int(entries.length)
    switch (this.#int(4)) {
      case 0:
        // a key again, with another value
        entries.push([(entries[at] as [Item, Item])[0], this.#metricValue()])
        break
      case 1:
        entries.unshift(...entries.splice(at, 1))
        entries.reverse()
        break
      case 2:
        entries.splice(at, 0, [text(this.#pick(['x', 'ts', 'g', 'r', 'm', 'S'])), this.#metricValue()])
        break
      default:
        entries.splice(at, 0, [uint(this.#int(3)), text('v')])
    }
  }

  /** Items of a map or array of `kind`: a few, or, in the frame's edge kind, now and then 0, `max`, `max + 1` or any. */
  #count(kind: EdgeKind, usual: number, max: number): number {
    return kind === this.#edge && this.#chance(0.3) ? this.#pick([0, max, max + 1, 1 + this.#int(max)]) : 1 + this.#int(usual)
  }

  #seq(): Item {
    if (this.#usual()) return uint(this.#chance(0.5) ? this.#int(24) : this.#int(2 ** 40))
    return this.#pick<Item>([uint(Number.MAX_SAFE_INTEGER), uint(2n ** 53n), uint(2n ** 64n - 1n), { k: 'nint', n: 0n }, { k: 'float', v: 5 }, { k: 'float', v: 1.5 }, text('1'), this.#wrong()])
  }

  #ts(): Item {
    if (this.#usual()) return uint(1_700_000_000_000 + this.#int(10 ** 9))
    return this.#pick<Item>([uint(MAX_TS_MS), uint(MAX_TS_MS + 1), uint(0), uint(2n ** 63n), { k: 'float', v: 1_700_000_000_000 }, { k: 'nint', n: 5n }, this.#wrong()])
  }

  #reading(): Item {
    const entries: Array<[Item, Item]> = []
    if (this.#usual()) entries.push([text('ts'), this.#ts()])
    if (this.#usual()) entries.push([text('m'), this.#metrics()])
    if (this.#chance(0.2)) entries.push([text('g'), this.#tags()])
    this.#disturb(entries)
    return this.#usual() ? { k: 'map', v: entries } : this.#wrong()
  }

  #metrics(): Item {
    if (this.#unusual()) return this.#wrong()
    return { k: 'map', v: Array.from({ length: this.#count('m', 4, 64) }, (_, i) => [this.#key(i), this.#metricValue()] as [Item, Item]) }
  }

  #tags(): Item {
    if (this.#unusual()) return this.#wrong()
    return {
      k: 'map',
      v: Array.from({ length: this.#count('g', 3, 17) - 1 }, (_, i) => [this.#unusual() ? text('device') : this.#key(i), this.#chance(0.003) ? text('') : this.#usual() ? this.#text(128) : this.#metricValue()] as [Item, Item]),
    }
  }

  /** The key of entry `index` of a map: distinct from the others of the map, but now and then one of them again. */
  #key(index: number): Item {
    if (this.#usual()) {
      const at = this.#unusual() ? this.#int(index + 1) : index
      return text(`${['a', 'Z', '_', 'temp', 'x'][at % 5] ?? ''}${at}${'k9._-'.repeat(13).slice(0, (at * 13) % 59)}`)
    }
    return this.#pick<Item>([text('__proto__'), text('constructor'), text('1a'), text('a b'), text(''), text('é'), text('a'.repeat(64)), text('a'.repeat(65)), uint(1), { k: 'bytes', v: 1 }])
  }

  #metricValue(): Item {
    if (this.#usual()) return this.#chance(0.5) ? uint(this.#int(1000)) : { k: 'float', v: (this.#random() - 0.5) * 1000 }
    switch (this.#int(8)) {
      case 0:
        return uint(this.#int(24))
      case 1:
        return this.#pick<Item>([uint(this.#int(2 ** 32)), uint(Number.MAX_SAFE_INTEGER), uint(2n ** 53n), uint(2n ** 64n - 1n)])
      case 2:
        return this.#pick<Item>([{ k: 'nint', n: BigInt(this.#int(2 ** 32)) }, { k: 'nint', n: 2n ** 53n - 2n }, { k: 'nint', n: 2n ** 53n - 1n }, { k: 'nint', n: 2n ** 64n - 1n }])
      case 3:
        return { k: 'float', v: this.#pick([0.1, -0, 0, 1.5, -2.25, 1e300, 3.4e38, 65504, 2 ** -24, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, (this.#random() - 0.5) * 1e6]) }
      case 4:
        return { k: 'simple', v: this.#pick([true, false, null, undefined]) }
      case 5:
        return this.#text(256)
      case 6:
        return this.#chance(0.5) ? this.#wrong() : { k: 'float', v: (this.#random() - 0.5) * 10 ** this.#int(20) }
      default:
        return { k: 'float', v: this.#random() * 100 }
    }
  }

  /** Text around `limit` bytes or short, ASCII or not. */
  #text(limit: number): Item {
    const length = this.#usual() ? 1 + this.#int(30) : this.#pick([0, 1, 23, 24, 255, limit - 1, limit, limit + 1])
    const ascii = 'v'.repeat(length)
    return text(this.#usual() ? ascii : `é${ascii.slice(2)}`)
  }

  #wrong(): Item {
    return this.#pick<Item>([{ k: 'bytes', v: 2 }, { k: 'array', v: [uint(1)] }, { k: 'map', v: [] }, { k: 'simple', v: null }, text('x'), uint(7)])
  }

  #item(out: number[], item: Item): void {
    switch (item.k) {
      case 'uint':
      case 'nint':
        this.#head(out, item.k === 'uint' ? 0 : 1, item.n, true)
        break
      case 'float':
        this.#float(out, item.v)
        break
      case 'text': {
        const bytes = Buffer.from(item.v, 'utf8')
        if (bytes.length > 0 && this.#unusual()) {
          // indefinite length, in chunks
          out.push(0x7f)
          for (let at = 0; at < bytes.length; at += 3) {
            const chunk = bytes.subarray(at, at + 3)
            this.#head(out, 3, BigInt(chunk.length), false)
            out.push(...chunk)
          }
          out.push(0xff)
        } else {
          this.#head(out, 3, BigInt(bytes.length), false)
          out.push(...bytes)
        }
        break
      }
      case 'simple':
        out.push(item.v === false ? 0xf4 : item.v === true ? 0xf5 : item.v === null ? 0xf6 : 0xf7)
        break
      case 'bytes':
        this.#head(out, 2, BigInt(item.v), false)
        for (let i = 0; i < item.v; i++) out.push(0x61)
        break
      case 'array':
      case 'map': {
        const major = item.k === 'array' ? 4 : 5
        const indefinite = this.#unusual()
        if (indefinite) out.push((major << 5) | 31)
        else this.#head(out, major, BigInt(item.v.length), false)
        if (item.k === 'array') for (const value of item.v) this.#item(out, value)
        else
          for (const [key, value] of item.v) {
            this.#item(out, key)
            this.#item(out, value)
          }
        if (indefinite) out.push(0xff)
      }
    }
  }

  /** A head of `major` with argument `n`: the shortest form, or sometimes a wider one. */
  #head(out: number[], major: number, n: bigint, often: boolean): void {
    const shortest = n < 24n ? 0 : n < 0x100n ? 1 : n < 0x10000n ? 2 : n < 0x100000000n ? 4 : 8
    // cbor-x 1.6 fails on text with an 8-byte length after a few dozen items ("Unexpected end of
    // buffer reading string"): such frames would all be refused as not_cbor, hiding the rest
    const widths = [0, 1, 2, 4, 8].filter((w) => w >= shortest && (major !== 3 || w < 8))
    const width = (often ? this.#chance(0.15) : this.#unusual()) ? this.#pick(widths) : shortest
    if (width === 0) {
      out.push((major << 5) | Number(n))
      return
    }
    out.push((major << 5) | (width === 1 ? 24 : width === 2 ? 25 : width === 4 ? 26 : 27))
    for (let i = width - 1; i >= 0; i--) out.push(Number((n >> BigInt(8 * i)) & 0xffn))
  }

  /** A float as 64, 32 or 16 bits (the narrow ones as they round). */
  #float(out: number[], v: number): void {
    const width = this.#usual() ? 8 : this.#pick([2, 4])
    const view = new DataView(new ArrayBuffer(8))
    if (width === 8) {
      view.setFloat64(0, v)
      out.push(0xfb, ...new Uint8Array(view.buffer))
    } else if (width === 4) {
      view.setFloat32(0, v)
      out.push(0xfa, ...new Uint8Array(view.buffer, 0, 4))
    } else {
      // a half float: sign, exponent and mantissa of a few common values, else a NaN
      const half = v === 0 ? (Object.is(v, -0) ? 0x8000 : 0) : v === 1.5 ? 0x3e00 : v === 65504 ? 0x7bff : v === Number.POSITIVE_INFINITY ? 0x7c00 : 0x7e00
      out.push(0xf9, half >> 8, half & 0xff)
    }
  }
}

describe('readTelemetry against the general way', () => {
  it('takes every plain tm and tb frame, with the general way\'s answer', () => {
    const frames = plainFrames(seededRandom(fuzzSeed('telemetry reader, plain', 1601)), 1500)
    const counts = tally()
    for (const frame of frames) agrees(encodeFrame(frame), counts)
    expect(counts).toStrictEqual({ taken: 1500, refused: 0, general: 0 })
  })

  it('answers frames near the plain form (every width, length form, key order, limit) exactly as the general way', () => {
    const near = new NearPlain(seededRandom(fuzzSeed('telemetry reader, near plain', 1603)))
    const counts = tally()
    for (let i = 0; i < 10_000; i++) agrees(near.frame(), counts)
    console.log(`telemetry reader, near plain: ${JSON.stringify(counts)}`)
    // the property ran on all three sides: frames read directly, refusals, frames only the general way takes
    expect(counts.taken).toBeGreaterThan(3000)
    expect(counts.refused).toBeGreaterThan(2000)
    expect(counts.general).toBeGreaterThan(600)
  })

  it('answers hostile frames (the codec fuzzer\'s) exactly as the general way', () => {
    const fuzzer = new FrameFuzzer(seededRandom(fuzzSeed('telemetry reader, hostile', 1602)))
    const counts = tally()
    for (let i = 0; i < 20_000; i++) agrees(fuzzer.next(i), counts)
    console.log(`telemetry reader, hostile: ${JSON.stringify(counts)}`)
    expect(counts.taken).toBeGreaterThan(100)
    expect(counts.refused).toBeGreaterThan(10_000)
  })

  it('reads integers of any width, shortest or not, and leaves to the general way what is not plain', () => {
    const head = [0xa3, 0x61, 0x74, 0x62, 0x74, 0x6d, 0x61, 0x73]
    const m = [0x61, 0x6d, 0xa1, 0x61, 0x61]
    const cases: Array<[string, number[], boolean]> = [
      ['s and a metric not in their shortest form', [...head, 0x18, 0x05, ...m, 0x1b, 0, 0, 0, 0, 0, 0, 0, 0x07], true],
      ['the largest negative metric, -(2^53 - 1)', [...head, 0x01, ...m, 0x3b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], true],
      ['a metric text of 256 bytes', [...head, 0x01, ...m, 0x79, 0x01, 0x00, ...new Array<number>(256).fill(0x78)], true],
      ['-(2^53), refused', [...head, 0x01, ...m, 0x3b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], false],
      ['a metric text of 257 bytes, refused', [...head, 0x01, ...m, 0x79, 0x01, 0x01, ...new Array<number>(257).fill(0x78)], false],
      ['s twice', [...head, 0x01, 0x61, 0x73, 0x02], false],
      ['a float32 metric', [...head, 0x01, ...m, 0xfa, 0x3f, 0xc0, 0x00, 0x00], false],
      ['a float16 metric', [...head, 0x01, ...m, 0xf9, 0x3e, 0x00], false],
      ['an indefinite metrics map', [...head, 0x01, 0x61, 0x6d, 0xbf, 0x61, 0x61, 0x01, 0xff], false],
      ['a trailing byte', [...head, 0x01, ...m, 0x01, 0x00], false],
    ]
    for (const [name, bytes, taken] of cases) {
      const frame = Uint8Array.from(bytes)
      expect(readTelemetry(frame) !== undefined, name).toBe(taken)
      agrees(frame, tally())
    }
  })
})
