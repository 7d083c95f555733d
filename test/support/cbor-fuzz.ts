import { encodeFrame, MAX_TS_MS, type DeviceFrame } from '@fleetgate/device-sdk/wire'

/**
 * Hostile device frames from a seeded PRNG: random bytes, valid frames mutated byte-wise, and CBOR
 * items built head by head with the shapes a decoder finds hard (indefinite lengths, tags, deep
 * nesting, huge declared lengths, every float width). The same `random` gives the same frames.
 */
export class FrameFuzzer {
  readonly #random: () => number

  constructor(random: () => number) {
    this.#random = random
  }

  /** One hostile frame; valid frames it starts from carry seq `s`. */
  next(s: number): Uint8Array {
    const roll = this.#random()
    if (roll < 0.1) return Uint8Array.from(this.#bytes(this.#int(64)))
    if (roll < 0.6) return this.#mutate(this.#valid(s))
    return this.#built(s)
  }

  /** A valid device frame with seq `s`: telemetry of every shape, a batch, a result, a twin report. */
  #valid(s: number): Uint8Array {
    const ts = 1_700_000_000_000 + this.#int(1_000_000)
    const frames: DeviceFrame[] = [
      { t: 'tm', s, m: { temp: 21.5 } },
      { t: 'tm', s, ts, m: { a: 1, on: true, mode: 'eco', big: 5_000_000_000 }, g: { site: 'lab' } },
      { t: 'tm', s, ts: MAX_TS_MS, m: { edge: 0 } },
      { t: 'tb', s, r: Array.from({ length: 1 + this.#int(20) }, (_, i) => ({ ts: ts + i, m: { v: i, t: 'x'.repeat(this.#int(40)) } })) },
      { t: 'res', id: `c${this.#int(100)}`, ok: this.#random() < 0.5, r: { list: [1, 'two', null, { x: 1.5 }] } },
      { t: 'res', id: 'c1', ok: false, e: 'failed' },
      { t: 'twr', id: `r${this.#int(100)}`, p: { setpoint: 21.5, fan: { speed: this.#int(5), timer: null }, modes: ['eco', null] } },
    ]
    return encodeFrame(frames[this.#int(frames.length)] as DeviceFrame)
  }

  #mutate(base: Uint8Array): Uint8Array {
    let bytes = Array.from(base)
    const rounds = 1 + this.#int(4)
    for (let r = 0; r < rounds; r++) {
      const at = this.#int(bytes.length + 1)
      switch (this.#int(7)) {
        case 0:
          if (bytes.length > 0) bytes[at % bytes.length] = (bytes[at % bytes.length] ?? 0) ^ (1 << this.#int(8))
          break
        case 1:
          if (bytes.length > 0) bytes[at % bytes.length] = this.#pick(INTERESTING_BYTES)
          break
        case 2:
          bytes.splice(at, 0, ...this.#bytes(1 + this.#int(8)))
          break
        case 3:
          bytes.splice(at, 1 + this.#int(8))
          break
        case 4:
          bytes = bytes.slice(0, at)
          break
        case 5: {
          // a range repeated: duplicated keys, items, or a header whose count no longer matches
          const length = 1 + this.#int(16)
          bytes.splice(at, 0, ...bytes.slice(at, at + length))
          break
        }
        default:
          // wrapped: in an indefinite map or array, a tag, or a self-described prefix
          bytes = [this.#pick([0xbf, 0x9f, 0xc1, 0xd8]), ...(bytes[0] === 0xd8 ? [0x20] : []), ...bytes, ...(this.#random() < 0.5 ? [0xff] : [])]
      }
    }
    return Uint8Array.from(bytes)
  }

  /** A map with the keys of a frame (and others), usually a valid `s`, its other values built item by item. */
  #built(s: number): Uint8Array {
    const out: number[] = []
    const withSeq = this.#random() < 0.8
    const entries = this.#int(5)
    this.#head(out, 5, 1 + (withSeq ? 1 : 0) + entries)
    this.#text(out, 't')
    this.#text(out, this.#pick(['tm', 'tm', 'tb', 'res', 'ack', '']))
    if (withSeq) {
      this.#text(out, 's')
      this.#head(out, 0, s)
    }
    for (let i = 0; i < entries; i++) {
      this.#text(out, this.#pick(['ts', 'm', 'm', 'g', 'r', 'id', 'ok', 'e', '__proto__', 'x']))
      this.#item(out, 0)
    }
    return Uint8Array.from(out)
  }

  #item(out: number[], depth: number): void {
    const kind = depth > 40 ? this.#int(6) : this.#int(12)
    switch (kind) {
      case 0:
        return this.#head(out, this.#int(2), this.#pick([0, 23, 24, 255, 65_535, 2 ** 32 - 1, 2 ** 53 - 1, MAX_TS_MS, MAX_TS_MS + 1]))
      case 1:
        return this.#text(out, this.#pick(['', 'a', 'temp', 'x'.repeat(300), 'é€😀', '\u0000']))
      case 2:
        out.push(...this.#pick(FLOATS))
        return
      case 3:
        out.push(this.#pick([0xf4, 0xf5, 0xf6, 0xf7, 0xf0, 0xf8, 0x20]))
        return
      case 4: {
        // an indefinite-length string of 0 to 4 chunks, sometimes with a wrong chunk
        const major = this.#pick([2, 3])
        out.push((major << 5) | 31)
        for (let c = this.#int(5); c > 0; c--) {
          const chunk = this.#random() < 0.1 ? 5 - major : major
          const length = this.#int(30)
          this.#head(out, chunk, length)
          for (let i = 0; i < length; i++) out.push(0x61 + this.#int(26))
        }
        if (this.#random() < 0.95) out.push(0xff)
        return
      }
      case 5:
        // a declared length far beyond the frame
        return this.#head(out, this.#pick([2, 3, 4, 5]), this.#pick([1000, 65_536, 2 ** 32 - 1]))
      case 6:
      case 7:
        return this.#container(out, 4, () => this.#item(out, depth + 1))
      case 8:
      case 9:
        return this.#container(out, 5, () => {
          if (this.#random() < 0.8) this.#text(out, this.#pick(['a', 'temp', 'ts', 'device', '__proto__', 'x.y-z', '1bad']))
          else this.#item(out, depth + 1)
          this.#item(out, depth + 1)
        })
      case 10:
        // a tag: dates, bignums (some too long), cbor-x's own, unknown ones
        this.#head(out, 6, this.#pick([0, 1, 2, 3, 6, 27, 28, 29, 51, 105, 258, 55_799, 0xdfff]))
        return this.#item(out, depth + 1)
      default:
        // deep nesting: arrays of one, past the scan's bound now and then
        for (let i = this.#int(40); i > 0; i--) out.push(0x81)
        return this.#item(out, depth + 40)
    }
  }

  /** An array (major 4) or map (5) of up to 4 entries, of definite or indefinite length; `entry` writes one. */
  #container(out: number[], major: 4 | 5, entry: () => void): void {
    const length = this.#int(5)
    const indefinite = this.#random() < 0.3
    if (indefinite) out.push((major << 5) | 31)
    else this.#head(out, major, length)
    for (let i = 0; i < length; i++) entry()
    if (indefinite) out.push(0xff)
  }

  #head(out: number[], major: number, value: number): void {
    const type = major << 5
    if (value < 24) out.push(type | value)
    else if (value < 0x100) out.push(type | 24, value)
    else if (value < 0x10000) out.push(type | 25, value >> 8, value & 0xff)
    else if (value < 0x100000000) out.push(type | 26, ...bigEndian(value, 4))
    else out.push(type | 27, ...bigEndian(value, 8))
  }

  #text(out: number[], text: string): void {
    const bytes = Buffer.from(text)
    this.#head(out, 3, bytes.length)
    out.push(...bytes)
  }

  #bytes(length: number): number[] {
    return Array.from({ length }, () => this.#int(256))
  }

  #int(below: number): number {
    return Math.floor(this.#random() * below)
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#int(items.length)] as T
  }
}

/** Floats of each width: half NaN, half infinity, single 100000, double -0, double 1.7e9 (integral). */
const FLOATS: ReadonlyArray<readonly number[]> = [
  [0xf9, 0x7e, 0x00],
  [0xf9, 0x7c, 0x00],
  [0xfa, 0x47, 0xc3, 0x50, 0x00],
  [0xfb, 0x80, 0, 0, 0, 0, 0, 0, 0],
  [0xfb, 0x41, 0xd9, 0x5a, 0x1b, 0x40, 0, 0, 0],
]

/** Bytes that change a head's meaning: breaks, indefinite heads, 8-byte lengths, reserved values. */
const INTERESTING_BYTES = [0x00, 0x17, 0x18, 0x1b, 0x1c, 0x1f, 0x3f, 0x5f, 0x7f, 0x9f, 0xbf, 0xdf, 0xf7, 0xfb, 0xff, 0x80, 0xa0, 0x60, 0x40]

function bigEndian(value: number, size: number): number[] {
  const out: number[] = []
  let rest = BigInt(value)
  for (let i = 0; i < size; i++) {
    out.unshift(Number(rest & 0xffn))
    rest >>= 8n
  }
  return out
}
