// Scenario `ingest-batch`: 100 devices, 50 readings per `tb` frame. Fleetgate's readings/s landed in
// InfluxDB, against the ceiling of the same influxd: raw 5,000-point line-protocol batches,
// measured PEER_RUNS times (the table shows the median).
import type { BenchContext } from './context.js'
import { cpuTargetFigure, fleetgateIngest, lossNote } from './fleetgate-ingest.js'
import { PEER_RUNS, repeatRuns } from './measure.js'
import { rawInflux, type PeerTiming, type RawInfluxResult } from './peer-ingest.js'
import { atLeast, atMost, formatNumber, microsPerItem, ratioAtLeast, ratioOf, type PeerFigure } from './report.js'

const DEVICES = 100
const READINGS_PER_FRAME = 50
const SCENARIO = 'ingest 50/frame'
/** Issue 16's targets: hub CPU per reading (µs) and hub RSS (MiB) at 50 readings per frame. */
const CPU_TARGET_US = 2
const RSS_TARGET_MIB = 300

/** The raw run's landed rate, when every point it wrote was counted without an error. */
const rawLanded = (raw: RawInfluxResult): number | undefined => (raw.errors === 0 && raw.counted === raw.points ? raw.landedPerSec : undefined)

export async function ingestBatch(ctx: BenchContext): Promise<void> {
  const timing: PeerTiming = ctx.full ? { warmupSec: 5, steadySec: 30, catchUpSec: 60 } : { warmupSec: 3, steadySec: 8, catchUpSec: 20 }
  const fg = await fleetgateIngest(ctx, { label: 'ingest-batch', devices: DEVICES, readingsPerFrame: READINGS_PER_FRAME, subscriber: false, ...timing })
  ctx.detail('fleetgate', fg)
  ctx.log(
    `Fleetgate: acked ${Math.round(fg.ackedPerSec)}/s, landed ${Math.round(fg.landedPerSec)}/s, ` +
      `${lossNote(fg) ?? 'zero loss'}, hub ${fg.hubCores.toFixed(2)} cores, influxd ${fg.influxCores.toFixed(2)} cores, load ${fg.loadCores.toFixed(2)} cores, ` +
      `hub RSS max ${Math.round(fg.hubRssMaxBytes / 1048576)} MiB`,
  )
  const raws = await repeatRuns<RawInfluxResult>(
    PEER_RUNS,
    async () => {
      const raw = await rawInflux(ctx, { warmupSec: 2, steadySec: timing.steadySec, catchUpSec: 0 }, 4, 5000, DEVICES)
      ctx.log(`raw InfluxDB: ${Math.round(raw.landedPerSec)} points/s landed (${raw.errors} errors), writer ${raw.writerCores.toFixed(2)} cores, influxd ${raw.influxCores.toFixed(2)} cores`)
      return raw
    },
    rawLanded,
  )
  ctx.detail('rawInflux', raws)
  // The median run, or the first when none counted every point (its errors go to the note).
  const raw = raws.median ?? (raws.runs[0] as RawInfluxResult)

  const fgLanded = fg.landedPerSec
  // No hub in the raw run: the CPU column has Fleetgate's alone.
  const cpu = { fleetgate: fg.hubCpuPerReadingUs }
  ctx.figure({
    scenario: SCENARIO,
    figure: 'readings/s landed in InfluxDB, zero loss',
    unit: '/s',
    fleetgate: fgLanded,
    cpuPerReadingUs: cpu,
    target: '>= 200,000/s',
    verdict: fg.zeroLoss ? atLeast(fgLanded, 200_000) : 'missed',
    note:
      `acked ${Math.round(fg.ackedPerSec)}/s over the same window; ` +
      (lossNote(fg) ?? `InfluxDB caught up ${fg.landedAfterSec?.toFixed(1) ?? '-'} s after the load stopped`),
  })
  const ceiling: PeerFigure = {
    name: 'raw line protocol, 4 writers x 5,000-point batches',
    value: rawLanded(raw),
    ...(raws.spread === undefined ? {} : { spread: raws.spread }),
  }
  ctx.figure({
    scenario: SCENARIO,
    figure: 'landed/s vs raw influxd ceiling',
    unit: '/s',
    fleetgate: fgLanded,
    cpuPerReadingUs: cpu,
    peer: ceiling,
    ratio: ratioOf(fgLanded, ceiling.value),
    target: 'ratio >= 0.8',
    verdict: fg.zeroLoss ? ratioAtLeast(fgLanded, ceiling, 0.8) : 'missed',
    ...(ceiling.value === undefined ? { note: `raw writes: ${raw.errors} errors (${raw.firstError ?? ''}), ${raw.points} written, ${raw.counted} counted` } : {}),
  })
  ctx.figure({ scenario: SCENARIO, figure: 'acked/s (steady window)', unit: '/s', fleetgate: fg.ackedPerSec, cpuPerReadingUs: cpu, verdict: 'n/a' })
  ctx.figure({ scenario: SCENARIO, figure: 'hub CPU', unit: 'cores', fleetgate: fg.hubCores, cpuPerReadingUs: cpu, verdict: 'n/a' })
  ctx.figure(cpuTargetFigure(SCENARIO, 'hub CPU per reading', fg, CPU_TARGET_US))
  // Both cores are shared: what influxd burns per point bounds what is left for the hub.
  ctx.figure({
    scenario: SCENARIO,
    figure: 'influxd CPU',
    unit: 'cores',
    fleetgate: fg.influxCores,
    cpuPerReadingUs: cpu,
    peer: { name: 'influxd in the median raw run', value: raw.influxCores },
    verdict: 'n/a',
    note:
      `CPU per landed point: Fleetgate run ${formatNumber(microsPerItem(fg.hubCores + fg.influxCores + fg.loadCores, fgLanded), 1)} µs (hub + influxd + load), ` +
      `raw run ${formatNumber(microsPerItem(raw.influxCores + raw.writerCores, raw.landedPerSec), 1)} µs (influxd + writers)`,
  })
  ctx.figure({
    scenario: SCENARIO,
    figure: 'hub RSS max',
    unit: 'MiB',
    fleetgate: fg.hubRssMaxBytes / 1048576,
    cpuPerReadingUs: cpu,
    target: `<= ${RSS_TARGET_MIB} MiB`,
    verdict: atMost(fg.hubRssMaxBytes / 1048576, RSS_TARGET_MIB),
  })
  ctx.figure({ scenario: SCENARIO, figure: 'ack latency p99', unit: 'ms', fleetgate: fg.ackLatency.p99Ms, cpuPerReadingUs: cpu, verdict: 'n/a' })
}
