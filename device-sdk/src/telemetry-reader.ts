// The hub's hot path: `tm` and `tb` frames read straight from their bytes into the validated frame,
// without cbor-x's Maps and the checks' copies of them. It takes only the plain form of a telemetry
// frame (the form encodeFrame writes): a map with `t` first, text keys it knows, definite lengths,
// ASCII text, integers and float64 numbers. For anything else, valid or not, it answers `undefined`
// and decodeDeviceFrame takes the general way (scan, decode, checks), so every refusal and its
// reason come from one place; what it does answer is exactly what the general way answers.
import {
  MAX_BATCH_READINGS,
  MAX_METRIC_TEXT_BYTES,
  MAX_METRICS,
  MAX_TAG_VALUE_BYTES,
  MAX_TAGS,
  MAX_TS_MS,
  RESERVED_TAG_KEY,
  type BatchFrame,
  type Decoded,
  type Metrics,
  type Reading,
  type Tags,
  type TelemetryFrame,
} from './frames.js'

/** What the reader could not take: the general way decides. */
const OTHER = undefined

// A position in the frame being read; module state, since reading is synchronous and not re-entrant.
let src: Uint8Array = new Uint8Array(0)
let pos = 0

// float64 big-endian to a number, through a scratch in the platform's byte order.
const float = new Float64Array(1)
const floatBytes = new Uint8Array(float.buffer)
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * A `tm` or `tb` frame read from `bytes` and validated as decodeDeviceFrame validates it, or
 * undefined when the frame is not in the plain form this reader takes (then decode it the general way).
 */
export function readTelemetry(bytes: Uint8Array): Decoded<TelemetryFrame | BatchFrame> | undefined {
  src = bytes
  pos = 0
  const entries = mapHead()
  // `t` first, then s and the type's own keys, each once
  if (entries < 2 || !key(0x74)) return OTHER
  const t = tmOrTb()
  if (t === 0) return OTHER
  let s = -1
  let ts = -1
  let m: Metrics | undefined
  let g: Tags | undefined
  let r: Reading[] | undefined
  for (let i = 1; i < entries; i++) {
    const k = shortKey()
    if (k === 0x73 && s < 0) {
      s = uint()
      if (s < 0) return OTHER
    } else if (t === TM && k === TS && ts < 0) {
      ts = uint()
      if (ts < 0 || ts > MAX_TS_MS) return OTHER
    } else if (t === TM && k === 0x6d && m === undefined) {
      m = metrics()
      if (m === undefined) return OTHER
    } else if (t === TM && k === 0x67 && g === undefined) {
      g = tags()
      if (g === undefined) return OTHER
    } else if (t === TB && k === 0x72 && r === undefined) {
      r = readings()
      if (r === undefined) return OTHER
    } else return OTHER
  }
  if (pos !== src.length || s < 0) return OTHER
  if (t === TB) return r === undefined ? OTHER : { ok: true, frame: { t: 'tb', s, r } }
  if (m === undefined) return OTHER
  const frame: TelemetryFrame = ts < 0 ? { t: 'tm', s, m } : { t: 'tm', s, ts, m }
  if (g !== undefined) frame.g = g
  return { ok: true, frame }
}

const TM = 1
const TB = 2
/** shortKey's answer for `ts`. */
const TS = 0x7473

/** The entries of a definite map of up to 255 entries at `pos`, or -1. */
function mapHead(): number {
  const initial = src[pos++]
  if (initial === undefined) return -1
  if (initial >= 0xa0 && initial <= 0xb7) return initial - 0xa0
  if (initial === 0xb8 && pos < src.length) return src[pos++] as number
  return -1
}

/** The items of a definite array of up to 65,535 items at `pos`, or -1. */
function arrayHead(): number {
  const initial = src[pos++]
  if (initial === undefined) return -1
  if (initial >= 0x80 && initial <= 0x97) return initial - 0x80
  if (initial === 0x98 && pos < src.length) return src[pos++] as number
  if (initial === 0x99 && pos + 1 < src.length) {
    const n = ((src[pos] as number) << 8) | (src[pos + 1] as number)
    pos += 2
    return n
  }
  return -1
}

/** Whether a one-letter text key `letter` is at `pos` (consumed when it is). */
function key(letter: number): boolean {
  if (src[pos] !== 0x61 || src[pos + 1] !== letter) return false
  pos += 2
  return true
}

/** A one-letter key as its letter (`s` 0x73), `ts` as TS, anything else 0. */
function shortKey(): number {
  const initial = src[pos]
  if (initial === 0x61 && pos + 1 < src.length) {
    pos += 2
    return src[pos - 1] as number
  }
  if (initial === 0x62 && src[pos + 1] === 0x74 && src[pos + 2] === 0x73) {
    pos += 3
    return TS
  }
  return 0
}

/** `"tm"` or `"tb"` at `pos`: TM, TB, or 0. */
function tmOrTb(): number {
  if (src[pos] !== 0x62 || src[pos + 1] !== 0x74) return 0
  const second = src[pos + 2]
  pos += 3
  return second === 0x6d ? TM : second === 0x62 ? TB : 0
}

/** A CBOR unsigned integer of at most 2^53 - 1 at `pos`, or -1. */
function uint(): number {
  const initial = src[pos++]
  if (initial === undefined || initial > 0x1b) return -1
  return unsignedArgument(initial)
}

/** The argument of a head of major type 0 or 1 (additional information in `initial`), or -1 beyond 2^53 - 1. */
function unsignedArgument(initial: number): number {
  const info = initial & 0x1f
  if (info < 24) return info
  const end = src.length
  switch (info) {
    case 24:
      return pos < end ? (src[pos++] as number) : -1
    case 25: {
      if (pos + 2 > end) return -1
      const n = ((src[pos] as number) << 8) | (src[pos + 1] as number)
      pos += 2
      return n
    }
    case 26: {
      if (pos + 4 > end) return -1
      const n = word(pos)
      pos += 4
      return n
    }
    case 27: {
      if (pos + 8 > end) return -1
      const high = word(pos)
      if (high > 0x1fffff) return -1
      const n = high * 0x100000000 + word(pos + 4)
      pos += 8
      return n
    }
    default:
      return -1
  }
}

/** The big-endian u32 at `at` (bounds checked by the caller). */
function word(at: number): number {
  return (((src[at] as number) << 24) | ((src[at + 1] as number) << 16) | ((src[at + 2] as number) << 8) | (src[at + 3] as number)) >>> 0
}

/** The readings of a `tb` frame, or undefined. */
function readings(): Reading[] | undefined {
  const count = arrayHead()
  if (count < 1 || count > MAX_BATCH_READINGS) return undefined
  const out: Reading[] = []
  for (let i = 0; i < count; i++) {
    const entries = mapHead()
    if (entries < 2 || entries > 3) return undefined
    let ts = -1
    let m: Metrics | undefined
    let g: Tags | undefined
    for (let e = 0; e < entries; e++) {
      const k = shortKey()
      if (k === TS && ts < 0) {
        ts = uint()
        if (ts < 0 || ts > MAX_TS_MS) return undefined
      } else if (k === 0x6d && m === undefined) {
        m = metrics()
        if (m === undefined) return undefined
      } else if (k === 0x67 && g === undefined) {
        g = tags()
        if (g === undefined) return undefined
      } else return undefined
    }
    if (ts < 0 || m === undefined) return undefined
    out.push(g === undefined ? { ts, m } : { ts, m, g })
  }
  return out
}

/** A metrics map: 1 to 64 entries, keys as checkMetrics wants them, each once; or undefined. */
function metrics(): Metrics | undefined {
  return keyed(1, MAX_METRICS, undefined, metricValue)
}

/** A tags map: at most 16 entries, keys as checkTags wants them (not `device`), values 1 to 128 bytes; or undefined. */
function tags(): Tags | undefined {
  return keyed(0, MAX_TAGS, RESERVED_TAG_KEY, tagValue)
}

/** A map of `min` to `max` entries under distinct metric keys (not `reserved`), each value read by `value`; or undefined. */
function keyed<V>(min: number, max: number, reserved: string | undefined, value: () => V | undefined): Record<string, V> | undefined {
  const entries = mapHead()
  if (entries < min || entries > max) return undefined
  const out: Record<string, V> = {}
  for (let i = 0; i < entries; i++) {
    const name = metricKey()
    if (name === undefined || name === reserved || Object.hasOwn(out, name)) return undefined
    const item = value()
    if (item === undefined) return undefined
    out[name] = item
  }
  return out
}

/** A metric's value as checkMetrics keeps it: a safe integer, a finite float64, a bool or ASCII text; or undefined. */
function metricValue(): number | boolean | string | undefined {
  const initial = src[pos++]
  if (initial === undefined) return undefined
  if (initial <= 0x1b) {
    const n = unsignedArgument(initial)
    return n < 0 ? undefined : n
  }
  if (initial >= 0x20 && initial <= 0x3b) {
    // -1 - n: at least -(2^53 - 1), as checkMetrics keeps it
    const n = unsignedArgument(initial)
    return n < 0 || n >= Number.MAX_SAFE_INTEGER ? undefined : -1 - n
  }
  if (initial === 0xfb) {
    const value = float64()
    return Number.isFinite(value) ? value : undefined
  }
  if (initial === 0xf4 || initial === 0xf5) return initial === 0xf5
  pos--
  return asciiText(MAX_METRIC_TEXT_BYTES)
}

/** A tag's value: ASCII text of 1 to 128 bytes; or undefined. */
function tagValue(): string | undefined {
  const value = asciiText(MAX_TAG_VALUE_BYTES)
  return value === undefined || value.length === 0 ? undefined : value
}

/** The float64 after its head. */
function float64(): number {
  if (pos + 8 > src.length) return Number.NaN
  if (littleEndian) for (let i = 0; i < 8; i++) floatBytes[7 - i] = src[pos + i] as number
  else for (let i = 0; i < 8; i++) floatBytes[i] = src[pos + i] as number
  pos += 8
  return float[0] as number
}

/**
 * A metric or tag key (METRIC_KEY_PATTERN: a letter or `_`, then up to 63 of `A-Z a-z 0-9 _ . -`,
 * and not `__proto__`), or undefined.
 */
function metricKey(): string | undefined {
  const initial = src[pos]
  if (initial === undefined || initial < 0x61 || initial > 0x78) return undefined
  const start = initial === 0x78 ? pos + 2 : pos + 1
  const length = initial === 0x78 ? (src[pos + 1] ?? 0) : initial - 0x60
  const end = start + length
  if (length < 1 || length > 64 || end > src.length) return undefined
  for (let i = start; i < end; i++) {
    const c = src[i] as number
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f
    if (!letter && (i === start || !((c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d))) return undefined
  }
  pos = end
  const name = interned(start, end)
  return name === '__proto__' ? undefined : name
}

/** ASCII text of at most `maxBytes` bytes (a text head of up to 65,535), or undefined. */
function asciiText(maxBytes: number): string | undefined {
  const initial = src[pos]
  if (initial === undefined || initial < 0x60 || initial > 0x79) return undefined
  let start = pos + 1
  let length = initial - 0x60
  if (initial === 0x78) {
    start = pos + 2
    length = src[pos + 1] ?? -1
  } else if (initial === 0x79) {
    start = pos + 3
    length = pos + 2 < src.length ? ((src[pos + 1] as number) << 8) | (src[pos + 2] as number) : -1
  }
  const end = start + length
  if (length < 0 || length > maxBytes || end > src.length) return undefined
  for (let i = start; i < end; i++) if ((src[i] as number) >= 0x80) return undefined
  pos = end
  return interned(start, end)
}

// Keys and many values repeat frame after frame: a direct-mapped cache of short strings gives the
// same string back without allocating; a miss builds it and takes the slot.
const CACHE_SLOTS = 512
const CACHED_MAX_BYTES = 24
const cache: Array<string | undefined> = new Array<string | undefined>(CACHE_SLOTS).fill(undefined)

/** The ASCII text of src[start, end). */
function interned(start: number, end: number): string {
  const length = end - start
  if (length > CACHED_MAX_BYTES) return String.fromCharCode(...src.subarray(start, end))
  let hash = length
  for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + (src[i] as number)) | 0
  const slot = hash & (CACHE_SLOTS - 1)
  const cached = cache[slot]
  if (cached !== undefined && cached.length === length) {
    let same = true
    for (let i = 0; i < length; i++) {
      if (cached.charCodeAt(i) !== src[start + i]) {
        same = false
        break
      }
    }
    if (same) return cached
  }
  let text = ''
  for (let i = start; i < end; i++) text += String.fromCharCode(src[i] as number)
  cache[slot] = text
  return text
}
