import type { Clock } from '@fleetgate/device-sdk'
import type { Logger } from '../logger.js'
import type { HubMetrics } from '../observability/index.js'
import type { InfluxWriter } from '../telemetry/index.js'
import { apiError, type Router } from '../transport/index.js'

/**
 * One dependency's answer to `/readyz`: `ok`, `off` (disabled by configuration) or `unreachable`.
 * A closed set: `/readyz` takes no token, so why a dependency fails (its address, its error) goes
 * to the hub's log and never into the answer.
 */
export type Readiness = 'ok' | 'off' | 'unreachable'

/** A named readiness probe; `check` never throws. */
export interface ReadinessProbe {
  readonly name: string
  check(): Readiness | Promise<Readiness>
}

/**
 * An InfluxDB 1.x probe through the shipper's writer (its credentials included): `GET /ping`
 * answers 204 when the server is up. The answer is cached for `cacheMs` (default 1,000) so a
 * scraper hammering `/readyz` does not hammer InfluxDB; a failed ping is logged with the URL.
 */
export function influxProbe(
  writer: Pick<InfluxWriter, 'url' | 'ping'> | undefined,
  log: Pick<Logger, 'warn'>,
  clock: Clock,
  cacheMs = 1000,
): ReadinessProbe {
  const now = (): number => clock.now()
  let cached: { at: number; value: Promise<Readiness> } | undefined
  return {
    name: 'influxdb',
    check() {
      if (writer === undefined) return 'off'
      if (cached === undefined || now() - cached.at >= cacheMs) {
        const value = writer.ping(1000).then((up): Readiness => {
          if (up) return 'ok'
          log.warn({ url: writer.url }, 'readiness: InfluxDB is unreachable (no 204 to /ping within 1 s)')
          return 'unreachable'
        })
        cached = { at: now(), value }
      }
      return cached.value
    },
  }
}

/**
 * Registers `/healthz`, `/readyz` (no token) and `/metrics` (reader) (docs/rest.md). The contract
 * lists them among the `/api/v1` calls but names them without the prefix, so both paths answer.
 */
export function registerHealthRoutes(router: Router, probes: readonly ReadinessProbe[], metrics: HubMetrics): void {
  for (const prefix of ['', '/api/v1']) registerAt(prefix, router, probes, metrics)
}

function registerAt(prefix: string, router: Router, probes: readonly ReadinessProbe[], metrics: HubMetrics): void {
  router.route('get', `${prefix}/healthz`, { scope: undefined, body: 'none' }, () => ({ status: 200, body: { status: 'ok' } }))

  router.route('get', `${prefix}/readyz`, { scope: undefined, body: 'none' }, async () => {
    const results = await Promise.all(probes.map(async (probe) => [probe.name, await probe.check()] as const))
    const checks = Object.fromEntries(results)
    const failing = results.filter(([, value]) => value !== 'ok' && value !== 'off')
    if (failing.length === 0) return { status: 200, body: { status: 'ready', checks } }
    const reply = apiError(503, 'not_ready', failing.map(([name, value]) => `${name}: ${value}`).join('; '))
    return { status: 503, body: { ...(reply.body as object), checks } }
  })

  router.route('get', `${prefix}/metrics`, { scope: 'reader', body: 'none' }, async () => ({
    status: 200,
    text: { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() },
  }))
}
