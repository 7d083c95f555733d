// One ingest measurement of Fleetgate, shared by the ingest and overload scenarios: a hub process,
// a fleet of lean devices in a worker, an MQTT subscriber in another, InfluxDB counted by query.
// Rates come from a steady window after warm-up; afterwards every acked reading must be found in
// InfluxDB and at the subscriber (zero loss means the counts are equal).
import { ADMIN_TOKEN } from '../support/hub.js'
import { dropDatabase, hubMetrics, influxPid, landed, startBenchHub, type BenchContext } from './context.js'
import type { FleetSample } from './fleet.js'
import { COUNT_FIELD, provisionBulk, type LatencySummary } from './load.js'
import { catchUp, coresSince, cpuMark, RssSampler, sleep, type CatchUp } from './measure.js'
import type { CounterSample } from './mqtt-load.js'
import { Worker } from './procs.js'
import { atMost, microsPerItem, ratioOf, type Figure, type PeerFigure } from './report.js'

/** How to run one ingest measurement. */
export interface IngestRunOptions {
  /** Names the hub's data, database and profile. */
  readonly label: string
  readonly devices: number
  readonly readingsPerFrame: number
  readonly warmupSec: number
  readonly steadySec: number
  /** Readings offered per second over the fleet; undefined: as fast as the hub acks. */
  readonly offeredPerSec?: number
  /** Whether an MQTT subscriber takes every telemetry message. */
  readonly subscriber: boolean
  /** How long InfluxDB and the subscriber may take to hold every acked reading after the load stops. */
  readonly catchUpSec: number
  /** Environment of the hub beyond the bench's (e.g. `FLEETGATE_HISTORY`). */
  readonly env?: Record<string, string>
  /**
   * Whether the hub ships to the bench influxd (default true). Without it (`FLEETGATE_INFLUX_URL`
   * off), nothing lands: "landed" then counts what was acked, and zero loss means acked = sent.
   */
  readonly influx?: boolean
}

/** What one ingest measurement found. */
export interface IngestRunResult {
  /** Steady window: readings acked, landed in InfluxDB and delivered to the subscriber, per second. */
  readonly ackedPerSec: number
  readonly landedPerSec: number
  readonly deliveredPerSec: number | undefined
  /** The slowest of the three: readings/s that made it all the way. */
  readonly endToEndPerSec: number
  readonly sentReadings: number
  readonly ackedReadings: number
  readonly nakedFrames: number
  readonly landedReadings: number
  readonly deliveredReadings: number | undefined
  readonly duplicateMessages: number | undefined
  /** Every acked reading landed (and was delivered), no more and no less. */
  readonly zeroLoss: boolean
  /** InfluxDB (and the subscriber) reached the acked count before the wait ended. */
  readonly caughtUp: boolean
  /** Seconds after the load stopped until InfluxDB (and the subscriber) held every acked reading; undefined if never. */
  readonly landedAfterSec: number | undefined
  readonly deliveredAfterSec: number | undefined
  /** How fast InfluxDB filled while it caught up, per second. */
  readonly landingAfterStopPerSec: number
  readonly hubCores: number
  /** The hub's CPU per reading acked over the steady window, in µs (issue 16's yardstick: it carries to other machines). */
  readonly hubCpuPerReadingUs: number | undefined
  readonly hubRssMaxBytes: number
  readonly loadCores: number
  /** influxd's CPU over the steady window: it shares the machine's cores with the hub. */
  readonly influxCores: number
  readonly subscriberCores: number | undefined
  readonly ackLatency: LatencySummary
  readonly eventLoopLagP99Ms: number | undefined
  /** Sessions closed by the hub during the run, by code. */
  readonly closes: Record<string, number>
  /** Whether the hub process still ran when the counts were taken (no crash). */
  readonly hubAliveAtEnd: boolean
}

interface Window {
  readonly fleet: FleetSample
  readonly counter: CounterSample | undefined
  readonly landed: number
  readonly landedAt: number
}

/** Runs one ingest measurement of Fleetgate; everything it started is stopped, also on failure. */
export async function fleetgateIngest(ctx: BenchContext, options: IngestRunOptions): Promise<IngestRunResult> {
  const db = `fg_${options.label.replace(/[^A-Za-z0-9_]/g, '_')}`
  const withInflux = options.influx !== false
  const hub = await startBenchHub(ctx, options.label, db, { ...options.env, ...(withInflux ? {} : { FLEETGATE_INFLUX_URL: 'off' }) })
  const rss = new RssSampler(hub.pid)
  let fleet: Worker | undefined
  let counter: Worker | undefined
  let hubAliveAtEnd = false
  try {
    const devices = await provisionBulk(hub.base, options.label, options.devices)
    if (options.subscriber) {
      counter = await Worker.start('mqtt-counter')
      await counter.call('counter.start', { url: hub.mqttUrl, password: ADMIN_TOKEN, topic: 'fleetgate/devices/+/telemetry' })
    }
    fleet = await Worker.start('fleet')
    const t0 = Date.now() - 3_600_000
    await fleet.call('fleet.connect', { url: hub.wsUrl, devices, readingsPerFrame: options.readingsPerFrame, t0 })
    const offered = options.offeredPerSec === undefined ? {} : { ratePerSec: options.offeredPerSec / options.readingsPerFrame }
    await fleet.call('fleet.start', offered)
    ctx.log(`${options.label}: ${options.devices} devices sending ${options.offeredPerSec === undefined ? 'as fast as acked' : `${options.offeredPerSec} readings/s`}`)
    await sleep(options.warmupSec * 1000)

    const sampleAll = async (): Promise<Window> => {
      const queryAt = Date.now()
      const [fleetSample, counterSample, count] = await Promise.all([
        (fleet as Worker).call<FleetSample>('fleet.sample', { resetLatency: true }),
        counter?.call<CounterSample>('counter.sample'),
        withInflux ? landed(ctx, db, COUNT_FIELD) : undefined,
      ])
      return { fleet: fleetSample, counter: counterSample, landed: count ?? fleetSample.counters.ackedReadings, landedAt: count === undefined ? fleetSample.at : (queryAt + Date.now()) / 2 }
    }
    const hubCpu = cpuMark(hub.pid)
    const loadCpu = cpuMark(fleet.pid)
    const influxCpu = cpuMark(influxPid(ctx))
    const counterCpu = counter === undefined ? undefined : cpuMark(counter.pid)
    // prom-client resets its event-loop histogram on each scrape: this one opens the window.
    await hubMetrics(hub.base).catch(() => undefined)
    const a = await sampleAll()
    await sleep(options.steadySec * 1000)
    const b = await sampleAll()
    const hubCores = coresSince(hub.pid, hubCpu)
    const loadCores = coresSince(fleet.pid, loadCpu)
    const influxCores = coresSince(influxPid(ctx), influxCpu)
    const subscriberCores = counter === undefined || counterCpu === undefined ? undefined : coresSince(counter.pid, counterCpu)
    const lag = await hubMetrics(hub.base).catch(() => undefined)
    const lagP99 = lag?.get('fleetgate_nodejs_eventloop_lag_p99_seconds')

    const perSec = (x: number, y: number, fromMs: number, toMs: number): number => ((y - x) * 1000) / Math.max(1, toMs - fromMs)
    const ackedPerSec = perSec(a.fleet.counters.ackedReadings, b.fleet.counters.ackedReadings, a.fleet.at, b.fleet.at)
    const landedPerSec = perSec(a.landed, b.landed, a.landedAt, b.landedAt)
    const deliveredPerSec =
      a.counter === undefined || b.counter === undefined ? undefined : perSec(a.counter.uniqueReadings, b.counter.uniqueReadings, a.counter.at, b.counter.at)

    const final = await fleet.call<FleetSample>('fleet.stop', { drainMs: 30_000 })
    const stoppedAt = performance.now()
    const acked = final.counters.ackedReadings
    const influx = withInflux ? await catchUp(() => landed(ctx, db, COUNT_FIELD), acked, options.catchUpSec * 1000) : { reached: true, afterSec: 0, perSec: 0 }
    let delivered: CounterSample | undefined
    let mqtt: CatchUp | undefined
    // The subscriber is checked after InfluxDB: its catch-up time is an upper bound.
    let mqttFrom = 0
    if (counter !== undefined) {
      const remaining = Math.max(2000, options.catchUpSec * 1000 - (performance.now() - stoppedAt))
      mqttFrom = (performance.now() - stoppedAt) / 1000
      mqtt = await catchUp(async () => (await (counter as Worker).call<CounterSample>('counter.sample')).uniqueReadings, acked, remaining, 100)
      // A short pause for duplicates or extras still on their way, then the final counts.
      await sleep(300)
      delivered = await counter.call<CounterSample>('counter.sample')
    }
    const landedCount = withInflux ? await landed(ctx, db, COUNT_FIELD) : final.counters.sentReadings
    hubAliveAtEnd = hub.alive()
    const zeroLoss = landedCount === acked && (delivered === undefined || delivered.uniqueReadings === acked)
    const result: IngestRunResult = {
      ackedPerSec,
      landedPerSec,
      deliveredPerSec,
      endToEndPerSec: Math.min(ackedPerSec, landedPerSec, deliveredPerSec ?? Number.POSITIVE_INFINITY),
      sentReadings: final.counters.sentReadings,
      ackedReadings: acked,
      nakedFrames: final.counters.nakedFrames,
      landedReadings: landedCount,
      deliveredReadings: delivered?.uniqueReadings,
      duplicateMessages: delivered?.duplicates,
      zeroLoss,
      caughtUp: influx.reached && (mqtt === undefined || mqtt.reached),
      landedAfterSec: influx.reached ? influx.afterSec : undefined,
      deliveredAfterSec: mqtt?.reached === true ? mqttFrom + mqtt.afterSec : undefined,
      landingAfterStopPerSec: influx.perSec,
      hubCores,
      hubCpuPerReadingUs: microsPerItem(hubCores, ackedPerSec),
      hubRssMaxBytes: rss.maxBytes,
      loadCores,
      influxCores,
      subscriberCores,
      ackLatency: b.fleet.latency,
      eventLoopLagP99Ms: lagP99 === undefined ? undefined : lagP99 * 1000,
      closes: final.counters.closes,
      hubAliveAtEnd,
    }
    await fleet.call('fleet.close')
    return result
  } finally {
    rss.stop()
    await fleet?.stop()
    await counter?.call('counter.stop').catch(() => undefined)
    await counter?.stop()
    const { exitCode } = await hub.stop()
    if (!hubAliveAtEnd) ctx.log(`${options.label}: the hub had exited (code ${String(exitCode)}) before the end of the run`)
    await dropDatabase(ctx, db)
  }
}

/** Why a run is not "zero loss", in words for the table; undefined when it is. */
export function lossNote(r: IngestRunResult): string | undefined {
  if (r.zeroLoss) return undefined
  const delivered = r.deliveredReadings === undefined ? '' : `, ${r.deliveredReadings} delivered`
  if (!r.caughtUp) {
    return (
      `NOT CAUGHT UP: ${r.ackedReadings} acked, ${r.landedReadings} in InfluxDB${delivered} when the wait ended ` +
      `(InfluxDB filling at ${Math.round(r.landingAfterStopPerSec)}/s after the load stopped; the rest still in the spool: lag, not proven loss)`
    )
  }
  return `COUNTS DIFFER: ${r.ackedReadings} acked, ${r.landedReadings} in InfluxDB${delivered}`
}

/**
 * The row of a CPU target (issue 16) for one ingest run: the hub's CPU per reading acked, at most
 * `targetUs`; missed when the run lost readings. With `peer`, the peer's CPU per reading beside it.
 */
export function cpuTargetFigure(scenario: string, figure: string, run: IngestRunResult, targetUs: number, peer?: PeerFigure): Figure {
  return {
    scenario,
    figure,
    unit: 'µs',
    fleetgate: run.hubCpuPerReadingUs,
    cpuPerReadingUs: { fleetgate: run.hubCpuPerReadingUs, ...(peer === undefined ? {} : { peer: peer.value }) },
    ...(peer === undefined ? {} : { peer, ratio: ratioOf(run.hubCpuPerReadingUs, peer.value) }),
    target: `<= ${targetUs} µs`,
    verdict: run.zeroLoss ? atMost(run.hubCpuPerReadingUs, targetUs) : 'missed',
    note: `hub CPU core-seconds / readings acked over the steady window${peer === undefined ? '' : `; ratio < 1 means leaner than the ${peer.name}`}`,
  }
}
