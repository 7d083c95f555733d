import { hostname } from 'node:os'
import { appendLine } from '../telemetry/influx-line.js'
import type { InfluxWriter } from '../telemetry/influx-writer.js'
import type { Logger } from '../logger.js'
import type { HubMetrics } from './metrics.js'

/** CONTRACT §5: the measurement of the hub's own figures. */
export const HUB_MEASUREMENT = 'fleetgate_hub'
/** CONTRACT §5: the hub writes its figures every 10 s. */
export const HUB_STATS_INTERVAL_MS = 10_000

/**
 * Writes the hub's figures to InfluxDB every 10 s (tag `hub`: the host name), from the same
 * counters `/metrics` serves. A failed write is logged and skipped: these are gauges of the
 * moment, not data to keep.
 */
export function startHubStats(
  metrics: HubMetrics,
  writer: InfluxWriter,
  log: Logger,
  intervalMs: number = HUB_STATS_INTERVAL_MS,
  now: () => number = Date.now,
): () => void {
  const hub = hostname()
  // One line when writing starts to fail and one when it recovers, not one every 10 s.
  let failing = false
  const timer = setInterval(() => {
    void metrics
      .snapshot()
      .then(async (figures) => {
        const lines: string[] = []
        appendLine(lines, HUB_MEASUREMENT, { hub }, figures, now())
        const result = await writer.write(lines)
        if (result.ok === failing) {
          failing = !result.ok
          if (result.ok) log.info('hub figures written again')
          else log.warn({ reason: result.retry ? result.error.message : result.reason }, 'hub figures not written; retrying every interval')
        }
      })
      .catch((err: unknown) => log.warn({ err }, 'hub figures not collected'))
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
