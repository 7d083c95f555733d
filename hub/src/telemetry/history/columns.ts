// Readings in columnar form: what a history block holds and what queries walk. Rows are points as
// InfluxDB keeps them (docs/telemetry.md): one per (ts, tag set), sorted by ts then tag set, fields merged.
import type { Metrics, Reading } from '@fleetgate/device-sdk'

/** A metric's values by row: numbers (NaN where the row has none), or any values (undefined where none). */
export type Column = { readonly numeric: true; readonly values: Float64Array } | { readonly numeric: false; readonly values: ReadonlyArray<MetricValue | undefined> }

/** One metric value (docs/protocol.md). */
export type MetricValue = Metrics[string]

/** Rows of points: sorted by (ts, tag set), at most one row per (ts, tag set). */
export interface Columns {
  readonly rows: number
  /** Unix ms, ascending. */
  readonly ts: Float64Array
  /** The tag set of each row, as an index into `tagKeys`; undefined when no row has tags (all index 0). */
  readonly tags: Uint32Array | undefined
  /** Canonical text of each tag set (JSON of the tags, keys sorted); index 0 is `''`, no tags. */
  readonly tagKeys: readonly string[]
  readonly columns: ReadonlyMap<string, Column>
}

/** A source row for a merge: a reading, or a row of columns, and how late it was written (later wins a field). */
interface SourceRow {
  readonly from: Reading | { readonly columns: Columns; readonly row: number }
  readonly ts: number
  readonly tagKey: string
  /** Ranks writes: a higher rank is a later write. */
  readonly rank: number
}

/** The canonical key of a tag set: JSON with sorted keys; `''` for none. */
function tagKeyOf(tags: Readonly<Record<string, string>> | undefined): string {
  if (tags === undefined) return ''
  const keys = Object.keys(tags)
  if (keys.length === 0) return ''
  keys.sort()
  const sorted: Record<string, string> = {}
  for (const key of keys) sorted[key] = tags[key] as string
  return JSON.stringify(sorted)
}

/** The tag key of a row. */
const rowTagKey = (columns: Columns, row: number): string => (columns.tags === undefined ? '' : (columns.tagKeys[columns.tags[row] as number] as string))

/** A metric's value at a row, or undefined. */
export function valueAt(column: Column, row: number): MetricValue | undefined {
  if (column.numeric) {
    const value = column.values[row] as number
    return Number.isNaN(value) ? undefined : value
  }
  return column.values[row]
}

const compareRows = (a: SourceRow, b: SourceRow): number =>
  a.ts !== b.ts ? a.ts - b.ts : a.tagKey !== b.tagKey ? (a.tagKey < b.tagKey ? -1 : 1) : a.rank - b.rank

/** Builds columns for `rows` output rows, each merging the source rows of one group (later rank wins a field). */
class ColumnsBuilder {
  readonly #rows: number
  readonly ts: Float64Array
  readonly #tags: Uint32Array
  #tagged = false
  readonly #tagIndex = new Map<string, number>([['', 0]])
  readonly #tagKeys: string[] = ['']
  readonly #numbers = new Map<string, Float64Array>()
  readonly #others = new Map<string, Array<MetricValue | undefined>>()

  constructor(rows: number) {
    this.#rows = rows
    this.ts = new Float64Array(rows)
    this.#tags = new Uint32Array(rows)
  }

  row(row: number, ts: number, tagKey: string): void {
    this.ts[row] = ts
    if (tagKey === '') return
    let index = this.#tagIndex.get(tagKey)
    if (index === undefined) {
      index = this.#tagKeys.length
      this.#tagKeys.push(tagKey)
      this.#tagIndex.set(tagKey, index)
    }
    this.#tags[row] = index
    this.#tagged = true
  }

  set(row: number, name: string, value: MetricValue): void {
    let numbers = this.#numbers.get(name)
    if (typeof value === 'number') {
      // The common case first: a number for a column of numbers, one lookup.
      if (numbers !== undefined) {
        numbers[row] = value
        return
      }
      const other = this.#others.get(name)
      if (other !== undefined) {
        other[row] = value
        return
      }
      numbers = new Float64Array(this.#rows).fill(Number.NaN)
      numbers[row] = value
      this.#numbers.set(name, numbers)
      return
    }
    let other = this.#others.get(name)
    if (other === undefined) {
      // A value that is not a number makes the column one of any values (rare: mixed types).
      other = new Array<MetricValue | undefined>(this.#rows)
      if (numbers !== undefined) {
        for (let i = 0; i < this.#rows; i++) if (!Number.isNaN(numbers[i] as number)) other[i] = numbers[i] as number
        this.#numbers.delete(name)
      }
      this.#others.set(name, other)
    }
    other[row] = value
  }

  build(): Columns {
    const columns = new Map<string, Column>()
    // Sorted names: a raw answer lists a point's metrics as InfluxDB lists `*` columns.
    for (const name of [...this.#numbers.keys(), ...this.#others.keys()].sort()) {
      const numbers = this.#numbers.get(name)
      columns.set(name, numbers !== undefined ? { numeric: true, values: numbers } : { numeric: false, values: this.#others.get(name) as Array<MetricValue | undefined> })
    }
    return { rows: this.#rows, ts: this.ts, tags: this.#tagged ? this.#tags : undefined, tagKeys: this.#tagKeys, columns }
  }
}

/**
 * Sorts and merges source rows into columns: rows of equal (ts, tag set) become one point whose
 * fields are merged, a later write (higher rank) winning a field, as InfluxDB merges a point written
 * twice (docs/protocol.md: a resent reading lands on the same point).
 */
function mergeRows(sources: SourceRow[]): Columns {
  sources.sort(compareRows)
  let groups = 0
  for (let i = 0; i < sources.length; i++) {
    const a = sources[i] as SourceRow
    const b = sources[i - 1]
    if (b === undefined || a.ts !== b.ts || a.tagKey !== b.tagKey) groups++
  }
  const builder = new ColumnsBuilder(groups)
  let row = -1
  for (let i = 0; i < sources.length; i++) {
    const a = sources[i] as SourceRow
    const b = sources[i - 1]
    if (b === undefined || a.ts !== b.ts || a.tagKey !== b.tagKey) builder.row(++row, a.ts, a.tagKey)
    if ('m' in a.from) {
      for (const name in a.from.m) builder.set(row, name, a.from.m[name] as MetricValue)
    } else {
      for (const [name, column] of a.from.columns.columns) {
        const value = valueAt(column, a.from.row)
        if (value !== undefined) builder.set(row, name, value)
      }
    }
  }
  return builder.build()
}

/**
 * The readings of one frame (or the part of it in one hour) as columns. A frame's later reading
 * wins a field over an earlier one of the same ts and tags, as a later line of one InfluxDB write
 * does. Readings already in ts order without tags (the common case) skip the sort.
 */
export function columnsOfReadings(readings: readonly Reading[]): Columns {
  let ordered = true
  for (let i = 0; i < readings.length && ordered; i++) {
    const reading = readings[i] as Reading
    if (reading.g !== undefined && Object.keys(reading.g).length > 0) ordered = false
    else if (i > 0 && reading.ts <= (readings[i - 1] as Reading).ts) ordered = false
  }
  if (ordered) {
    const builder = new ColumnsBuilder(readings.length)
    readings.forEach((reading, row) => {
      builder.row(row, reading.ts, '')
      for (const name in reading.m) builder.set(row, name, reading.m[name] as MetricValue)
    })
    return builder.build()
  }
  return mergeRows(readings.map((reading, row): SourceRow => ({ from: reading, ts: reading.ts, tagKey: tagKeyOf(reading.g), rank: row })))
}

/** A slice of rows of one columns object, and how late it was written. */
export interface Run {
  readonly columns: Columns
  readonly start: number
  readonly end: number
  /** Ranks writes: a higher rank is a later write. */
  readonly rank: number
}

/** Merges runs (each sorted and unique) into one sorted, unique columns object. */
export function mergeRuns(runs: readonly Run[]): Columns {
  const sources: SourceRow[] = []
  for (const { columns, start, end, rank } of runs) {
    for (let row = start; row < end; row++) sources.push({ from: { columns, row }, ts: columns.ts[row] as number, tagKey: rowTagKey(columns, row), rank })
  }
  return mergeRows(sources)
}

/** Rows [start, end) of `columns` as columns of their own (views, no copy of the values). */
export function sliceColumns(columns: Columns, start: number, end: number): Columns {
  if (start === 0 && end === columns.rows) return columns
  const sliced = new Map<string, Column>()
  for (const [name, column] of columns.columns) {
    sliced.set(name, column.numeric ? { numeric: true, values: column.values.subarray(start, end) } : { numeric: false, values: column.values.slice(start, end) })
  }
  return { rows: end - start, ts: columns.ts.subarray(start, end), tags: columns.tags?.subarray(start, end), tagKeys: columns.tagKeys, columns: sliced }
}

/**
 * Joins columns that follow each other in time without a point in common (what a MergeWindow
 * hands out, one `take` after another) into one: arrays copied part by part, no row looked at
 * twice. Compaction's common case, where a sort would be wasted.
 */
export function concatColumns(parts: readonly Columns[]): Columns {
  const only = parts[0]
  if (parts.length === 1 && only !== undefined) return only
  let rows = 0
  for (const part of parts) rows += part.rows
  const ts = new Float64Array(rows)
  const tagIndex = new Map<string, number>([['', 0]])
  const tagKeys = ['']
  const tagged = parts.some((part) => part.tags !== undefined)
  const tags = tagged ? new Uint32Array(rows) : undefined
  const names = [...new Set(parts.flatMap((part) => [...part.columns.keys()]))].sort()
  const numeric = new Set(names.filter((name) => parts.every((part) => part.columns.get(name)?.numeric !== false)))
  const numbers = new Map([...numeric].map((name) => [name, new Float64Array(rows).fill(Number.NaN)]))
  const others = new Map(names.filter((name) => !numeric.has(name)).map((name) => [name, new Array<MetricValue | undefined>(rows)]))
  let at = 0
  for (const part of parts) {
    ts.set(part.ts, at)
    if (tags !== undefined && part.tags !== undefined) {
      const local = part.tagKeys.map((key) => {
        let index = tagIndex.get(key)
        if (index === undefined) {
          index = tagKeys.length
          tagKeys.push(key)
          tagIndex.set(key, index)
        }
        return index
      })
      for (let row = 0; row < part.rows; row++) tags[at + row] = local[part.tags[row] as number] as number
    }
    for (const [name, column] of part.columns) {
      const into = numbers.get(name)
      if (into !== undefined && column.numeric) {
        into.set(column.values, at)
        continue
      }
      const values = others.get(name) as Array<MetricValue | undefined>
      for (let row = 0; row < part.rows; row++) values[at + row] = valueAt(column, row)
    }
    at += part.rows
  }
  const columns = new Map<string, Column>()
  for (const name of names) {
    const into = numbers.get(name)
    columns.set(name, into !== undefined ? { numeric: true, values: into } : { numeric: false, values: others.get(name) as Array<MetricValue | undefined> })
  }
  return { rows, ts, tags, tagKeys, columns }
}
