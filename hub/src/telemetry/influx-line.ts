/**
 * InfluxDB 1.x line protocol, written by hand: this is the per-reading hot path, so no point objects,
 * no regular expressions, and no allocation for text that needs no escaping.
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

/** One field value, or `undefined` when it cannot be written. docs/telemetry.md: every number is a float, so `21` has no `i` suffix. */
function fieldValue(value: FieldValue | undefined): string | undefined {
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) return undefined
      // String(-0) is "0"; keep the sign so the stored value is the one the device sent.
      // Exponent forms such as "1e+21" and "5e-324" are valid floats to InfluxDB 1.6.
      return value === 0 && 1 / value < 0 ? '-0' : String(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'string':
      return quoteString(value)
    default:
      return undefined
  }
}

/**
 * Appends one line (no trailing newline) to `out`, timestamp in ms (write with `precision=ms`).
 * Tags are written sorted by key, as InfluxDB prefers; already-sorted tags cost no sort. An empty tag
 * value is omitted, which InfluxDB treats as the tag being absent. Returns `undefined` when a line
 * was appended, else the refusal, and then `out` is untouched.
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
  return typeof series === 'string' ? series : appendFields(out, series.key, fields, tsMs)
}

/**
 * Appends one line of an already escaped series (see `seriesKey`): the same line as `appendLine`,
 * without escaping a device's tags again for each of its readings.
 */
export function appendPoint(out: string[], series: string, fields: Readonly<Record<string, FieldValue>>, tsMs: number): LineRefusal | undefined {
  return writableTime(tsMs) ? appendFields(out, series, fields, tsMs) : 'bad_timestamp'
}

/** The escaped `measurement,tag=value...` start of a line, or why it cannot be written. */
export function seriesKey(measurement: string, tags: Readonly<Record<string, string>>): { readonly key: string } | LineRefusal {
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
  return { key: line }
}

const writableTime = (tsMs: number): boolean => Number.isInteger(tsMs) && tsMs <= MAX_INFLUX_TIME_MS && tsMs >= -MAX_INFLUX_TIME_MS

function appendFields(out: string[], series: string, fields: Readonly<Record<string, FieldValue>>, tsMs: number): LineRefusal | undefined {
  let line = series
  let separator = ' '
  for (const key in fields) {
    if (key === 'time') return 'reserved_key'
    const name = escapeName(key, FIELD_KEY)
    if (name === undefined || name.length === 0) return 'unwritable_text'
    const value = fieldValue(fields[key])
    if (value === undefined) return 'bad_value'
    line += separator + name + '=' + value
    separator = ','
  }
  if (separator === ' ') return 'empty_fields'
  out.push(line + ' ' + formatTime(tsMs))
  return undefined
}

/** Scratch keys of `appendLine`'s sort, reused across calls (cleared after each use). */
const sortScratch: string[] = []

// Number-to-text of a 13-digit ms timestamp is V8's slow double path (~4 M/s here); its top digits
// change every ~17 minutes, so they are cached and only the low six digits (a small int) are formatted.
let cachedHigh = -1
let cachedHighText = ''

/** `tsMs` as decimal text: same output as `String(tsMs)`, about 3x faster for current times. */
function formatTime(tsMs: number): string {
  if (tsMs < 1_000_000) return String(tsMs)
  const high = Math.floor(tsMs / 1_000_000)
  if (high !== cachedHigh) {
    cachedHigh = high
    cachedHighText = String(high)
  }
  const low = String(tsMs - high * 1_000_000)
  return cachedHighText + '000000'.slice(low.length) + low
}

/** `,key=value`, `undefined` for an omitted (empty) tag, or a refusal. */
function tagPart(key: string, value: string | undefined): string | 'reserved_key' | 'unwritable_text' | undefined {
  if (value === undefined || value.length === 0) return undefined
  if (key === 'time') return 'reserved_key'
  const name = escapeName(key, TAG)
  const text = escapeName(value, TAG)
  if (name === undefined || text === undefined || name.length === 0) return 'unwritable_text'
  return ',' + name + '=' + text
}
