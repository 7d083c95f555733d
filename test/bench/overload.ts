// Scenario `overload`: devices offer twice the rate Fleetgate sustained in `ingest 1/frame` for 60 s
// (quick: 15 s). They are correct devices: they keep what the window does not let them send, so
// the hub must push back through its acks. Figures: no crash, the hub's highest RSS (sampled every
// second), the acked rate against the sustainable one, and every acked reading in InfluxDB.
import type { BenchContext } from './context.js'
import { fleetgateIngest, lossNote } from './fleetgate-ingest.js'
import { atLeast, atMost } from './report.js'

const SCENARIO = 'overload'
const DEVICES = 100

export async function overload(ctx: BenchContext): Promise<void> {
  let sustainable = ctx.shared.get('sustainablePerSec')
  let calibrated = false
  if (sustainable === undefined || !(sustainable > 0)) {
    // Run alone (--only overload): measure the sustainable rate first, briefly.
    const calibration = await fleetgateIngest(ctx, {
      label: 'overload-calibration',
      devices: DEVICES,
      readingsPerFrame: 1,
      subscriber: true,
      warmupSec: 3,
      steadySec: 5,
      catchUpSec: 20,
    })
    sustainable = calibration.endToEndPerSec
    calibrated = true
  }
  const durationSec = ctx.full ? 60 : 15
  const offered = Math.round(2 * sustainable)
  ctx.log(`overload: offering ${offered} readings/s (2 x ${Math.round(sustainable)}) for ${durationSec} s after a warm-up`)
  const run = await fleetgateIngest(ctx, {
    label: 'overload',
    devices: DEVICES,
    readingsPerFrame: 1,
    subscriber: true,
    offeredPerSec: offered,
    // The hub is a fresh process: a short warm-up, then the measured stretch at twice the rate.
    warmupSec: ctx.full ? 5 : 3,
    steadySec: durationSec,
    catchUpSec: 60,
  })
  ctx.detail('run', { ...run, sustainablePerSec: sustainable, offeredPerSec: offered, calibrated })
  const closes = Object.entries(run.closes).filter(([code]) => code !== '1000' && code !== '1005' && code !== '1006')
  const crashed = !run.hubAliveAtEnd
  // An ingest run like the others: the hub's CPU per reading acked goes in every row.
  const cpu = { fleetgate: run.hubCpuPerReadingUs }
  const basis = `${calibrated ? 'calibrated here' : 'from ingest 1/frame'}: ${Math.round(sustainable)}/s`
  ctx.figure({
    scenario: SCENARIO,
    cpuPerReadingUs: cpu,
    figure: `no crash (${durationSec} s at 2x sustainable)`,
    unit: '',
    fleetgate: crashed ? 0 : 1,
    target: 'hub alive (1)',
    verdict: crashed ? 'missed' : 'met',
    note: `offered ${offered} readings/s (sustainable ${basis}); sessions closed by the hub: ${closes.length === 0 ? 'none' : JSON.stringify(Object.fromEntries(closes))}`,
  })
  ctx.figure({
    scenario: SCENARIO,
    cpuPerReadingUs: cpu,
    figure: 'hub RSS max (sampled each second)',
    unit: 'MiB',
    fleetgate: run.hubRssMaxBytes / 1048576,
    target: '<= 512 MiB',
    verdict: atMost(run.hubRssMaxBytes / 1048576, 512),
  })
  const share = run.ackedPerSec / sustainable
  ctx.figure({
    scenario: SCENARIO,
    cpuPerReadingUs: cpu,
    figure: 'acked rate / sustainable rate',
    unit: '',
    fleetgate: share,
    target: '>= 0.8',
    verdict: atLeast(share, 0.8),
    note: `acked ${Math.round(run.ackedPerSec)}/s, landed ${Math.round(run.landedPerSec)}/s, delivered ${Math.round(run.deliveredPerSec ?? 0)}/s; ack latency p99 ${run.ackLatency.p99Ms} ms; ${run.nakedFrames} frames naked`,
  })
  ctx.figure({
    scenario: SCENARIO,
    cpuPerReadingUs: cpu,
    figure: 'acked readings lost',
    unit: '',
    fleetgate: run.ackedReadings - Math.min(run.landedReadings, run.deliveredReadings ?? run.landedReadings),
    target: '0 (InfluxDB and subscriber)',
    verdict: run.zeroLoss ? 'met' : 'missed',
    note:
      lossNote(run) ??
      `acked ${run.ackedReadings}, landed ${run.landedReadings} (InfluxDB caught up ${run.landedAfterSec?.toFixed(1) ?? '-'} s after the load stopped), delivered ${String(run.deliveredReadings)}`,
  })
}
