// Scenario `commands`: REST round trips (`wait: true`) to one of 1,000 connected devices while
// they send 10,000 readings/s, measured from this process one call after another; then a fan-out
// by tag to every device of a second fleet, timed until the batch reports all of them succeeded.
import { Agent } from 'node:http'
import { dropDatabase, startBenchHub, underTelemetry, type BenchContext } from './context.js'
import type { FleetSample } from './fleet.js'
import { call, latencyHistogram, provisionBulk, summarise } from './load.js'
import { sleep } from './measure.js'
import { connectFleets, Worker } from './procs.js'
import { atMost } from './report.js'

const SCENARIO = 'commands'
const RT_DEVICES = 1000
const TELEMETRY_PER_SEC = 10_000

export async function commands(ctx: BenchContext): Promise<void> {
  const calls = ctx.full ? 2000 : 500
  const fanOutDevices = ctx.full ? 10_000 : 2000
  const db = 'fg_commands'
  const hub = await startBenchHub(ctx, 'commands', db)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const workers: Worker[] = []
  let rt: ReturnType<typeof summarise> | undefined
  let idleRt: ReturnType<typeof summarise> | undefined
  let lagP99Ms = Number.NaN
  let lagMaxMs = Number.NaN
  let failures = 0
  let firstFailure: string | undefined
  let telemetryPerSec = 0
  let hubCores = 0
  let fanOutMs: number | undefined
  let fanOutNote = ''
  try {
    const devices = await provisionBulk(hub.base, 'cmd-rt', RT_DEVICES)
    const fleet = await Worker.start('fleet')
    workers.push(fleet)
    await fleet.call('fleet.connect', { url: hub.wsUrl, devices, readingsPerFrame: 1, t0: Date.now() - 3_600_000 })
    // At most `count` calls, and no longer than `budgetMs`: a slow hub must not stretch the run.
    const roundTrips = async (count: number, budgetMs: number): Promise<ReturnType<typeof summarise>> => {
      const histogram = latencyHistogram()
      const deadline = performance.now() + budgetMs
      for (let i = 0; i < count && performance.now() < deadline; i++) {
        const device = `cmd-rt-${(i * 7) % RT_DEVICES}`
        const started = performance.now()
        const answer = await call(agent, hub.base, 'POST', `/api/v1/devices/${device}/commands`, { name: 'ping', params: { i }, wait: true })
        histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)))
        const status = (answer.body as { status?: string } | undefined)?.status
        if (answer.status !== 200 || status !== 'succeeded') {
          failures++
          firstFailure ??= `${answer.status} ${JSON.stringify(answer.body)}`
        }
      }
      return summarise(histogram)
    }
    // Warm the REST path and the JIT, then a baseline without telemetry: what the flow adds.
    await roundTrips(50, 5000)
    const idle = await roundTrips(Math.round(calls / 4), ctx.full ? 20_000 : 5000)
    const loaded = await underTelemetry(hub, fleet, TELEMETRY_PER_SEC, () => roundTrips(calls, ctx.full ? 90_000 : 15_000))
    rt = loaded.result
    telemetryPerSec = loaded.window.ackedPerSec
    hubCores = loaded.window.hubCores
    lagP99Ms = loaded.window.lagP99Ms
    lagMaxMs = loaded.window.lagMaxMs
    idleRt = idle
    ctx.detail('roundTrips', { calls: rt.count, failures, firstFailure, latency: rt, withoutTelemetry: idle, telemetryPerSec, hubCores, eventLoopLagP99Ms: lagP99Ms, eventLoopLagMaxMs: lagMaxMs })
    ctx.log(
      `commands: ${rt.count} round trips p50 ${rt.p50Ms} ms, p99 ${rt.p99Ms} ms with ${Math.round(telemetryPerSec)} readings/s flowing ` +
        `(without telemetry: p50 ${idle.p50Ms} ms, p99 ${idle.p99Ms} ms); hub event loop lag p99 ${lagP99Ms.toFixed(1)} ms, max ${lagMaxMs.toFixed(1)} ms`,
    )
    await fleet.call('fleet.stop', { drainMs: 10_000 })
    await fleet.call('fleet.close')

    // Fan-out: a second fleet that only answers commands.
    const targets = await provisionBulk(hub.base, 'cmd-fan', fanOutDevices, { tags: { group: 'fanout' } })
    const fanWorkers = await connectFleets(hub.wsUrl, targets, fleet, workers)
    await sleep(1000)
    const started = performance.now()
    const created = await call(agent, hub.base, 'POST', '/api/v1/commands', { target: { tags: { group: 'fanout' } }, name: 'ping', timeoutMs: 30_000 })
    const { batch, targeted } = (created.body ?? {}) as { batch?: string; targeted?: number }
    if (created.status !== 202 || batch === undefined) throw new Error(`fan-out: ${created.status} ${JSON.stringify(created.body)}`)
    let last: Record<string, number> = {}
    const deadline = started + 60_000
    while (performance.now() < deadline) {
      const status = await call(agent, hub.base, 'GET', `/api/v1/commands/${batch}`)
      last = status.body as Record<string, number>
      if ((last['succeeded'] ?? 0) >= fanOutDevices) {
        fanOutMs = performance.now() - started
        break
      }
      if ((last['failed'] ?? 0) + (last['timeout'] ?? 0) + (last['expired'] ?? 0) > 0 && (last['queued'] ?? 0) + (last['sent'] ?? 0) === 0) break
      await sleep(25)
    }
    const answered = (await Promise.all(fanWorkers.map((w) => w.call<FleetSample>('fleet.sample')))).reduce((n, s) => n + s.counters.commandsAnswered, 0)
    ctx.detail('fanOut', { devices: fanOutDevices, targeted, ms: fanOutMs, last, answered })
    if (targeted !== fanOutDevices) fanOutNote = `targeted ${String(targeted)} of ${fanOutDevices}; `
    if (fanOutMs === undefined) fanOutNote += `not all succeeded within 60 s: ${JSON.stringify(last)}`
    ctx.log(`fan-out to ${fanOutDevices}: ${fanOutMs === undefined ? 'incomplete' : `${Math.round(fanOutMs)} ms`} ${JSON.stringify(last)}`)
    await Promise.all(fanWorkers.map((w) => w.call('fleet.close')))
  } finally {
    agent.destroy()
    await Promise.all(workers.map((w) => w.stop()))
    await hub.stop()
    await dropDatabase(ctx, db)
  }

  const flowNote =
    `${rt?.count ?? 0} sequential calls, ${RT_DEVICES} devices, ${Math.round(telemetryPerSec)} readings/s acked meanwhile, hub ${hubCores.toFixed(2)} cores, ` +
    `event loop lag p99 ${lagP99Ms.toFixed(1)} ms; without telemetry p50 ${idleRt?.p50Ms ?? '-'} ms, p99 ${idleRt?.p99Ms ?? '-'} ms` +
    (failures > 0 ? `; ${failures} failed: ${firstFailure ?? ''}` : '')
  ctx.figure({ scenario: SCENARIO, figure: 'REST round trip p50 (wait: true)', unit: 'ms', fleetgate: rt?.p50Ms, verdict: 'n/a', note: flowNote })
  ctx.figure({
    scenario: SCENARIO,
    figure: 'REST round trip p99 (wait: true)',
    unit: 'ms',
    fleetgate: failures === 0 ? rt?.p99Ms : undefined,
    target: '<= 5 ms',
    verdict: failures === 0 ? atMost(rt?.p99Ms, 5) : 'missed',
    ...(telemetryPerSec < 0.9 * TELEMETRY_PER_SEC ? { note: `telemetry fell short: ${Math.round(telemetryPerSec)} of ${TELEMETRY_PER_SEC} readings/s` } : {}),
  })
  ctx.figure({
    scenario: SCENARIO,
    figure: `fan-out to ${fanOutDevices} devices until all succeeded`,
    unit: 's',
    fleetgate: fanOutMs === undefined ? undefined : fanOutMs / 1000,
    target: '<= 2 s (10,000 devices)',
    verdict: fanOutMs === undefined ? 'missed' : fanOutDevices < 10_000 ? 'n/a' : atMost(fanOutMs / 1000, 2),
    ...(fanOutDevices < 10_000 || fanOutNote !== ''
      ? { note: `${fanOutNote}${fanOutDevices < 10_000 ? `quick run fans out to ${fanOutDevices} devices; --full uses 10,000` : ''}` }
      : {}),
  })
}
