// Scenario `history`: what the embedded history costs and how fast it answers (issue 12).
// 1. The 50-reading ingest (as `ingest-batch`, to InfluxDB) with the history off and on, back to
//    back: throughput and hub CPU per reading.
// 2. A hub with no InfluxDB holding 7 days of one reading per second of one device: a raw query of
//    10,000 points and the 7 days in 1 h intervals, one after another, while 1,000 other devices
//    send 10,000 readings/s; latency measured from this process (HTTP round trip).
// 3. Retention trimming a history of small blocks (the size bound cut to 1 MiB on restart): how
//    long the event loop waits, from a /healthz round trip every 2 ms, while it trims.
import { Agent, request } from 'node:http'
import type { DeviceFrame } from '@fleetgate/device-sdk/wire'
import { ADMIN_TOKEN, api, tempDir } from '../support/hub.js'
import { connectDevice } from '../support/ws.js'
import { hubMetrics, startBenchHub, underTelemetry, type BenchContext, type BenchHub } from './context.js'
import type { FleetSample } from './fleet.js'
import { fleetgateIngest, lossNote, type IngestRunResult } from './fleetgate-ingest.js'
import { latencyHistogram, provisionBulk, summarise, type LatencySummary } from './load.js'
import { coresSince, cpuMark, sleep } from './measure.js'
import { atExit, Worker } from './procs.js'
import { atLeast, atMost } from './report.js'

const SCENARIO = 'history'
const HOUR_MS = 3_600_000
const WEEK_READINGS = 7 * 24 * 3600
const LOAD_PER_SEC = 10_000

/** µs of hub CPU per acked reading (NaN when nothing was acked: the row shows "-"). */
const microsPerReading = (r: IngestRunResult): number => r.hubCpuPerReadingUs ?? Number.NaN

/** One GET over a keep-alive connection: status, parsed body and ms taken until its last byte (the parse after). */
function timedGet(agent: Agent, base: string, path: string): Promise<{ status: number; body: unknown; ms: number }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { agent, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const ms = performance.now() - started
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : (JSON.parse(text) as unknown), ms })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/** Sends 7 days of one reading per second of `device` from `base` (Unix ms), in frames of 500 readings, 32 in flight. */
export async function loadWeek(wsUrl: string, device: { id: string; key: string }, base: number): Promise<void> {
  const ws = await connectDevice(wsUrl, { deviceId: device.id, keyType: 'hmac', key: device.key })
  await ws.opening()
  const frames = Math.ceil(WEEK_READINGS / 500)
  let sent = 0
  let acked = 0
  const frame = (s: number): DeviceFrame => ({
    t: 'tb',
    s,
    r: Array.from({ length: Math.min(500, WEEK_READINGS - (s - 1) * 500) }, (_, i) => {
      const k = (s - 1) * 500 + i
      return { ts: base + k * 1000, m: { temp: 20 + (k % 600) / 100, hum: 40 + (k % 37) } }
    }),
  })
  while (acked < frames) {
    while (sent < frames && sent - acked < 32) ws.send(frame(++sent))
    const answer = await ws.next(30_000)
    if (answer.t === 'ack') acked = answer.s
    else throw new Error(`loading the week: ${JSON.stringify(answer)}`)
  }
  ws.close()
}

/** Waits until `metric` stops changing for `quietMs` (at most `timeoutMs`); returns its last value. */
async function settled(hub: BenchHub, metric: string, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs
  let last = -1
  let since = performance.now()
  while (performance.now() < deadline) {
    const value = (await hubMetrics(hub.base)).get(metric) ?? 0
    if (value !== last) {
      last = value
      since = performance.now()
    } else if (performance.now() - since >= quietMs) break
    await sleep(250)
  }
  return last
}

export async function history(ctx: BenchContext): Promise<void> {
  await ingestCost(ctx)
  await queriesUnderLoad(ctx)
  await trimmingLag(ctx)
}

async function ingestCost(ctx: BenchContext): Promise<void> {
  const timing = ctx.full ? { warmupSec: 5, steadySec: 30, catchUpSec: 60 } : { warmupSec: 3, steadySec: 8, catchUpSec: 20 }
  const run = (label: string, historySwitch: 'on' | 'off', influx: boolean): Promise<IngestRunResult> =>
    fleetgateIngest(ctx, { label, devices: 100, readingsPerFrame: 50, subscriber: false, influx, env: { FLEETGATE_HISTORY: historySwitch }, ...timing })
  // Each pair back to back: with InfluxDB (the `ingest-batch` scenario; the history beside the
  // spool, one transaction), and without (the default: the history instead of the spool).
  for (const influx of [true, false]) {
    const where = influx ? 'with InfluxDB' : 'without InfluxDB'
    const off = await run(influx ? 'history-off' : 'no-influx-history-off', 'off', influx)
    const on = await run(influx ? 'history-on' : 'no-influx-history-on', 'on', influx)
    ctx.detail(influx ? 'ingestWithInflux' : 'ingestWithoutInflux', { off, on })
    for (const [name, r] of [['off', off], ['on', on]] as const) {
      ctx.log(`${where}, history ${name}: acked ${Math.round(r.ackedPerSec)}/s, landed ${Math.round(r.landedPerSec)}/s, ${lossNote(r) ?? 'zero loss'}, hub ${r.hubCores.toFixed(2)} cores, ${microsPerReading(r).toFixed(2)} µs/reading`)
    }
    const rate = (r: IngestRunResult): number => (influx ? r.landedPerSec : r.ackedPerSec)
    const ratio = rate(on) / Math.max(1, rate(off))
    ctx.figure({
      scenario: SCENARIO,
      figure: `ingest 50/frame ${where}, ${influx ? 'landed' : 'acked'}/s with the history on`,
      unit: '/s',
      fleetgate: rate(on),
      peer: { name: 'the same run with the history off', value: rate(off) },
      ratio,
      cpuPerReadingUs: { fleetgate: on.hubCpuPerReadingUs, peer: off.hubCpuPerReadingUs },
      target: 'ratio >= 0.85',
      verdict: on.zeroLoss && off.zeroLoss ? atLeast(ratio, 0.85) : 'missed',
      note: `acked ${Math.round(on.ackedPerSec)}/s on, ${Math.round(off.ackedPerSec)}/s off; ${lossNote(on) ?? 'zero loss'}`,
    })
    const added = microsPerReading(on) - microsPerReading(off)
    ctx.figure({
      scenario: SCENARIO,
      figure: `hub CPU per reading added by the history, ${where}`,
      unit: 'µs',
      fleetgate: added,
      cpuPerReadingUs: { fleetgate: on.hubCpuPerReadingUs, peer: off.hubCpuPerReadingUs },
      target: '<= 1 µs',
      verdict: atMost(added, 1),
      note: `${microsPerReading(on).toFixed(2)} µs on (${on.hubCores.toFixed(2)} cores), ${microsPerReading(off).toFixed(2)} µs off (${off.hubCores.toFixed(2)} cores)`,
    })
  }
}

async function queriesUnderLoad(ctx: BenchContext): Promise<void> {
  const rawCalls = ctx.full ? 300 : 100
  const weekCalls = ctx.full ? 100 : 30
  const hub = await startBenchHub(ctx, 'history-query', 'fg_history_query', { FLEETGATE_INFLUX_URL: 'off', FLEETGATE_HISTORY_RETENTION: '9d' })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  let fleet: Worker | undefined
  try {
    const created = await api(hub.base, 'POST', '/api/v1/devices', { id: 'week' })
    const base = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 7 * 24 * HOUR_MS
    const loadStarted = performance.now()
    await loadWeek(hub.wsUrl, { id: 'week', key: created.body.key as string }, base)
    const loadedMs = performance.now() - loadStarted
    // The week's hours are closed: upkeep compacts them; the figures are for the settled layout.
    const compactions = await settled(hub, 'fleetgate_history_compactions_total', 3000, 120_000)
    ctx.log(`history-query: 604,800 readings loaded in ${Math.round(loadedMs)} ms, ${compactions} device-hours compacted`)

    const devices = await provisionBulk(hub.base, 'hq-load', 1000)
    fleet = await Worker.start('fleet')
    await fleet.call('fleet.connect', { url: hub.wsUrl, devices, readingsPerFrame: 1, t0: Date.now() - 60_000 })
    const raw = latencyHistogram()
    const week = latencyHistogram()
    let wrong = 0
    const { window } = await underTelemetry(hub, fleet, LOAD_PER_SEC, async () => {
      for (let i = 0; i < rawCalls; i++) {
        // A window of exactly 10,000 readings somewhere in the week.
        const from = base + Math.floor(((i * 7919) % 97) / 97 * (WEEK_READINGS - 10_000)) * 1000
        const answer = await timedGet(agent, hub.base, `/api/v1/devices/week/telemetry?from=${new Date(from).toISOString()}&to=${new Date(from + 9_999_000).toISOString()}&limit=10000`)
        if (answer.status !== 200 || (answer.body as { points: unknown[] }).points.length !== 10_000) wrong++
        raw.recordValue(Math.max(1, Math.round(answer.ms * 1000)))
      }
      for (let i = 0; i < weekCalls; i++) {
        const answer = await timedGet(agent, hub.base, `/api/v1/devices/week/telemetry?from=${new Date(base).toISOString()}&to=${new Date(base + WEEK_READINGS * 1000 - 1).toISOString()}&every=1h`)
        if (answer.status !== 200 || (answer.body as { points: unknown[] }).points.length !== 168) wrong++
        week.recordValue(Math.max(1, Math.round(answer.ms * 1000)))
      }
    })
    const { ackedPerSec: ingestPerSec, hubCores } = window
    const rawSummary = summarise(raw)
    const weekSummary = summarise(week)
    ctx.detail('queries', { raw: rawSummary, week: weekSummary, wrongAnswers: wrong, ingestPerSec, hubCores, compactions, loadedMs })
    const under = `while ${Math.round(ingestPerSec)} readings/s were acked (hub ${hubCores.toFixed(2)} cores)${wrong > 0 ? `; ${wrong} WRONG ANSWERS` : ''}`
    ctx.log(`history-query: raw 10,000 points p50 ${rawSummary.p50Ms} ms p99 ${rawSummary.p99Ms} ms; 7 d in 1 h p50 ${weekSummary.p50Ms} ms p99 ${weekSummary.p99Ms} ms; ${under}`)
    const figure = (name: string, s: LatencySummary, pct: 'p50' | 'p99', limitMs: number): void =>
      ctx.figure({
        scenario: SCENARIO,
        figure: `${name} ${pct}`,
        unit: 'ms',
        fleetgate: pct === 'p50' ? s.p50Ms : s.p99Ms,
        target: `<= ${limitMs} ms`,
        verdict: wrong > 0 ? 'missed' : atMost(pct === 'p50' ? s.p50Ms : s.p99Ms, limitMs),
        note: `${s.count} sequential calls ${under}`,
      })
    figure('raw query of 10,000 points', rawSummary, 'p50', 50)
    figure('raw query of 10,000 points', rawSummary, 'p99', 50)
    figure('7 days at 1/s in 1 h intervals', weekSummary, 'p50', 300)
    figure('7 days at 1/s in 1 h intervals', weekSummary, 'p99', 300)
    await fleet.call('fleet.stop', { drainMs: 10_000 })
    await fleet.call('fleet.close')
  } finally {
    await fleet?.stop()
    agent.destroy()
    await hub.stop()
  }
}

async function trimmingLag(ctx: BenchContext): Promise<void> {
  const data = tempDir('fleetgate-bench-trim-')
  const forget = atExit(data.cleanup)
  const fillSec = ctx.full ? 20 : 8
  let fleet: Worker | undefined
  try {
    // A history of small blocks: 200 devices, 5 readings a frame, as fast as the hub acks.
    let hub = await startBenchHub(ctx, 'history-fill', 'fg_history_trim', { FLEETGATE_INFLUX_URL: 'off' }, { dataDir: data.path })
    const devices = await provisionBulk(hub.base, 'trim', 200)
    fleet = await Worker.start('fleet')
    await fleet.call('fleet.connect', { url: hub.wsUrl, devices, readingsPerFrame: 5, t0: Date.now() - 60_000 })
    await fleet.call('fleet.start', {})
    await sleep(fillSec * 1000)
    const filled = await fleet.call<FleetSample>('fleet.stop', { drainMs: 10_000 })
    await fleet.call('fleet.close')
    const bytesBefore = (await hubMetrics(hub.base)).get('fleetgate_history_bytes') ?? 0
    // The same probe on the idle hub: what the machine's own noise adds to a round trip.
    const idleAgent = new Agent({ keepAlive: true, maxSockets: 1 })
    const idle = latencyHistogram()
    for (let i = 0; i < 1000; i++) {
      idle.recordValue(Math.max(1, Math.round((await timedGet(idleAgent, hub.base, '/healthz')).ms * 1000)))
      await sleep(2)
    }
    idleAgent.destroy()
    const idleSummary = summarise(idle)
    await hub.stop()

    // The same data dir with a 1 MiB bound: upkeep trims nearly everything, in slices.
    hub = await startBenchHub(ctx, 'history-trim', 'fg_history_trim', { FLEETGATE_INFLUX_URL: 'off', FLEETGATE_HISTORY_MAX_BYTES: String(1024 * 1024) }, { dataDir: data.path })
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const probe = latencyHistogram()
    const started = performance.now()
    const cpu = cpuMark(hub.pid)
    let trimmed = 0
    let bytes = bytesBefore
    while (performance.now() - started < 120_000) {
      const answer = await timedGet(agent, hub.base, '/healthz')
      probe.recordValue(Math.max(1, Math.round(answer.ms * 1000)))
      await sleep(2)
      if (probe.totalCount % 100 === 0) {
        const m = await hubMetrics(hub.base)
        trimmed = m.get('fleetgate_history_trimmed_readings_total{reason="size"}') ?? 0
        bytes = m.get('fleetgate_history_bytes') ?? bytes
        if (bytes <= 1024 * 1024) break
      }
    }
    const trimMs = performance.now() - started
    const hubCores = coresSince(hub.pid, cpu)
    agent.destroy()
    await hub.stop()
    const s = summarise(probe)
    ctx.detail('trimming', { filledReadings: filled.counters.ackedReadings, filledFrames: filled.counters.ackedFrames, bytesBefore, bytesAfter: bytes, trimmed, trimMs, hubCores, healthz: s, healthzIdle: idleSummary })
    const note =
      `trimmed ${trimmed} readings (${filled.counters.ackedFrames} blocks of 5, ${Math.round(bytesBefore / 1048576)} MiB) to ${Math.round(bytes / 1024)} KiB in ${(trimMs / 1000).toFixed(1)} s, ` +
      `hub ${hubCores.toFixed(2)} cores; /healthz round trip every 2 ms (${s.count} calls), p50 ${s.p50Ms} ms, max ${s.maxMs} ms; ` +
      `the same probe on the idle hub before: p50 ${idleSummary.p50Ms} ms, p99 ${idleSummary.p99Ms} ms, max ${idleSummary.maxMs} ms`
    ctx.log(`history-trim: ${note}`)
    ctx.figure({
      scenario: SCENARIO,
      figure: 'event-loop wait while retention trims (/healthz round trip p99)',
      unit: 'ms',
      fleetgate: s.p99Ms,
      target: '< 10 ms',
      verdict: bytes <= 1024 * 1024 ? (s.p99Ms < 10 ? 'met' : 'missed') : 'missed',
      note,
    })
  } finally {
    await fleet?.stop()
    forget()
    data.cleanup()
  }
}
