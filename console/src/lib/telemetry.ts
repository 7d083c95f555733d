import type { TelemetryPoint, TelemetryQuery } from './api.js'

/** The chart's range choices. */
export type RangeKind = 'live' | '1h' | '24h' | '7d' | 'custom'

const MINUTE_MS = 60_000
const HOUR_MS = 60 * MINUTE_MS
const DAY_MS = 24 * HOUR_MS

/** How far back the live tail starts, in ms; default 15 minutes. */
export const LIVE_TAIL_MS = 15 * MINUTE_MS
/** Spans up to this long are read raw, longer ones aggregated with `every`, in ms; default 2 h. */
export const RAW_SPAN_MAX_MS = 2 * HOUR_MS
/** Points an aggregated chart aims at (the bucket is the span divided by this, rounded up to a nice step). */
export const TARGET_POINTS = 1000
/** docs/rest.md telemetry `limit` the console asks for: the API's maximum, 10,000. */
export const TELEMETRY_LIMIT = 10_000
/** Readings a chart keeps while live readings arrive; the oldest go first. Default 20,000. */
export const MAX_CHART_POINTS = 20_000

/** Bucket sizes (`every`), smallest first. */
const STEPS: ReadonlyArray<readonly [string, number]> = [
  ['10s', 10_000],
  ['30s', 30_000],
  ['1m', MINUTE_MS],
  ['5m', 5 * MINUTE_MS],
  ['10m', 10 * MINUTE_MS],
  ['15m', 15 * MINUTE_MS],
  ['30m', 30 * MINUTE_MS],
  ['1h', HOUR_MS],
  ['3h', 3 * HOUR_MS],
  ['6h', 6 * HOUR_MS],
  ['12h', 12 * HOUR_MS],
  ['1d', DAY_MS],
]

/** The smallest bucket that keeps a span under `TARGET_POINTS`, or undefined for a raw read. */
export function chooseEvery(spanMs: number): string | undefined {
  if (spanMs <= RAW_SPAN_MAX_MS) return undefined
  const wanted = spanMs / TARGET_POINTS
  return (STEPS.find(([, ms]) => ms >= wanted) ?? STEPS[STEPS.length - 1])?.[0]
}

/** `every` durations in ms, by name. */
export const EVERY_MS: ReadonlyMap<string, number> = new Map(STEPS)

/**
 * Whether points look aggregated into `every` buckets: no two are closer than a bucket. A hub
 * that ignores `every` answers raw readings, and the console says so instead of calling them means.
 */
export function looksAggregated(points: readonly TelemetryPoint[], every: string): boolean {
  const bucketMs = EVERY_MS.get(every) ?? 0
  for (let i = 1; i < points.length; i++) {
    if ((points[i] as TelemetryPoint).ts - (points[i - 1] as TelemetryPoint).ts < bucketMs) return false
  }
  return true
}

/** A range made concrete: the query, and whether live readings extend it (its end is "now"). */
export interface ResolvedRange {
  readonly query: TelemetryQuery
  readonly follows: boolean
}

/** The query for a range choice at `now`; `custom` takes `from` and `to` in Unix ms. */
export function resolveRange(kind: RangeKind, now: number, custom?: { from: number; to: number }): ResolvedRange {
  const span = { live: LIVE_TAIL_MS, '1h': HOUR_MS, '24h': DAY_MS, '7d': 7 * DAY_MS, custom: 0 }[kind]
  const from = kind === 'custom' ? (custom?.from ?? now - HOUR_MS) : now - span
  const to = kind === 'custom' ? (custom?.to ?? now) : now
  const every = chooseEvery(to - from)
  const query: TelemetryQuery = every === undefined ? { from, to, limit: TELEMETRY_LIMIT } : { from, to, limit: TELEMETRY_LIMIT, every, fn: 'mean' }
  return { query, follows: kind !== 'custom' }
}

/** Columns for uPlot: times in seconds and one column per numeric metric (null where absent). */
export interface Series {
  readonly times: number[]
  readonly columns: Map<string, Array<number | null>>
}

/** Splits points into numeric series, in time order, at most `MAX_CHART_POINTS` of the newest. */
export function toSeries(points: readonly TelemetryPoint[]): Series {
  const sorted = [...points].sort((a, b) => a.ts - b.ts).slice(-MAX_CHART_POINTS)
  const names = new Set<string>()
  for (const point of sorted) for (const [name, value] of Object.entries(point.values)) if (typeof value === 'number') names.add(name)
  const columns = new Map<string, Array<number | null>>()
  for (const name of [...names].sort()) {
    columns.set(name, sorted.map((p) => (typeof p.values[name] === 'number' ? (p.values[name] as number) : null)))
  }
  return { times: sorted.map((p) => p.ts / 1000), columns }
}

/** A metric's latest value, when it came, and its typical interval (median gap), if known. */
export interface Latest {
  readonly value: number | boolean | string
  readonly ts: number
  readonly intervalMs: number | undefined
}

/** Readings used to estimate a metric's interval. */
const INTERVAL_SAMPLES = 10

/** The latest value of every metric in `points`, with its typical interval. */
export function latestValues(points: readonly TelemetryPoint[]): Map<string, Latest> {
  const times = new Map<string, number[]>()
  const last = new Map<string, { value: number | boolean | string; ts: number }>()
  for (const point of [...points].sort((a, b) => a.ts - b.ts)) {
    for (const [name, value] of Object.entries(point.values)) {
      last.set(name, { value, ts: point.ts })
      const seen = times.get(name) ?? []
      seen.push(point.ts)
      if (seen.length > INTERVAL_SAMPLES) seen.shift()
      times.set(name, seen)
    }
  }
  const out = new Map<string, Latest>()
  for (const [name, { value, ts }] of [...last].sort(([a], [b]) => a.localeCompare(b))) {
    const seen = times.get(name) ?? []
    const gaps = seen.slice(1).map((t, i) => t - (seen[i] as number)).sort((a, b) => a - b)
    const median = gaps.length === 0 ? undefined : gaps[Math.floor(gaps.length / 2)]
    out.set(name, { value, ts, intervalMs: median })
  }
  return out
}

/** A value never counts as stale sooner than this, in ms; default 60 s. */
export const STALE_FLOOR_MS = 60_000
/** Staleness for a metric whose interval is unknown, in ms; default 5 minutes. */
export const STALE_DEFAULT_MS = 5 * MINUTE_MS
/** A value is stale after this many of its typical intervals without a new one; default 3. */
export const STALE_INTERVALS = 3

/** Whether `latest` is stale at `now`: no new value for 3 typical intervals (at least 60 s), or 5 min when unknown. */
export function isStale(latest: Latest, now: number): boolean {
  const limit = latest.intervalMs === undefined ? STALE_DEFAULT_MS : Math.max(STALE_FLOOR_MS, STALE_INTERVALS * latest.intervalMs)
  return now - latest.ts > limit
}
