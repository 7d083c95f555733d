// docs/rest.md: one telemetry query, answered by InfluxDB when one is configured, else by the
// embedded history (docs/telemetry.md), with the same shape and rules. The API validates a request once and hands
// it to whichever back end the hub has; both return points in the same form.
import type { Metrics } from '@fleetgate/device-sdk'

/** How an interval reduces each numeric metric (docs/rest.md `fn`); non-numeric metrics take `last`. */
export const AGGREGATE_FNS = ['mean', 'min', 'max', 'last', 'count'] as const
/** One of AGGREGATE_FNS; `mean` by default. */
export type AggregateFn = (typeof AGGREGATE_FNS)[number]

/** A validated telemetry query. */
export interface TelemetryRequest {
  readonly device: string
  /** Inclusive range, Unix ms. */
  readonly fromMs: number
  readonly toMs: number
  /** Metrics to return, in this order, without repeats; undefined: every metric, sorted by name. */
  readonly metrics: readonly string[] | undefined
  /** Points returned at most (raw points, or intervals). */
  readonly limit: number
  /** With `every`: one point per interval of `everyMs` aligned to the Unix epoch, as InfluxDB's `GROUP BY time()`. */
  readonly every: { readonly everyMs: number; readonly fn: AggregateFn } | undefined
}

/** One point of an answer: its time (an interval's start when aggregated) and its metrics. */
export interface TelemetryPoint {
  /** Unix ms. */
  readonly ts: number
  readonly values: Metrics
}

/**
 * A back end of the telemetry API: the points of a device in a range, oldest first, at most
 * `limit`. A raw point is one (ts, tag set) of the device, its fields merged as InfluxDB merges a
 * point written twice; an aggregated point is an interval with at least one value, `ts` its start.
 */
export interface TelemetryQuery {
  /** Which back end answers (for logs). */
  readonly name: 'influxdb' | 'history'
  /** @throws HubError `HUB_ERR_INFLUX` when InfluxDB does not answer (the API says 503 `not_ready`). */
  run(request: TelemetryRequest): Promise<TelemetryPoint[]>
}
