import type { Clock } from '@fleetgate/device-sdk'
import { MAX_METRICS, METRIC_KEY_PATTERN } from '@fleetgate/device-sdk/wire'
import type { Registry } from '../devices/index.js'
import type { Logger } from '../logger.js'
import { AGGREGATE_FNS, type AggregateFn, type TelemetryPoint, type TelemetryQuery, type TelemetryRequest } from '../telemetry/index.js'
import { apiError, deviceNotFound, invalid, type Reply, type Router } from '../transport/index.js'
import { parseDurationMs } from '../validate.js'

/** What the telemetry query needs. */
export interface TelemetryApiDeps {
  readonly registry: Registry
  /** InfluxDB when one is configured, else the embedded history; undefined when the hub keeps no telemetry. */
  readonly query: TelemetryQuery | undefined
  /** Why there is no back end, for the 503 (names the variables to set). */
  readonly unavailable: string
  readonly log: Logger
  readonly clock: Clock
}

/** Points a telemetry query returns when `limit` is not given: 1,000. */
export const DEFAULT_LIMIT = 1000
/** Largest `limit` of a telemetry query: 10,000 points. */
export const MAX_LIMIT = 10_000
/** The span a telemetry query covers when `from` is not given, in ms: the hour before `to`. */
export const DEFAULT_SPAN_MS = 3_600_000
/** Shortest `every`: 1 s. */
export const MIN_EVERY_MS = 1000
/** Longest `every`: 30 days. */
export const MAX_EVERY_MS = 30 * 86_400_000
/** An ISO 8601 date-time with a zone (what `Date#toISOString` writes, offsets allowed). */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/

const DAY_MS = 86_400_000
/** The first instant `Date#toISOString` writes with a six-digit year (10000-01-01). */
const FOUR_DIGIT_YEARS_END_MS = 253_402_300_800_000
const two = (n: number): string => (n < 10 ? `0${n}` : String(n))
const three = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n))

/**
 * A formatter of Unix ms as ISO 8601 text, exactly as `Date#toISOString` writes it, that builds a
 * day's date once: an answer of 10,000 points spends most of its time on their times otherwise.
 */
export function isoFormatter(): (ms: number) => string {
  let day = Number.NaN
  let dayText = ''
  return (ms) => {
    if (ms < 0 || ms >= FOUR_DIGIT_YEARS_END_MS) return new Date(ms).toISOString()
    const start = Math.floor(ms / DAY_MS) * DAY_MS
    if (start !== day) {
      day = start
      dayText = new Date(start).toISOString().slice(0, 11)
    }
    const inDay = ms - start
    const seconds = Math.floor(inDay / 1000)
    return `${dayText}${two(Math.floor(seconds / 3600))}:${two(Math.floor(seconds / 60) % 60)}:${two(seconds % 60)}.${three(inDay % 1000)}Z`
  }
}

/**
 * The answer's JSON, written point by point: `{device, points: [{ts, ...metrics}]}` with `ts`
 * first, and never a metric's (a metric named `ts` cannot stand in for the point's time). The same
 * text JSON.stringify would write of those objects, without making them: 10,000 points a call.
 */
export function pointsJson(device: string, points: readonly TelemetryPoint[]): string {
  const iso = isoFormatter()
  // `,"name":` once per metric name; a number or a bool is its own JSON text (numbers are finite).
  const keys = new Map<string, string>()
  const parts: string[] = []
  for (const { ts, values } of points) {
    let point = `{"ts":"${iso(ts)}"`
    for (const name in values) {
      if (name === 'ts') continue
      let key = keys.get(name)
      if (key === undefined) {
        key = `,${JSON.stringify(name)}:`
        keys.set(name, key)
      }
      const value = values[name]
      point += key + (typeof value === 'string' ? JSON.stringify(value) : String(value))
    }
    parts.push(`${point}}`)
  }
  return `{"device":${JSON.stringify(device)},"points":[${parts.join(',')}]}`
}

function parseTime(text: string | null, field: string, fallback: number): number | string {
  if (text === null) return fallback
  const ms = ISO_8601.test(text) ? Date.parse(text) : Number.NaN
  return Number.isFinite(ms) ? ms : `${field}: an ISO 8601 date-time with a zone, e.g. 2026-01-31T12:00:00Z`
}

/** The request's checked parameters, or the 400 that names the first one wrong. */
function checkRequest(device: string, query: URLSearchParams, now: number): TelemetryRequest | Reply {
  const toMs = parseTime(query.get('to'), 'to', now)
  if (typeof toMs === 'string') return invalid(toMs)
  const fromMs = parseTime(query.get('from'), 'from', toMs - DEFAULT_SPAN_MS)
  if (typeof fromMs === 'string') return invalid(fromMs)
  if (fromMs > toMs) return invalid('from: not after to')
  const metricsText = query.get('metrics')
  const metrics = metricsText === null ? undefined : metricsText.split(',')
  if (metrics !== undefined && (metrics.length > MAX_METRICS || metrics.some((m) => !METRIC_KEY_PATTERN.test(m)) || new Set(metrics).size < metrics.length)) {
    return invalid(`metrics: up to ${MAX_METRICS} different metric names, comma-separated`)
  }
  const limitText = query.get('limit')
  const limit = limitText === null ? DEFAULT_LIMIT : Number(limitText)
  if (limitText !== null && (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_LIMIT)) {
    return invalid(`limit: a whole number from 1 to ${MAX_LIMIT}`)
  }
  const everyText = query.get('every')
  const fnText = query.get('fn')
  if (everyText === null) {
    if (fnText !== null) return invalid('fn: only with every (e.g. every=1h&fn=max)')
    return { device, fromMs, toMs, metrics, limit, every: undefined }
  }
  const everyMs = parseDurationMs(everyText)
  if (everyMs === undefined || everyMs < MIN_EVERY_MS || everyMs > MAX_EVERY_MS) {
    return invalid('every: a duration from 1s to 30d: a whole number and one of s, m, h, d (e.g. 10s, 5m, 1h)')
  }
  const fn = fnText ?? 'mean'
  if (!AGGREGATE_FNS.includes(fn as AggregateFn)) return invalid(`fn: one of ${AGGREGATE_FNS.join(', ')}`)
  return { device, fromMs, toMs, metrics, limit, every: { everyMs, fn: fn as AggregateFn } }
}

/**
 * `GET /api/v1/devices/{id}/telemetry` (docs/rest.md): a device's points, raw or per interval, from
 * InfluxDB when one is configured, else from the embedded history; one validation, one shape.
 */
export function registerTelemetryRoutes(router: Router, deps: TelemetryApiDeps): void {
  router.route('get', '/api/v1/devices/:id/telemetry', { scope: 'reader', body: 'none' }, async ({ params, query }) => {
    const device = params[0] ?? ''
    if (deps.registry.get(device) === undefined) return deviceNotFound(device)
    const request = checkRequest(device, query, deps.clock.now())
    if ('status' in request) return request
    if (deps.query === undefined) return apiError(503, 'not_ready', deps.unavailable)
    let points
    try {
      points = await deps.query.run(request)
    } catch (err) {
      // The history answers from the store, whose failures are the hub's own (500, logged by the guard).
      if (deps.query.name !== 'influxdb') throw err
      // The error names InfluxDB's address and its own words: the log keeps them, the client gets neither.
      deps.log.warn({ err, device }, 'telemetry query failed')
      return apiError(503, 'not_ready', 'InfluxDB did not answer the query; see the hub log')
    }
    return { status: 200, text: { contentType: 'application/json', body: pointsJson(device, points) } }
  })
}
