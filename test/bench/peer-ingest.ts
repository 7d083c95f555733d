// The ingest peers, measured the way Fleetgate is (steady window after warm-up, then every reading
// counted at InfluxDB and at the subscriber): the reference hub at fixed offered rates, Mosquitto
// QoS 1, and raw line-protocol writes straight to influxd.
import { fileURLToPath } from 'node:url'
import { startMosquitto, type MosquittoOptions } from '../support/mosquitto.js'
import { dropDatabase, influxPid, landed, type BenchContext } from './context.js'
import type { InfluxWriteSample } from './influx-load.js'
import type { JsonSample } from './json-fleet.js'
import { COUNT_FIELD } from './load.js'
import { catchUp, coresSince, cpuMark, RssSampler, sleep } from './measure.js'
import { microsPerItem } from './report.js'
import type { CounterSample } from './mqtt-load.js'
import { Worker } from './procs.js'

const REFERENCE_HUB = fileURLToPath(new URL('./peers/reference-hub.ts', import.meta.url))

/** Timing of a peer measurement. */
export interface PeerTiming {
  readonly warmupSec: number
  readonly steadySec: number
  /** How long the peer may take, after the load stops, to land and deliver every reading. */
  readonly catchUpSec: number
}

/** One step of the reference hub at a fixed offered rate. */
export interface ReferenceStep {
  readonly offeredPerSec: number
  /** Steady window, readings per second: sent by the devices, acked, landed, delivered. */
  readonly sentPerSec: number
  readonly ackedPerSec: number
  readonly landedPerSec: number
  readonly deliveredPerSec: number
  readonly endToEndPerSec: number
  readonly sent: number
  readonly landed: number
  readonly delivered: number
  readonly zeroLoss: boolean
  /** Zero loss, and acks, InfluxDB and MQTT kept within 10% of the offered rate. */
  readonly passed: boolean
  readonly hubCores: number
  /** The reference hub's CPU per reading acked over the steady window, in µs. */
  readonly hubCpuPerReadingUs: number | undefined
  readonly hubRssMaxBytes: number
  readonly loadCores: number
  readonly stats: unknown
  readonly error?: string
}

const perSec = (x: number, y: number, fromMs: number, toMs: number): number => ((y - x) * 1000) / Math.max(1, toMs - fromMs)

/** Runs the reference hub (a fresh process and database) at one offered rate. */
export async function referenceStep(ctx: BenchContext, offeredPerSec: number, timing: PeerTiming, devices: number): Promise<ReferenceStep> {
  const db = `ref_${offeredPerSec}`
  const hub = await Worker.start('reference-hub', { script: REFERENCE_HUB, env: { REF_INFLUX_URL: ctx.influx.url, REF_INFLUX_DB: db } })
  const rss = new RssSampler(hub.pid)
  let counter: Worker | undefined
  let load: Worker | undefined
  try {
    const ports = await hub.call<{ http: number; mqtt: number }>('ports')
    counter = await Worker.start('mqtt-counter')
    await counter.call('counter.start', { url: `mqtt://127.0.0.1:${ports.mqtt}`, topic: 'fleetgate/devices/+/telemetry' })
    load = await Worker.start('json-fleet')
    const ids = Array.from({ length: devices }, (_, i) => `ref-${i}`)
    await load.call('json.connect', { url: `ws://127.0.0.1:${ports.http}/v1/connect`, deviceIds: ids, t0: Date.now() - 3_600_000 })
    await load.call('json.start', { ratePerSec: offeredPerSec })
    await sleep(timing.warmupSec * 1000)
    const sampleAll = async (): Promise<{ load: JsonSample; counter: CounterSample; landed: number; landedAt: number }> => {
      const queryAt = Date.now()
      const [l, c, n] = await Promise.all([
        (load as Worker).call<JsonSample>('json.sample'),
        (counter as Worker).call<CounterSample>('counter.sample'),
        landed(ctx, db, COUNT_FIELD),
      ])
      return { load: l, counter: c, landed: n, landedAt: (queryAt + Date.now()) / 2 }
    }
    const hubCpu = cpuMark(hub.pid)
    const loadCpu = cpuMark(load.pid)
    const a = await sampleAll()
    await sleep(timing.steadySec * 1000)
    const b = await sampleAll()
    const hubCores = coresSince(hub.pid, hubCpu)
    const loadCores = coresSince(load.pid, loadCpu)
    const final = await load.call<JsonSample>('json.stop', { drainMs: timing.catchUpSec * 1000 })
    const sent = final.sentReadings
    const catchUpFrom = performance.now()
    const influx = await catchUp(() => landed(ctx, db, COUNT_FIELD), sent, timing.catchUpSec * 1000)
    const remaining = Math.max(2000, timing.catchUpSec * 1000 - (performance.now() - catchUpFrom))
    const mqtt = await catchUp(async () => (await (counter as Worker).call<CounterSample>('counter.sample')).uniqueReadings, sent, remaining, 100)
    const landedCount = influx.last
    const delivered = mqtt.last
    const sentPerSec = perSec(a.load.sentReadings, b.load.sentReadings, a.load.at, b.load.at)
    const ackedPerSec = perSec(a.load.ackedReadings, b.load.ackedReadings, a.load.at, b.load.at)
    const landedPerSec = perSec(a.landed, b.landed, a.landedAt, b.landedAt)
    const deliveredPerSec = perSec(a.counter.uniqueReadings, b.counter.uniqueReadings, a.counter.at, b.counter.at)
    const endToEndPerSec = Math.min(ackedPerSec, landedPerSec, deliveredPerSec)
    const zeroLoss = landedCount === sent && delivered === sent && final.ackedReadings === sent
    return {
      offeredPerSec,
      sentPerSec,
      ackedPerSec,
      landedPerSec,
      deliveredPerSec,
      endToEndPerSec,
      sent,
      landed: landedCount,
      delivered,
      zeroLoss,
      passed: zeroLoss && sentPerSec >= 0.9 * offeredPerSec && endToEndPerSec >= 0.9 * offeredPerSec,
      hubCores,
      hubCpuPerReadingUs: microsPerItem(hubCores, ackedPerSec),
      hubRssMaxBytes: rss.maxBytes,
      loadCores,
      stats: await hub.call('stats'),
    }
  } finally {
    rss.stop()
    await load?.call('json.close').catch(() => undefined)
    await load?.stop()
    await counter?.call('counter.stop').catch(() => undefined)
    await counter?.stop()
    await hub.stop()
    await dropDatabase(ctx, db)
  }
}

/** A search of the reference hub's highest zero-loss rate: every step tried, and the best that passed. */
export interface ReferenceSearch {
  readonly steps: readonly ReferenceStep[]
  /** The passed step with the highest end-to-end rate; undefined when none passed. */
  readonly best: ReferenceStep | undefined
}

/**
 * Finds the reference hub's highest zero-loss rate on `ladder` (offered readings/s, ascending):
 * from `ladder[start]` up until a step loses readings or falls behind; if that first step already
 * fails, down from the next lower rate until one passes. Every step is a fresh process and
 * database, and is kept.
 */
export async function referenceSearch(ctx: BenchContext, ladder: readonly number[], start: number, timing: PeerTiming, devices: number): Promise<ReferenceSearch> {
  const steps: ReferenceStep[] = []
  const one = async (rate: number): Promise<ReferenceStep> => {
    let step: ReferenceStep
    try {
      step = await referenceStep(ctx, rate, timing, devices)
    } catch (err) {
      step = failedStep(rate, err)
    }
    steps.push(step)
    ctx.log(
      `reference hub at ${rate}/s: sent ${Math.round(step.sentPerSec)}/s, acked ${Math.round(step.ackedPerSec)}/s, landed ${Math.round(step.landedPerSec)}/s, ` +
        `delivered ${Math.round(step.deliveredPerSec)}/s, ${step.zeroLoss ? 'zero loss' : `LOSS (sent ${step.sent}, landed ${step.landed}, delivered ${step.delivered})`}` +
        `${step.error === undefined ? '' : `, ${step.error}`}, hub ${step.hubCores.toFixed(2)} cores: ${step.passed ? 'passed' : 'failed'}`,
    )
    return step
  }
  for (const rate of ladder.slice(start)) {
    if (!(await one(rate)).passed) break
  }
  if (!steps.some((s) => s.passed)) {
    for (const rate of ladder.slice(0, start).reverse()) {
      if ((await one(rate)).passed) break
    }
  }
  const best = steps.filter((s) => s.passed).reduce<ReferenceStep | undefined>((x, s) => (x === undefined || s.endToEndPerSec > x.endToEndPerSec ? s : x), undefined)
  return { steps, best }
}

function failedStep(offeredPerSec: number, err: unknown): ReferenceStep {
  return {
    offeredPerSec,
    sentPerSec: 0,
    ackedPerSec: 0,
    landedPerSec: 0,
    deliveredPerSec: 0,
    endToEndPerSec: 0,
    sent: 0,
    landed: 0,
    delivered: 0,
    zeroLoss: false,
    passed: false,
    hubCores: 0,
    hubCpuPerReadingUs: undefined,
    hubRssMaxBytes: 0,
    loadCores: 0,
    stats: undefined,
    error: err instanceof Error ? err.message.split('\n')[0] : String(err),
  }
}

/**
 * Mosquitto as a user who wants lossless QoS 1 configures it (mosquitto.conf(5)). No bound on the
 * queue per client (`max_queued_messages 0`; `max_queued_bytes` keeps its default, no bound): past
 * a bound mosquitto drops QoS 1 messages for a subscriber that lags, silently to the publisher.
 * 1,000 messages in flight to a client instead of 20, so that the subscriber's window is not the
 * limit (Fleetgate's embedded aedes has none). `persistence` keeps its default, false: mosquitto
 * saves its database on an interval, which makes no message durable when it is acked, so it would
 * add work without giving what Fleetgate's ack promises.
 */
export const MOSQUITTO_LOSSLESS: MosquittoOptions = { maxQueuedMessages: 0, maxInflightMessages: 1000 }

/** Mosquitto with QoS 1 publishers and one QoS 1 subscriber, as fast as the broker acks or at a set rate. */
export interface MosquittoResult {
  /** Offered publishes/s, or undefined for as fast as Mosquitto acks. */
  readonly offeredPerSec: number | undefined
  readonly publishedPerSec: number
  readonly deliveredPerSec: number
  readonly endToEndPerSec: number
  readonly published: number
  readonly delivered: number
  readonly duplicates: number
  /** The subscriber held every acked message when the wait after the load ended. */
  readonly zeroLoss: boolean
  readonly publisherCores: number
  readonly subscriberCores: number
  /** Mosquitto's own CPU over the steady window. */
  readonly brokerCores: number
  /** Mosquitto's CPU per message delivered to the subscriber, in µs. */
  readonly brokerCpuPerMessageUs: number | undefined
  /** Mosquitto's own log lines about dropping messages (its notice when a client's queue overflows). */
  readonly dropNotices: readonly string[]
}

/**
 * Runs `publishers` QoS 1 publishers (window `window` each) against a fresh mosquitto configured
 * `MOSQUITTO_LOSSLESS`, one QoS 1 subscriber; as fast as Mosquitto acks, or `ratePerSec` over all
 * publishers.
 */
export async function mosquittoPeer(timing: PeerTiming, publishers: number, window: number, ratePerSec?: number): Promise<MosquittoResult> {
  const broker = await startMosquitto(MOSQUITTO_LOSSLESS)
  let counter: Worker | undefined
  let pubs: Worker | undefined
  try {
    counter = await Worker.start('mqtt-counter')
    await counter.call('counter.start', { url: broker.url, topic: 'fleetgate/devices/+/telemetry' })
    pubs = await Worker.start('mqtt-publishers')
    await pubs.call('publishers.connect', { url: broker.url, count: publishers })
    await pubs.call('publishers.start', { window, t0: Date.now() - 3_600_000, ...(ratePerSec === undefined ? {} : { ratePerSec }) })
    await sleep(timing.warmupSec * 1000)
    const pubCpu = cpuMark(pubs.pid)
    const subCpu = cpuMark(counter.pid)
    const brokerCpu = cpuMark(broker.pid)
    type PubSample = { at: number; acked: number }
    const [pa, ca] = await Promise.all([pubs.call<PubSample>('publishers.sample'), counter.call<CounterSample>('counter.sample')])
    await sleep(timing.steadySec * 1000)
    const [pb, cb] = await Promise.all([pubs.call<PubSample>('publishers.sample'), counter.call<CounterSample>('counter.sample')])
    const publisherCores = coresSince(pubs.pid, pubCpu)
    const subscriberCores = coresSince(counter.pid, subCpu)
    const brokerCores = coresSince(broker.pid, brokerCpu)
    const final = await pubs.call<PubSample>('publishers.stop', { drainMs: timing.catchUpSec * 1000 })
    await catchUp(async () => (await (counter as Worker).call<CounterSample>('counter.sample')).uniqueReadings, final.acked, timing.catchUpSec * 1000, 100)
    await sleep(300)
    const last = await counter.call<CounterSample>('counter.sample')
    const publishedPerSec = perSec(pa.acked, pb.acked, pa.at, pb.at)
    const deliveredPerSec = perSec(ca.uniqueReadings, cb.uniqueReadings, ca.at, cb.at)
    return {
      offeredPerSec: ratePerSec,
      publishedPerSec,
      deliveredPerSec,
      endToEndPerSec: Math.min(publishedPerSec, deliveredPerSec),
      published: final.acked,
      delivered: last.uniqueReadings,
      duplicates: last.duplicates,
      zeroLoss: last.uniqueReadings === final.acked,
      publisherCores,
      subscriberCores,
      brokerCores,
      brokerCpuPerMessageUs: microsPerItem(brokerCores, deliveredPerSec),
      dropNotices: broker
        .output()
        .split('\n')
        .filter((line) => /dropp/i.test(line))
        .slice(0, 3),
    }
  } finally {
    await pubs?.call('publishers.close').catch(() => undefined)
    await pubs?.stop()
    await counter?.call('counter.stop').catch(() => undefined)
    await counter?.stop()
    await broker.stop()
  }
}

/** A search of Mosquitto's highest zero-loss delivered rate: every run, and the best without loss. */
export interface MosquittoSearch {
  readonly runs: readonly MosquittoResult[]
  readonly best: MosquittoResult | undefined
}

/**
 * Mosquitto's highest zero-loss delivered rate: first as fast as it acks; if its subscriber then
 * does not hold every acked message by the end of the wait (it fell behind, or, with a bounded
 * queue, mosquitto dropped), again at a strict offered rate of 85%, 65%, 50% and 35% of the rate
 * the subscriber took, until a run loses nothing. Every run is kept.
 */
export async function mosquittoSearch(ctx: BenchContext, timing: PeerTiming, publishers: number, window: number): Promise<MosquittoSearch> {
  const runs: MosquittoResult[] = []
  const max = await mosquittoPeer(timing, publishers, window)
  runs.push(max)
  for (const share of [0.85, 0.65, 0.5, 0.35]) {
    if (runs.at(-1)?.zeroLoss === true) break
    runs.push(await mosquittoPeer(timing, publishers, window, Math.round(share * max.deliveredPerSec)))
  }
  for (const run of runs) {
    ctx.log(
      `Mosquitto QoS 1 ${run.offeredPerSec === undefined ? 'at max' : `at ${run.offeredPerSec}/s`}: published ${Math.round(run.publishedPerSec)}/s, ` +
        `delivered ${Math.round(run.deliveredPerSec)}/s, ${run.zeroLoss ? 'zero loss' : `LOSS (${run.published} published, ${run.delivered} delivered)`}, ` +
        `mosquitto ${run.brokerCores.toFixed(2)} cores, publishers ${run.publisherCores.toFixed(2)} cores, subscriber ${run.subscriberCores.toFixed(2)} cores`,
    )
  }
  return { runs, best: runs.filter((r) => r.zeroLoss).sort((x, y) => y.endToEndPerSec - x.endToEndPerSec)[0] }
}

/** Raw line-protocol writes straight to influxd: the ceiling of what any hub can land there. */
export interface RawInfluxResult {
  readonly landedPerSec: number
  readonly points: number
  readonly counted: number
  readonly errors: number
  readonly firstError: string | undefined
  readonly writerCores: number
  readonly influxCores: number
}

/** `writers` in parallel, each POSTing `batchPoints`-point batches, for warm-up plus the steady window. */
export async function rawInflux(ctx: BenchContext, timing: PeerTiming, writers: number, batchPoints: number, devices: number): Promise<RawInfluxResult> {
  const db = 'raw_ceiling'
  await ctx.influx.query(`CREATE DATABASE "${db}"`)
  const load = await Worker.start('influx-writers')
  try {
    await load.call('influx.start', { url: ctx.influx.url, db, writers, batchPoints, devices, t0: Date.now() - 3_600_000 })
    await sleep(timing.warmupSec * 1000)
    const cpu = cpuMark(load.pid)
    const influxCpu = cpuMark(influxPid(ctx))
    const a = await load.call<InfluxWriteSample>('influx.sample')
    await sleep(timing.steadySec * 1000)
    const b = await load.call<InfluxWriteSample>('influx.sample')
    const writerCores = coresSince(load.pid, cpu)
    const influxCores = coresSince(influxPid(ctx), influxCpu)
    const final = await load.call<InfluxWriteSample>('influx.stop')
    const counted = await landed(ctx, db, COUNT_FIELD)
    return {
      landedPerSec: perSec(a.points, b.points, a.at, b.at),
      points: final.points,
      counted,
      errors: final.errors,
      firstError: final.firstError,
      writerCores,
      influxCores,
    }
  } finally {
    await load.stop()
    await dropDatabase(ctx, db)
  }
}
