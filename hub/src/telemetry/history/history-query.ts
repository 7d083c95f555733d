// The telemetry query (docs/rest.md) over the history: raw points and intervals, computed the way
// InfluxDB computes them (InfluxQL `GROUP BY time(every) fill(none)`), so that both back ends
// answer alike (test/history-influx.test.ts feeds both and compares).
import type { Metrics } from '@fleetgate/device-sdk'
import type { HistoryStore } from '../../store/index.js'
import type { AggregateFn, TelemetryPoint, TelemetryRequest } from '../telemetry-query.js'
import { blockHeader, decodeBlock } from './block-codec.js'
import { valueAt, type Column, type Columns, type MetricValue } from './columns.js'
import { MergeWindow } from './merge-window.js'

/** The history's buckets: every block holds readings of one device within one hour. */
export const HISTORY_HOUR_MS = 3_600_000

/** Start of the hour `ts` falls in. */
export const hourOf = (ts: number): number => Math.floor(ts / HISTORY_HOUR_MS) * HISTORY_HOUR_MS

/** A block's rank among writes: its order, then its part (a compaction's output after the blocks of its order). */
export const rankOf = (order: number, part: number): number => order * 1024 + part

/** Yields to the event loop: a long query shares the thread with ingest in slices. */
/** Resolves on the event loop's next turn: long work yields between slices. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * The rows of a device in [fromMs, toMs], sorted and unique, as columns, in slices: after
 * `sliceMs` of work it waits one turn of the event loop. Stops early when the consumer does.
 */
export async function* rowsOf(store: HistoryStore, request: Pick<TelemetryRequest, 'device' | 'fromMs' | 'toMs' | 'metrics'>, sliceMs: number): AsyncGenerator<Columns> {
  const { device, fromMs, toMs } = request
  const wanted = request.metrics === undefined ? undefined : new Set(request.metrics)
  const window = new MergeWindow()
  let sliceStart = performance.now()
  for (const block of store.read(device, hourOf(fromMs), hourOf(toMs))) {
    // Blocks come in order of their earliest ts: nothing after one that starts past the range is in it.
    if (block.minTs > toMs) break
    if (blockHeader(block.value).maxTs < fromMs) continue
    const final = window.take(block.minTs)
    if (final !== undefined) yield final
    window.push(decodeBlock(block.value, wanted), rankOf(block.order, block.part))
    if (performance.now() - sliceStart >= sliceMs) {
      await nextTurn()
      sliceStart = performance.now()
    }
  }
  const rest = window.take(Number.POSITIVE_INFINITY)
  if (rest !== undefined) yield rest
}

/** The columns to read, by name: the request's metrics in its order, or every column (sorted by name). */
function wantedColumns(request: Pick<TelemetryRequest, 'metrics'>, columns: Columns): Array<readonly [string, Column]> {
  const out: Array<readonly [string, Column]> = []
  for (const name of request.metrics ?? columns.columns.keys()) {
    const column = columns.columns.get(name)
    if (column !== undefined) out.push([name, column])
  }
  return out
}

/** Raw points: one per row with at least one wanted metric, oldest first, at most `limit`. */
export async function rawPoints(rows: AsyncIterable<Columns>, request: TelemetryRequest): Promise<TelemetryPoint[]> {
  const points: TelemetryPoint[] = []
  for await (const columns of rows) {
    const wanted = wantedColumns(request, columns)
    for (let row = 0; row < columns.rows; row++) {
      const ts = columns.ts[row] as number
      if (ts < request.fromMs) continue
      if (ts > request.toMs) return points
      const values: Metrics = {}
      let any = false
      for (const [name, column] of wanted) {
        const value = valueAt(column, row)
        if (value === undefined) continue
        values[name] = value
        any = true
      }
      if (!any) continue
      points.push({ ts, values })
      if (points.length === request.limit) return points
    }
  }
  return points
}

/** One metric within one interval. */
interface Accumulator {
  count: number
  sum: number
  min: number
  max: number
  last: MetricValue
  /** Whether a value that is not a number came: the metric then takes `last` (docs/rest.md). */
  other: boolean
}

function reduce(acc: Accumulator, fn: AggregateFn): MetricValue {
  if (acc.other) return acc.last
  switch (fn) {
    case 'mean':
      return acc.sum / acc.count
    case 'min':
      return acc.min
    case 'max':
      return acc.max
    case 'last':
      return acc.last
    case 'count':
      return acc.count
  }
}

/** Adds rows [from, to) of a column (one interval) to the metric's accumulator: a tight loop per column, no call per value. */
function accumulateRows(accumulators: Map<string, Accumulator>, name: string, column: Column, from: number, to: number): void {
  let acc = accumulators.get(name)
  if (column.numeric) {
    const values = column.values
    let { count, sum, min, max } = acc ?? { count: 0, sum: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY }
    let last = Number.NaN
    for (let row = from; row < to; row++) {
      const value = values[row] as number
      if (Number.isNaN(value)) continue
      count++
      sum += value
      if (value < min) min = value
      if (value > max) max = value
      last = value
    }
    if (Number.isNaN(last)) return
    // Rows come in ts order, so the last value seen is the interval's last.
    if (acc === undefined) accumulators.set(name, { count, sum, min, max, last, other: false })
    else Object.assign(acc, { count, sum, min, max, last })
    return
  }
  for (let row = from; row < to; row++) {
    const value = column.values[row]
    if (value === undefined) continue
    if (acc === undefined) {
      acc = { count: 0, sum: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY, last: value, other: false }
      accumulators.set(name, acc)
    }
    acc.last = value
    if (typeof value !== 'number') {
      acc.other = true
      continue
    }
    acc.count++
    acc.sum += value
    if (value < acc.min) acc.min = value
    if (value > acc.max) acc.max = value
  }
}

/**
 * Intervals of `everyMs` aligned to the Unix epoch (start = floor(ts / every) * every, as InfluxDB
 * aligns `GROUP BY time()`), each metric reduced by `fn`, non-numeric ones by `last`; intervals
 * without a value are left out (`fill(none)`); oldest first, at most `limit`.
 */
export async function aggregatePoints(rows: AsyncIterable<Columns>, request: TelemetryRequest, every: { everyMs: number; fn: AggregateFn }): Promise<TelemetryPoint[]> {
  const points: TelemetryPoint[] = []
  const { everyMs, fn } = every
  let bucket = Number.NaN
  let accumulators = new Map<string, Accumulator>()
  /** Closes the current interval; true once `limit` intervals are out. */
  const close = (): boolean => {
    if (accumulators.size === 0) return false
    const values: Metrics = {}
    const names = request.metrics ?? [...accumulators.keys()].sort()
    for (const name of names) {
      const acc = accumulators.get(name)
      if (acc !== undefined) values[name] = reduce(acc, fn)
    }
    points.push({ ts: bucket, values })
    accumulators = new Map()
    return points.length === request.limit
  }
  for await (const columns of rows) {
    const wanted = wantedColumns(request, columns)
    const ts = columns.ts
    let row = 0
    while (row < columns.rows && (ts[row] as number) < request.fromMs) row++
    let end = row
    while (end < columns.rows && (ts[end] as number) <= request.toMs) end++
    // One interval's rows at a time, each column reduced in a loop of its own.
    while (row < end) {
      const start = Math.floor((ts[row] as number) / everyMs) * everyMs
      if (start !== bucket) {
        if (close()) return points
        bucket = start
      }
      let next = row + 1
      while (next < end && (ts[next] as number) < start + everyMs) next++
      for (const [name, column] of wanted) accumulateRows(accumulators, name, column, row, next)
      row = next
    }
  }
  close()
  return points
}
