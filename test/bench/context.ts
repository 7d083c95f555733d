// What every scenario gets from the orchestrator: the run's mode, the shared influxd, a place for
// figures and details, and the hub under test started as its own process.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_TOKEN, startHubProcess, tempDir, testEnv, type HubProcess } from '../support/hub.js'
import type { Influxd } from '../support/influxd.js'
import { countPoints } from '../support/telemetry.js'
import { formatProfile, summariseProfile, type ProfileSummary } from './cpuprofile.js'
import type { FleetSample } from './fleet.js'
import { coresSince, cpuMark, sleep } from './measure.js'
import { adopt, atExit, stopChild, type Worker } from './procs.js'
import type { Figure } from './report.js'

/** The run as a scenario sees it. */
export interface BenchContext {
  /** `--full`: the issue's sizes; otherwise the quick run (under 5 minutes in all). */
  readonly full: boolean
  /** `--profile`: hubs run with `--cpu-prof`; their hot spots go to the details and the console. */
  readonly profile: boolean
  /** Where profiles are kept (next to the JSON). */
  readonly outDir: string
  /** The influxd every scenario writes to (a database per measurement). */
  readonly influx: Influxd
  /** Figures shared between scenarios, e.g. the sustainable ingest rate for `overload`. */
  readonly shared: Map<string, number>
  /** Adds a row to the table. */
  figure(figure: Figure): void
  /** Keeps a scenario's raw measurements for the JSON. */
  detail(key: string, value: unknown): void
  /** Progress for the console. */
  log(message: string): void
}

/** The hub under test, running as its own process. */
export interface BenchHub {
  readonly process: HubProcess
  readonly pid: number
  readonly base: string
  readonly wsUrl: string
  readonly mqttUrl: string
  /** Whether the process is still running. */
  alive(): boolean
  /** SIGTERM (the hub flushes, and writes its CPU profile), SIGKILL after 15 s; removes its data. */
  stop(): Promise<{ exitCode: number | null; profile: ProfileSummary | undefined; warnings: readonly string[] }>
}

/**
 * Starts `hub/dist/main.js` on loopback with InfluxDB at the bench influxd (database `db`), the MQTT
 * broker on a free port, a device rate that never throttles the load, and warn-level logs.
 */
export async function startBenchHub(
  ctx: BenchContext,
  label: string,
  db: string,
  env: Record<string, string> = {},
  options: { dataDir?: string } = {},
): Promise<BenchHub> {
  // With `dataDir` the caller owns the data (a hub restarted on it keeps its devices).
  const data =
    options.dataDir === undefined ? tempDir(`fleetgate-bench-${label}-`) : { path: options.dataDir, cleanup: () => rmSync(join(options.dataDir as string, 'profile'), { recursive: true, force: true }) }
  const forget = atExit(data.cleanup)
  const profileDir = join(data.path, 'profile')
  const execArgv = ctx.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
  let hubProcess: HubProcess
  try {
    hubProcess = await startHubProcess(
      testEnv(join(data.path, 'data'), {
        FLEETGATE_INFLUX_URL: ctx.influx.url,
        FLEETGATE_INFLUX_DB: db,
        FLEETGATE_MQTT_PORT: '0',
        FLEETGATE_DEVICE_RATE: '1000000',
        FLEETGATE_LOG_LEVEL: 'warn',
        ...env,
      }),
      20_000,
      { execArgv, raiseOpenFiles: true },
    )
  } catch (err) {
    forget()
    data.cleanup()
    throw err
  }
  adopt(hubProcess.child)
  let stopped: Promise<{ exitCode: number | null; profile: ProfileSummary | undefined; warnings: readonly string[] }> | undefined
  return {
    process: hubProcess,
    pid: hubProcess.child.pid as number,
    base: hubProcess.base,
    wsUrl: hubProcess.wsUrl,
    mqttUrl: `mqtt://127.0.0.1:${hubProcess.ports.mqtt ?? 0}`,
    alive: () => hubProcess.child.exitCode === null && hubProcess.child.signalCode === null,
    stop() {
      stopped ??= (async () => {
        const exitCode = await stopChild(hubProcess.child, 15_000)
        let profile: ProfileSummary | undefined
        if (ctx.profile) {
          try {
            const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'))
            if (file !== undefined) {
              mkdirSync(join(ctx.outDir, 'profiles'), { recursive: true })
              const kept = join(ctx.outDir, 'profiles', `${label}.cpuprofile`)
              copyFileSync(join(profileDir, file), kept)
              profile = summariseProfile(kept)
              ctx.log(`hub profile of ${label} (${kept}):\n${formatProfile(profile)}`)
            }
          } catch (err) {
            ctx.log(`no hub profile for ${label}: ${(err as Error).message}`)
          }
        }
        forget()
        data.cleanup()
        // The hub logs at warn and above here: each such line is worth a look.
        const warnings = hubProcess.logs
          .filter((entry) => typeof entry['level'] === 'number' && entry['level'] >= 40)
          .map((entry) => `${String(entry['msg'])}${entry['err'] === undefined ? '' : `: ${JSON.stringify(entry['err']).slice(0, 200)}`}`)
        if (warnings.length > 0) ctx.log(`hub ${label} logged ${warnings.length} warnings/errors, first: ${warnings.slice(0, 3).join(' | ')}`)
        return { exitCode, profile, warnings }
      })()
      return stopped
    },
  }
}

/** The bench influxd's pid, for its CPU figures; it runs for the whole bench. */
export function influxPid(ctx: BenchContext): number {
  const pid = ctx.influx.pid
  if (pid === undefined) throw new Error('the bench influxd is not running')
  return pid
}

/** Points of measurement `telemetry` in `db` with the count field; 0 while the database does not exist. */
export async function landed(ctx: BenchContext, db: string, field: string): Promise<number> {
  try {
    return await countPoints(ctx.influx, db, field)
  } catch (err) {
    if (/database not found/.test((err as Error).message)) return 0
    throw err
  }
}

/** Drops a database of the bench influxd (a scenario's points are not needed once counted). */
export async function dropDatabase(ctx: BenchContext, db: string): Promise<void> {
  await ctx.influx.query(`DROP DATABASE "${db}"`).catch(() => undefined)
}

/** Reads figures from the hub's Prometheus text (`GET /metrics`): name -> value, first sample of each. */
export async function hubMetrics(base: string): Promise<Map<string, number>> {
  const response = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const space = line.lastIndexOf(' ')
    const name = line.slice(0, space)
    if (!out.has(name)) out.set(name, Number(line.slice(space + 1)))
  }
  return out
}

/** What the hub did while a body ran under a fleet's telemetry (underTelemetry). */
export interface TelemetryWindow {
  /** Readings acked per second over the window, as the fleet counted them. */
  readonly ackedPerSec: number
  /** The hub's CPU over the window, in cores. */
  readonly hubCores: number
  /** The hub's event-loop lag over the window from its /metrics, in ms (NaN when /metrics did not answer). */
  readonly lagP99Ms: number
  readonly lagMaxMs: number
}

/**
 * Starts `fleet` (connected already) sending `ratePerSec` readings, lets it settle 2 s, and runs
 * `body` inside a measured window; the fleet goes on sending after (the caller stops it).
 * prom-client resets its event-loop histogram on each scrape, so one scrape opens the window and
 * the next one closes it.
 */
export async function underTelemetry<T>(hub: BenchHub, fleet: Worker, ratePerSec: number, body: () => Promise<T>): Promise<{ result: T; window: TelemetryWindow }> {
  await fleet.call('fleet.start', { ratePerSec })
  await sleep(2000)
  const a = await fleet.call<FleetSample>('fleet.sample')
  const cpu = cpuMark(hub.pid)
  await hubMetrics(hub.base).catch(() => undefined)
  const result = await body()
  const lag = await hubMetrics(hub.base).catch(() => undefined)
  const hubCores = coresSince(hub.pid, cpu)
  const b = await fleet.call<FleetSample>('fleet.sample')
  return {
    result,
    window: {
      ackedPerSec: ((b.counters.ackedReadings - a.counters.ackedReadings) * 1000) / Math.max(1, b.at - a.at),
      hubCores,
      lagP99Ms: (lag?.get('fleetgate_nodejs_eventloop_lag_p99_seconds') ?? Number.NaN) * 1000,
      lagMaxMs: (lag?.get('fleetgate_nodejs_eventloop_lag_max_seconds') ?? Number.NaN) * 1000,
    },
  }
}
