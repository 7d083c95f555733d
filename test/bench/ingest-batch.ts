// Scenario `ingest-batch`: 100 devices, 50 readings per `tb` frame. Fleetgate's readings/s landed in
// InfluxDB, against the ceiling of the same influxd: raw 5,000-point line-protocol batches.
import type { BenchContext } from './context.js'
import { fleetgateIngest, lossNote } from './fleetgate-ingest.js'
import { rawInflux, type PeerTiming } from './peer-ingest.js'
import { atLeast, ratioOf } from './report.js'

const DEVICES = 100
const READINGS_PER_FRAME = 50
const SCENARIO = 'ingest 50/frame'

/** Microseconds of CPU per item, as text: `cores` busy while `perSec` items went through. */
const microsPer = (cores: number, perSec: number): string => (perSec > 0 ? ((cores * 1e6) / perSec).toFixed(1) : '-')

export async function ingestBatch(ctx: BenchContext): Promise<void> {
  const timing: PeerTiming = ctx.full ? { warmupSec: 5, steadySec: 30, catchUpSec: 60 } : { warmupSec: 3, steadySec: 8, catchUpSec: 20 }
  const fg = await fleetgateIngest(ctx, { label: 'ingest-batch', devices: DEVICES, readingsPerFrame: READINGS_PER_FRAME, subscriber: false, ...timing })
  ctx.detail('fleetgate', fg)
  ctx.log(
    `Fleetgate: acked ${Math.round(fg.ackedPerSec)}/s, landed ${Math.round(fg.landedPerSec)}/s, ` +
      `${lossNote(fg) ?? 'zero loss'}, hub ${fg.hubCores.toFixed(2)} cores, influxd ${fg.influxCores.toFixed(2)} cores, load ${fg.loadCores.toFixed(2)} cores, ` +
      `hub RSS max ${Math.round(fg.hubRssMaxBytes / 1048576)} MiB`,
  )
  const raw = await rawInflux(ctx, { warmupSec: 2, steadySec: timing.steadySec, catchUpSec: 0 }, 4, 5000, DEVICES)
  ctx.detail('rawInflux', raw)
  ctx.log(`raw InfluxDB: ${Math.round(raw.landedPerSec)} points/s landed (${raw.errors} errors), writer ${raw.writerCores.toFixed(2)} cores, influxd ${raw.influxCores.toFixed(2)} cores`)

  const fgLanded = fg.landedPerSec
  const rawLanded = raw.errors === 0 && raw.counted === raw.points ? raw.landedPerSec : undefined
  ctx.figure({
    scenario: SCENARIO,
    figure: 'readings/s landed in InfluxDB, zero loss',
    unit: '/s',
    fleetgate: fgLanded,
    target: '>= 200,000/s',
    verdict: fg.zeroLoss ? atLeast(fgLanded, 200_000) : 'missed',
    note:
      `acked ${Math.round(fg.ackedPerSec)}/s over the same window; ` +
      (lossNote(fg) ?? `InfluxDB caught up ${fg.landedAfterSec?.toFixed(1) ?? '-'} s after the load stopped`),
  })
  const ratio = ratioOf(fgLanded, rawLanded)
  ctx.figure({
    scenario: SCENARIO,
    figure: 'landed/s vs raw influxd ceiling',
    unit: '/s',
    fleetgate: fgLanded,
    peer: { name: 'raw line protocol, 4 writers x 5,000-point batches', value: rawLanded },
    ratio,
    target: 'ratio >= 0.8',
    verdict: fg.zeroLoss ? atLeast(ratio, 0.8) : 'missed',
    ...(rawLanded === undefined ? { note: `raw writes: ${raw.errors} errors (${raw.firstError ?? ''}), ${raw.points} written, ${raw.counted} counted` } : {}),
  })
  ctx.figure({ scenario: SCENARIO, figure: 'acked/s (steady window)', unit: '/s', fleetgate: fg.ackedPerSec, verdict: 'n/a' })
  ctx.figure({ scenario: SCENARIO, figure: 'hub CPU', unit: 'cores', fleetgate: fg.hubCores, verdict: 'n/a' })
  // Both cores are shared: what influxd burns per point bounds what is left for the hub.
  ctx.figure({
    scenario: SCENARIO,
    figure: 'influxd CPU',
    unit: 'cores',
    fleetgate: fg.influxCores,
    peer: { name: 'influxd in the raw run', value: raw.influxCores },
    verdict: 'n/a',
    note: `CPU per landed point: Fleetgate run ${microsPer(fg.hubCores + fg.influxCores + fg.loadCores, fgLanded)} µs (hub + influxd + load), raw run ${microsPer(raw.influxCores + raw.writerCores, raw.landedPerSec)} µs (influxd + writers)`,
  })
  ctx.figure({ scenario: SCENARIO, figure: 'hub RSS max', unit: 'MiB', fleetgate: fg.hubRssMaxBytes / 1048576, verdict: 'n/a' })
  ctx.figure({ scenario: SCENARIO, figure: 'ack latency p99', unit: 'ms', fleetgate: fg.ackLatency.p99Ms, verdict: 'n/a' })
}
