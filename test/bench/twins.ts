// Scenario `twins` (docs/twins.md): how fast a desired change reaches its device, and how fast a fleet
// converges.
// - Latency: 1,000 devices connected and sending 10,000 readings/s; desired changes made through
//   REST one after another to devices in turn, each stamped with the wall-clock time of its call
//   (`bench.sentAt`); the device measures the time to its `twd`. Devices report every change back.
// - Convergence: a second fleet (10,000 devices with --full) that only answers twins; one PATCH per
//   device, 8 in parallel, timed from the first call until every device's report of the change
//   was confirmed by the hub (`twa`), i.e. reported equals desired; then a sample of twins is read
//   back through REST and must show `delta` `{}`.
import { Agent } from 'node:http'
import { dropDatabase, startBenchHub, underTelemetry, type BenchContext } from './context.js'
import type { FleetTwins } from './fleet.js'
import { call, latencyHistogram, provisionBulk, summarise, wallMs, type LatencySummary } from './load.js'
import { sleep } from './measure.js'
import { connectFleets, Worker } from './procs.js'
import { atMost } from './report.js'

const SCENARIO = 'twins'
const LATENCY_DEVICES = 1000
const TELEMETRY_PER_SEC = 10_000
/** REST calls in flight during the convergence run (the issue's 8). */
const PARALLEL = 8
/** Twins read back after the convergence run. */
const SAMPLE = 200

export async function twins(ctx: BenchContext): Promise<void> {
  const changes = ctx.full ? 2000 : 500
  const fleetSize = ctx.full ? 10_000 : 2000
  const db = 'fg_twins'
  const hub = await startBenchHub(ctx, 'twins', db)
  const agent = new Agent({ keepAlive: true, maxSockets: PARALLEL })
  const workers: Worker[] = []
  let twd: LatencySummary | undefined
  let rest: LatencySummary | undefined
  let telemetryPerSec = 0
  let hubCores = 0
  let lagP99Ms = Number.NaN
  let failures = 0
  let firstFailure: string | undefined
  let convergedMs: number | undefined
  let answeredMs: number | undefined
  let convergeNote = ''
  let sampleInSync = 0
  try {
    // Latency under load.
    const devices = await provisionBulk(hub.base, 'twin-lat', LATENCY_DEVICES)
    const fleet = await Worker.start('fleet')
    workers.push(fleet)
    await fleet.call('fleet.connect', { url: hub.wsUrl, devices, readingsPerFrame: 1, t0: Date.now() - 3_600_000 })
    const restHistogram = latencyHistogram()
    const change = async (i: number, record: boolean): Promise<void> => {
      const device = `twin-lat-${(i * 7) % LATENCY_DEVICES}`
      const started = performance.now()
      const answer = await call(agent, hub.base, 'PATCH', `/api/v1/devices/${device}/twin`, { desired: { setpoint: 18 + (i % 8), bench: { sentAt: wallMs(), n: i } } })
      if (record) restHistogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)))
      if (answer.status !== 200) {
        failures++
        firstFailure ??= `${answer.status} ${JSON.stringify(answer.body)}`
      }
    }
    // warm the path and the JIT, then the measured run with telemetry flowing
    for (let i = 0; i < 50; i++) await change(i, false)
    const loaded = await underTelemetry(hub, fleet, TELEMETRY_PER_SEC, async () => {
      await fleet.call<FleetTwins>('fleet.twins', { resetLatency: true })
      const deadline = performance.now() + (ctx.full ? 90_000 : 20_000)
      let n = 0
      for (let i = 50; n < changes && performance.now() < deadline; i++, n++) await change(i, true)
      // the last twd may still be on its way
      await sleep(200)
      return n
    })
    const made = loaded.result
    telemetryPerSec = loaded.window.ackedPerSec
    hubCores = loaded.window.hubCores
    lagP99Ms = loaded.window.lagP99Ms
    const seen = await fleet.call<FleetTwins>('fleet.twins')
    twd = seen.latency
    rest = summarise(restHistogram)
    if (twd.count !== made) convergeNote = `${made - twd.count} of ${made} changes reached no device within the run; `
    ctx.detail('latency', { changes: made, failures, firstFailure, twd, rest, telemetryPerSec, hubCores, eventLoopLagP99Ms: lagP99Ms, twaRefused: seen.twaRefused })
    ctx.log(
      `change to twd: ${twd.count} changes p50 ${twd.p50Ms} ms, p99 ${twd.p99Ms} ms (REST 200 p50 ${rest.p50Ms} ms, p99 ${rest.p99Ms} ms) ` +
        `with ${Math.round(telemetryPerSec)} readings/s flowing; hub ${hubCores.toFixed(2)} cores, event loop lag p99 ${lagP99Ms.toFixed(1)} ms`,
    )
    await fleet.call('fleet.stop', { drainMs: 10_000 })
    await fleet.call('fleet.close')

    // Convergence of a fleet.
    const targets = await provisionBulk(hub.base, 'twin-fan', fleetSize)
    const fanWorkers = await connectFleets(hub.wsUrl, targets, fleet, workers)
    await sleep(1000)
    const converged = async (): Promise<number> => (await Promise.all(fanWorkers.map((w) => w.call<FleetTwins>('fleet.twins')))).reduce((n, t) => n + t.converged, 0)
    const started = performance.now()
    let next = 0
    const lane = async (): Promise<void> => {
      while (next < targets.length) {
        const device = targets[next++]?.id as string
        const answer = await call(agent, hub.base, 'PATCH', `/api/v1/devices/${device}/twin`, { desired: { setpoint: 21.5, mode: 'eco' } })
        if (answer.status !== 200) {
          failures++
          firstFailure ??= `${answer.status} ${JSON.stringify(answer.body)}`
        }
      }
    }
    const answered = Promise.all(Array.from({ length: PARALLEL }, lane)).then(() => (answeredMs = performance.now() - started))
    const limit = started + 60_000
    let count = 0
    while (performance.now() < limit) {
      count = await converged()
      if (count >= fleetSize) {
        convergedMs = performance.now() - started
        break
      }
      await sleep(25)
    }
    await answered
    if (convergedMs === undefined) convergeNote += `${count} of ${fleetSize} converged within 60 s`
    // reported equals desired, as the hub sees it, on a sample
    for (let i = 0; i < SAMPLE; i++) {
      const id = targets[Math.floor((i * fleetSize) / SAMPLE)]?.id as string
      const twin = (await call(agent, hub.base, 'GET', `/api/v1/devices/${id}/twin`)).body as { delta?: object; reportedVersion?: number } | undefined
      if (twin?.delta !== undefined && Object.keys(twin.delta).length === 0 && (twin.reportedVersion ?? 0) >= 1) sampleInSync++
    }
    ctx.detail('convergence', { devices: fleetSize, parallel: PARALLEL, convergedMs, answeredMs, sample: SAMPLE, sampleInSync, failures, firstFailure })
    ctx.log(`${fleetSize} desired changes, ${PARALLEL} in parallel: all answered in ${Math.round(answeredMs ?? 0)} ms, all converged in ${convergedMs === undefined ? '-' : Math.round(convergedMs)} ms; ${sampleInSync}/${SAMPLE} sampled twins in sync`)
    await Promise.all(fanWorkers.map((w) => w.call('fleet.close')))
  } finally {
    agent.destroy()
    await Promise.all(workers.map((w) => w.stop()))
    await hub.stop()
    await dropDatabase(ctx, db)
  }

  const flowNote =
    `${twd?.count ?? 0} changes one after another, ${LATENCY_DEVICES} devices, ${Math.round(telemetryPerSec)} readings/s acked meanwhile, hub ${hubCores.toFixed(2)} cores, ` +
    `event loop lag p99 ${lagP99Ms.toFixed(1)} ms; REST 200 p50 ${rest?.p50Ms ?? '-'} ms, p99 ${rest?.p99Ms ?? '-'} ms` +
    (failures > 0 ? `; ${failures} calls failed: ${firstFailure ?? ''}` : '')
  ctx.figure({ scenario: SCENARIO, figure: 'desired change to twd p50', unit: 'ms', fleetgate: twd?.p50Ms, verdict: 'n/a', note: flowNote })
  ctx.figure({
    scenario: SCENARIO,
    figure: 'desired change to twd p99 (1,000 devices, 10,000 readings/s)',
    unit: 'ms',
    fleetgate: failures === 0 ? twd?.p99Ms : undefined,
    target: '<= 20 ms',
    verdict: failures === 0 ? atMost(twd?.p99Ms, 20) : 'missed',
    ...(telemetryPerSec < 0.9 * TELEMETRY_PER_SEC || convergeNote !== ''
      ? { note: `${convergeNote}${telemetryPerSec < 0.9 * TELEMETRY_PER_SEC ? `telemetry fell short: ${Math.round(telemetryPerSec)} of ${TELEMETRY_PER_SEC} readings/s` : ''}` }
      : {}),
  })
  ctx.figure({
    scenario: SCENARIO,
    figure: `desired change to ${fleetSize} devices (${PARALLEL} calls in parallel) until all converged`,
    unit: 's',
    fleetgate: convergedMs === undefined ? undefined : convergedMs / 1000,
    target: '<= 10 s (10,000 devices)',
    verdict: convergedMs === undefined || sampleInSync < SAMPLE ? 'missed' : fleetSize < 10_000 ? 'n/a' : atMost(convergedMs / 1000, 10),
    note:
      `REST calls all answered after ${((answeredMs ?? 0) / 1000).toFixed(2)} s; ${sampleInSync}/${SAMPLE} sampled twins read back in sync` +
      (fleetSize < 10_000 ? `; quick run changes ${fleetSize} devices, --full 10,000` : ''),
  })
}
