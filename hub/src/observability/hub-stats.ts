import { hostname } from 'node:os'
import type { Clock } from '@fleetgate/device-sdk'
import type { Logger } from '../logger.js'
import { appendLine, type InfluxWriter } from '../telemetry/index.js'
import type { HubMetrics } from './metrics.js'

/** docs/telemetry.md: the measurement of the hub's own figures. */
export const HUB_MEASUREMENT = 'fleetgate_hub'
/** docs/telemetry.md: the hub writes its figures every 10 s. */
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
  clock: Clock,
  intervalMs: number = HUB_STATS_INTERVAL_MS,
): () => void {
  const hub = hostname()
  // One line when writing starts to fail and one when it recovers, not one every 10 s.
  let failing = false
  let stopped = false
  let timer: unknown
  const write = async (): Promise<void> => {
    const figures = await metrics.snapshot()
    const lines: string[] = []
    appendLine(lines, HUB_MEASUREMENT, { hub }, figures, clock.now())
    const result = await writer.write(lines)
    if (result.ok === failing) {
      failing = !result.ok
      if (result.ok) log.info('hub figures written again')
      else log.warn({ reason: result.retry ? result.error.message : result.reason }, 'hub figures not written; retrying every interval')
    }
  }
  const schedule = (): void => {
    timer = clock.setTimeout(() => {
      if (stopped) return
      // The next interval starts now, as with setInterval: a slow InfluxDB does not stretch it.
      schedule()
      write().catch((err: unknown) => log.warn({ err }, 'hub figures not collected'))
    }, intervalMs)
  }
  schedule()
  return () => {
    stopped = true
    clock.clearTimeout(timer)
  }
}
