/**
 * InfluxDB 1.x line protocol, written by hand: this is the per-reading hot path, so no point objects,
 * no regular expressions, and lines written as bytes (`LineBuffer`), not as strings.
 *
 * The rule of this module: a reading is written **exactly, or refused** with a reason, never altered
 * and never split. InfluxDB 1.x cannot carry every text (a tag value cannot hold a newline or end in
 * a backslash), and its line splitter disagrees with its tag parser about some backslash runs. The
 * refusals below are exactly the texts that InfluxDB 1.6.7 would store differently, refuse, or that
 * would let a device's text end one line early and start a point of its own (see the injection
 * fixtures in `hub/test/influx-line.test.ts`, which run against a real influxd).
 */

/** Why `appendLine` refused a reading; nothing was appended. */
export type LineRefusal =
  | 'empty_fields' // no field at all: InfluxDB needs one
  | 'bad_timestamp' // not an integer, or outside InfluxDB's range (±9223372036854 ms)
  | 'bad_value' // a number that is not finite, or a value that is no number, bool or text
  | 'bad_name' // measurement empty or starting with '#' (a comment line to InfluxDB)
  | 'reserved_key' // a tag or field key `time`: InfluxDB 1.x refuses it for good
  | 'unwritable_text' // a key or tag value that line protocol cannot carry exactly (see `escapeName`)

/** Field values as docs/protocol.md allows them: finite number, bool, text. */
export type FieldValue = number | boolean | string

/** Largest |timestamp| in ms InfluxDB 1.x accepts: its int64 nanosecond range, truncated to ms. */
export const MAX_INFLUX_TIME_MS = 9_223_372_036_854

const COMMA = 44
const SPACE = 32
const EQUALS = 61
const BACKSLASH = 92
const QUOTE = 34
const NEWLINE = 10
const HASH = 35
const MINUS = 45
const DOT = 46
const ZERO = 48

/** What a name is: each kind has its own escapes in InfluxDB 1.x (measured against influxd 1.6.7). */
const MEASUREMENT = 0 // escapes `,` and space; influxd unescapes backslashes in it inconsistently, so none allowed
const TAG = 1 // tag key or value: escapes `,`, space, `=`; `\"` stays as written
const FIELD_KEY = 2 // escapes `,`, space, `=` and `"` (influxd turns `\"` in a field key into `"`)
type NameKind = typeof MEASUREMENT | typeof TAG | typeof FIELD_KEY

function escaped(c: number, kind: NameKind): boolean {
  return c === COMMA || c === SPACE || (kind !== MEASUREMENT && c === EQUALS) || (kind === FIELD_KEY && c === QUOTE)
}

/**
 * Escapes a measurement, tag key, tag value or field key with a backslash before each character its
 * kind escapes. Returns `undefined` (not an exception: this is the hot path) when InfluxDB 1.x cannot
 * store the text exactly or could be misled by it:
 * - a newline: line protocol has no escape for it outside quoted strings;
 * - a trailing backslash: it would escape the delimiter that follows (InfluxDB: "invalid tag format");
 * - an odd run of backslashes right before an escaped character: the tag parser reads it right, but
 *   influxd's line splitter (`scanLine`, which skips backslash pairs) then sees a bare space, starts
 *   tracking quotes inside the tag set, and a quoted newline later in the line ends the point early:
 *   the rest of a device's string becomes a point of its own. Refusing this run closes that door;
 * - any backslash in a measurement (the measurement is the hub's own name, never a device's).
 */
function escapeName(text: string, kind: NameKind): string | undefined {
  const length = text.length
  let i = 0
  for (; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c === BACKSLASH || c === NEWLINE || escaped(c, kind)) break
  }
  if (i === length) return text
  let out = text.slice(0, i)
  let from = i
  let backslashes = 0
  for (; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c === BACKSLASH) {
      if (kind === MEASUREMENT) return undefined
      backslashes++
      continue
    }
    if (c === NEWLINE) return undefined
    if (escaped(c, kind)) {
      if (backslashes % 2 === 1) return undefined
      out += text.slice(from, i) + '\\'
      from = i
    }
    backslashes = 0
  }
  if (backslashes > 0) return undefined
  return out + text.slice(from)
}

/** A string field value in double quotes, `"` and `\` escaped; newlines stay (inside quotes influxd keeps them). */
function quoteString(text: string): string {
  const length = text.length
  let i = 0
  for (; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE || c === BACKSLASH) break
  }
  if (i === length) return '"' + text + '"'
  let out = '"' + text.slice(0, i)
  let from = i
  for (; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE || c === BACKSLASH) {
      out += text.slice(from, i) + '\\'
      from = i
    }
  }
  return out + text.slice(from) + '"'
}

/**
 * Appends one line to `out`, timestamp in ms (write with `precision=ms`); the same bytes a
 * LineBuffer writes, as text. Tags are written sorted by key, as InfluxDB prefers; already-sorted
 * tags cost no sort. An empty tag value is omitted, which InfluxDB treats as the tag being absent.
 * Returns `undefined` when a line was appended, else the refusal, and then `out` is untouched.
 */
export function appendLine(
  out: string[],
  measurement: string,
  tags: Readonly<Record<string, string>>,
  fields: Readonly<Record<string, FieldValue>>,
  tsMs: number,
): LineRefusal | undefined {
  if (!writableTime(tsMs)) return 'bad_timestamp'
  const series = seriesKey(measurement, tags)
  if (typeof series === 'string') return series
  textScratch.clear()
  const refused = textScratch.point('', series, fields, tsMs)
  if (refused === undefined) out.push(textScratch.line(0))
  return refused
}

/**
 * The escaped `measurement,tag=value...` start of a line as UTF-8 bytes, or why it cannot be
 * written. A device's series is the same for all its readings: build it once, write it with
 * `LineBuffer.point` for each.
 */
export function seriesKey(measurement: string, tags: Readonly<Record<string, string>>): Uint8Array | LineRefusal {
  if (measurement.length === 0 || measurement.charCodeAt(0) === HASH) return 'bad_name'
  let line = escapeName(measurement, MEASUREMENT)
  if (line === undefined) return 'unwritable_text'

  // Tags in sorted order are the common case and cost one cheap check; others are sorted first.
  // (JS compares UTF-16 units, Go bytes: they differ only beyond U+FFFF, and influxd re-sorts anyway.)
  let previous: string | undefined
  let sorted = true
  for (const key in tags) {
    if (previous !== undefined && key < previous) {
      sorted = false
      break
    }
    previous = key
  }
  if (sorted) {
    for (const key in tags) {
      const part = tagPart(key, tags[key])
      if (part === undefined) continue
      if (part === 'reserved_key' || part === 'unwritable_text') return part
      line += part
    }
  } else {
    // Insertion sort into a reused array: tag sets are small (docs/protocol.md: at most 16 + registry +
    // device), and this allocates nothing, where `Object.keys().sort()` cost 3x the whole line.
    const keys = sortScratch
    let count = 0
    for (const key in tags) {
      let at = count++
      while (at > 0 && (keys[at - 1] as string) > key) {
        keys[at] = keys[at - 1] as string
        at--
      }
      keys[at] = key
    }
    for (let k = 0; k < count; k++) {
      const key = keys[k] as string
      const part = tagPart(key, tags[key])
      if (part === undefined) continue
      if (part === 'reserved_key' || part === 'unwritable_text') {
        keys.length = 0
        return part
      }
      line += part
    }
    keys.length = 0
  }
  return Buffer.from(line, 'utf8')
}

const writableTime = (tsMs: number): boolean => Number.isInteger(tsMs) && tsMs <= MAX_INFLUX_TIME_MS && tsMs >= -MAX_INFLUX_TIME_MS

/** Scratch keys of `seriesKey`'s sort, reused across calls (cleared after each use). */
const sortScratch: string[] = []

/** Powers of ten for the short decimals of `LineBuffer`'s number writer. */
const POW10 = [1, 10, 100, 1000, 10_000]
/** Fraction digits the number writer tries before it asks `String` (sensor values rarely carry more). */
const MAX_SHORT_FRACTION_DIGITS = 4
/**
 * Below this magnitude a double's spacing (under 2^-22) is far finer than 10^-4, so at most one
 * decimal of up to 4 fraction digits rounds to it; see `LineBuffer.#number`.
 */
const SHORT_DECIMAL_BELOW = 1e9
const TWO_POW_53 = 2 ** 53

/** Field keys as written (`key=`), by key: keys repeat across readings; cleared when full. */
const fieldKeys = new Map<string, Uint8Array | undefined>()
/** Field keys cached at most (a few KiB); a device inventing keys only costs the cache its hits. */
const MAX_CACHED_FIELD_KEYS = 4096

/** `key=` as bytes, or `undefined` when line protocol cannot carry the key (see `escapeName`). */
function fieldKeyBytes(key: string): Uint8Array | undefined {
  let bytes = fieldKeys.get(key)
  if (bytes !== undefined || fieldKeys.has(key)) return bytes
  const name = escapeName(key, FIELD_KEY)
  bytes = name === undefined || name.length === 0 ? undefined : Buffer.from(`${name}=`, 'utf8')
  if (fieldKeys.size >= MAX_CACHED_FIELD_KEYS) fieldKeys.clear()
  fieldKeys.set(key, bytes)
  return bytes
}

/** Bytes a LineBuffer starts with, by default (it doubles as it fills): 64 KiB. */
const DEFAULT_CAPACITY_BYTES = 64 * 1024

/**
 * Lines of line protocol written straight into bytes, one after another and each followed by a
 * newline, with the device of each line: what one InfluxDB write sends. No string is built per
 * line: the series comes as bytes (built once per device), field keys are cached as bytes, and
 * numbers and timestamps are written digit by digit where that gives `String`'s exact text.
 * The rules are `appendLine`'s: a reading is written exactly, or refused and nothing is written.
 */
export class LineBuffer {
  #bytes: Buffer<ArrayBuffer>
  #length = 0
  /** Where each line ends (its newline), in bytes. */
  readonly #ends: number[] = []
  readonly #devices: string[] = []

  constructor(capacityBytes = DEFAULT_CAPACITY_BYTES) {
    this.#bytes = Buffer.allocUnsafe(Math.max(64, capacityBytes))
  }

  /** Lines held. */
  get lines(): number {
    return this.#ends.length
  }

  /** Bytes held, newlines included. */
  get byteLength(): number {
    return this.#length
  }

  /**
   * Appends one line of `device`: `series` (from `seriesKey`), the fields, the timestamp in ms.
   * Returns `undefined` when the line was written, else the refusal, and then nothing was.
   */
  point(device: string, series: Uint8Array, fields: Readonly<Record<string, FieldValue>>, tsMs: number): LineRefusal | undefined {
    if (!writableTime(tsMs)) return 'bad_timestamp'
    const start = this.#length
    this.#copy(series)
    let separator = SPACE
    for (const key in fields) {
      if (key === 'time') return this.#undo(start, 'reserved_key')
      const name = fieldKeyBytes(key)
      if (name === undefined) return this.#undo(start, 'unwritable_text')
      this.#reserve(1)
      this.#bytes[this.#length++] = separator
      this.#copy(name)
      if (!this.#value(fields[key])) return this.#undo(start, 'bad_value')
      separator = COMMA
    }
    if (separator === SPACE) return this.#undo(start, 'empty_fields')
    this.#reserve(24)
    this.#bytes[this.#length++] = SPACE
    this.#integer(tsMs)
    this.#ends.push(this.#length)
    this.#devices.push(device)
    this.#bytes[this.#length++] = NEWLINE
    return undefined
  }

  /** Lines `from` to `to` (exclusive) joined by newlines, as one request body: a view, valid until `clear`. */
  body(from = 0, to = this.lines): Uint8Array<ArrayBuffer> {
    return this.#bytes.subarray(this.#start(from), to <= from ? this.#start(from) : (this.#ends[to - 1] as number))
  }

  /** Line `index` as text (for the dead letter). */
  line(index: number): string {
    return this.#bytes.toString('utf8', this.#start(index), this.#ends[index])
  }

  /** The device of line `index`. */
  device(index: number): string {
    return this.#devices[index] ?? ''
  }

  /** Forgets every line, keeping the memory (views from `body` then read what is written next). */
  clear(): void {
    this.#length = 0
    this.#ends.length = 0
    this.#devices.length = 0
  }

  #start(index: number): number {
    return index === 0 ? 0 : (this.#ends[index - 1] as number) + 1
  }

  #undo(start: number, refusal: LineRefusal): LineRefusal {
    this.#length = start
    return refusal
  }

  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#bytes.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.#bytes.length, this.#length + bytes))
    this.#bytes.copy(grown, 0, 0, this.#length)
    this.#bytes = grown
  }

  #copy(source: Uint8Array): void {
    const length = source.length
    this.#reserve(length)
    const bytes = this.#bytes
    let at = this.#length
    // Keys and series are short: a loop beats the call into `set` below a few dozen bytes.
    if (length <= 32) for (let i = 0; i < length; i++) bytes[at++] = source[i] as number
    else {
      bytes.set(source, at)
      at += length
    }
    this.#length = at
  }

  /** Writes one field value; false (nothing written) when it cannot be. docs/telemetry.md: every number is a float, so `21` has no `i` suffix. */
  #value(value: FieldValue | undefined): boolean {
    switch (typeof value) {
      case 'number':
        if (!Number.isFinite(value)) return false
        this.#number(value)
        return true
      case 'boolean':
        this.#ascii(value ? 'true' : 'false')
        return true
      case 'string':
        this.#text(quoteString(value))
        return true
      default:
        return false
    }
  }

  /**
   * A finite number as `String(value)` writes it (exponent forms such as "1e+21" and "5e-324" are
   * valid floats to InfluxDB 1.6), except that -0 keeps its sign so the stored value is the one the
   * device sent. `String` of a fraction is V8's slowest path here, so integers and decimals of up
   * to 4 fraction digits (most sensor values) are written digit by digit, with the same text:
   * - an integer below 2^53 is its digits;
   * - otherwise, when |value| < 1e9: the fewest fraction digits k <= 4 for which
   *   n = round(|value| * 10^k) gives back value as n / 10^k. Division of two exact integers is
   *   correctly rounded, so that decimal reads back as value; no shorter one does (each k below
   *   failed); and at this magnitude no other decimal of k digits does, so it is the one
   *   ECMAScript's Number::toString picks (fewest digits, then closest).
   */
  #number(value: number): void {
    this.#reserve(32)
    const bytes = this.#bytes
    if (value === 0) {
      if (1 / value < 0) bytes[this.#length++] = MINUS
      bytes[this.#length++] = ZERO
      return
    }
    const magnitude = value < 0 ? -value : value
    if (Number.isInteger(value) && magnitude < TWO_POW_53) {
      if (value < 0) bytes[this.#length++] = MINUS
      this.#digits(magnitude)
      return
    }
    if (magnitude < SHORT_DECIMAL_BELOW) {
      for (let k = 1; k <= MAX_SHORT_FRACTION_DIGITS; k++) {
        const scale = POW10[k] as number
        const n = Math.round(magnitude * scale)
        if (n / scale !== magnitude) continue
        if (value < 0) bytes[this.#length++] = MINUS
        const whole = Math.floor(n / scale)
        this.#digits(whole)
        bytes[this.#length++] = DOT
        // The fraction's k digits, leading zeros included (its last digit is not 0: k is the fewest).
        let fraction = n - whole * scale
        for (let at = this.#length + k - 1; at >= this.#length; at--) {
          const rest = Math.floor(fraction / 10)
          bytes[at] = ZERO + (fraction - rest * 10)
          fraction = rest
        }
        this.#length += k
        return
      }
    }
    this.#ascii(String(value))
  }

  /** An integer of at most 53 bits, signed (a timestamp), as decimal digits. */
  #integer(value: number): void {
    if (value < 0) {
      this.#bytes[this.#length++] = MINUS
      this.#digits(-value)
    } else this.#digits(value)
  }

  /** The decimal digits of a non-negative integer below 2^53 (capacity reserved by the caller). */
  #digits(value: number): void {
    let count = 1
    for (let bound = 10; bound <= value && count < 16; bound *= 10) count++
    const bytes = this.#bytes
    let at = this.#length + count
    this.#length = at
    let rest = value
    do {
      const next = Math.floor(rest / 10)
      bytes[--at] = ZERO + (rest - next * 10)
      rest = next
    } while (rest > 0)
  }

  /** Text known to be ASCII (number and bool literals). */
  #ascii(text: string): void {
    const length = text.length
    this.#reserve(length)
    const bytes = this.#bytes
    let at = this.#length
    for (let i = 0; i < length; i++) bytes[at++] = text.charCodeAt(i)
    this.#length = at
  }

  /** Any text, as UTF-8. */
  #text(text: string): void {
    const length = text.length
    this.#reserve(3 * length)
    const bytes = this.#bytes
    let at = this.#length
    for (let i = 0; i < length; i++) {
      const unit = text.charCodeAt(i)
      if (unit >= 0x80) {
        this.#length = at + bytes.write(text.slice(i), at, 'utf8')
        return
      }
      bytes[at++] = unit
    }
    this.#length = at
  }
}

/** The scratch buffer behind `appendLine` (one line at a time). */
const textScratch = new LineBuffer(1024)

/** `,key=value`, `undefined` for an omitted (empty) tag, or a refusal. */
function tagPart(key: string, value: string | undefined): string | 'reserved_key' | 'unwritable_text' | undefined {
  if (value === undefined || value.length === 0) return undefined
  if (key === 'time') return 'reserved_key'
  const name = escapeName(key, TAG)
  const text = escapeName(value, TAG)
  if (name === undefined || text === undefined || name.length === 0) return 'unwritable_text'
  return ',' + name + '=' + text
}
