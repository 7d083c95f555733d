import type { Clock } from '@fleetgate/device-sdk'
import { MAX_METRICS, METRIC_KEY_PATTERN } from '@fleetgate/device-sdk/wire'
import type { Registry } from '../devices/index.js'
import type { Logger } from '../logger.js'
import { TELEMETRY_MEASUREMENT, type InfluxWriter } from '../telemetry/index.js'
import { apiError, invalid, type Reply, type Router } from '../transport/index.js'

/** What the telemetry query needs. */
export interface TelemetryApiDeps {
  readonly registry: Registry
  /** InfluxDB, or undefined when shipping is off. */
  readonly influx: InfluxWriter | undefined
  readonly log: Logger
  readonly clock: Clock
}

/** Points a telemetry query returns when `limit` is not given: 1,000. */
export const DEFAULT_LIMIT = 1000
/** Largest `limit` of a telemetry query: 10,000 points. */
export const MAX_LIMIT = 10_000
/** The span a telemetry query covers when `from` is not given, in ms: the hour before `to`. */
export const DEFAULT_SPAN_MS = 3_600_000
/** An ISO 8601 date-time with a zone (what `Date#toISOString` writes, offsets allowed). */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/


/** An InfluxQL identifier, double-quoted; the key pattern admits no quote or backslash, escaping is belt and braces. */
const identifier = (name: string): string => `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`
/** An InfluxQL string literal. */
const literal = (text: string): string => `'${text.replace(/[\\']/g, (c) => `\\${c}`)}'`

function parseTime(text: string | null, field: string, fallback: number): number | string {
  if (text === null) return fallback
  const ms = ISO_8601.test(text) ? Date.parse(text) : Number.NaN
  return Number.isFinite(ms) ? ms : `${field}: an ISO 8601 date-time with a zone, e.g. 2026-01-31T12:00:00Z`
}

/**
 * `GET /api/v1/devices/{id}/telemetry` (CONTRACT §4): a device's points from InfluxDB. Every
 * parameter is validated and the query is built from checked parts only: nothing a caller sends
 * is spliced in unchecked.
 */
export function registerTelemetryRoutes(router: Router, deps: TelemetryApiDeps): void {
  const now = (): number => deps.clock.now()
  router.route('get', '/api/v1/devices/:id/telemetry', { scope: 'reader', body: 'none' }, async ({ params, query }) => {
    const device = params[0] ?? ''
    if (deps.registry.get(device) === undefined) return apiError(404, 'not_found', `no device "${device}"`)
    const to = parseTime(query.get('to'), 'to', now())
    if (typeof to === 'string') return invalid(to)
    const from = parseTime(query.get('from'), 'from', to - DEFAULT_SPAN_MS)
    if (typeof from === 'string') return invalid(from)
    if (from > to) return invalid('from: not after to')
    const metricsText = query.get('metrics')
    const metrics = metricsText === null ? [] : metricsText.split(',')
    if (metrics.length > MAX_METRICS || metrics.some((m) => !METRIC_KEY_PATTERN.test(m))) {
      return invalid(`metrics: up to ${MAX_METRICS} metric names, comma-separated`)
    }
    const limitText = query.get('limit')
    const limit = limitText === null ? DEFAULT_LIMIT : Number(limitText)
    if (limitText !== null && (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_LIMIT)) {
      return invalid(`limit: a whole number from 1 to ${MAX_LIMIT}`)
    }
    if (deps.influx === undefined) return apiError(503, 'not_ready', 'InfluxDB shipping is off (FLEETGATE_INFLUX_URL=off)')

    const fields = metrics.length === 0 ? '*::field' : metrics.map(identifier).join(', ')
    const influxql =
      `SELECT ${fields} FROM ${identifier(TELEMETRY_MEASUREMENT)} WHERE "device" = ${literal(device)} ` +
      `AND time >= ${from}ms AND time <= ${to}ms ORDER BY time ASC LIMIT ${limit}`
    let series
    try {
      series = await deps.influx.query(influxql)
    } catch (err) {
      // The error names InfluxDB's address and its own words: the log keeps them, the client gets neither.
      deps.log.warn({ err, device }, 'telemetry query failed')
      return apiError(503, 'not_ready', 'InfluxDB did not answer the query; see the hub log')
    }
    const points: Array<Record<string, unknown>> = []
    for (const { columns, values } of series) {
      for (const row of values) {
        const point: Record<string, unknown> = {}
        columns.forEach((column, i) => {
          const value = row[i]
          if (column === 'time') point['ts'] = new Date(value as number).toISOString()
          else if (value !== null) point[column] = value
        })
        points.push(point)
      }
    }
    return { status: 200, body: { device, points } }
  })
}
