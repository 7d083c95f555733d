// Scenario `ingest-single`: 100 devices, one reading per frame. Fleetgate's readings/s acked
// durable, landed in InfluxDB and delivered to one MQTT subscriber with zero loss; then, in the
// same run, the reference hub's highest zero-loss rate and Mosquitto's QoS 1 delivered rate.
import type { BenchContext } from './context.js'
import { fleetgateIngest, lossNote } from './fleetgate-ingest.js'
import { mib } from './measure.js'
import { mosquittoSearch, referenceSteps, type MosquittoResult, type PeerTiming, type ReferenceStep } from './peer-ingest.js'
import { atLeast, ratioOf } from './report.js'

const DEVICES = 100
const SCENARIO = 'ingest 1/frame'

export async function ingestSingle(ctx: BenchContext): Promise<void> {
  const timing: PeerTiming = ctx.full ? { warmupSec: 5, steadySec: 30, catchUpSec: 30 } : { warmupSec: 3, steadySec: 8, catchUpSec: 20 }
  const fg = await fleetgateIngest(ctx, { label: 'ingest-single', devices: DEVICES, readingsPerFrame: 1, subscriber: true, ...timing })
  ctx.detail('fleetgate', fg)
  ctx.log(
    `Fleetgate: acked ${Math.round(fg.ackedPerSec)}/s, landed ${Math.round(fg.landedPerSec)}/s, delivered ${Math.round(fg.deliveredPerSec ?? 0)}/s, ` +
      `${lossNote(fg) ?? 'zero loss'}, ` +
      `hub ${fg.hubCores.toFixed(2)} cores, load ${fg.loadCores.toFixed(2)} cores, subscriber ${fg.subscriberCores?.toFixed(2) ?? '-'} cores`,
  )
  // The overload scenario offers twice what was sustained here.
  ctx.shared.set('sustainablePerSec', fg.endToEndPerSec)
  // --full only, a diagnostic: the same load without the MQTT subscriber shows what MQTT egress costs.
  const bare = ctx.full
    ? await fleetgateIngest(ctx, { label: 'ingest-single-nosub', devices: DEVICES, readingsPerFrame: 1, subscriber: false, ...timing })
    : undefined
  if (bare !== undefined) ctx.detail('fleetgateWithoutSubscriber', bare)

  // The peers get the same steady window; their warm-up is shorter (no JIT-heavy hub to warm).
  const peerTiming: PeerTiming = ctx.full ? { warmupSec: 3, steadySec: 15, catchUpSec: 15 } : { warmupSec: 2, steadySec: 4, catchUpSec: 6 }
  const rates = ctx.full ? [10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 80_000] : [10_000, 20_000, 30_000, 40_000, 60_000]
  const steps = await referenceSteps(ctx, rates, [7500, 5000, 2500, 1250], peerTiming, DEVICES)
  ctx.detail('referenceHubSteps', steps)
  const best = steps.filter((s) => s.passed).reduce<ReferenceStep | undefined>((a, s) => (a === undefined || s.endToEndPerSec > a.endToEndPerSec ? s : a), undefined)
  const firstFailed = steps.find((s) => !s.passed)

  let mosquittoRuns: MosquittoResult[] = []
  let mosquittoError: string | undefined
  try {
    mosquittoRuns = await mosquittoSearch(ctx, ctx.full ? { warmupSec: 3, steadySec: 15, catchUpSec: 15 } : { warmupSec: 2, steadySec: 5, catchUpSec: 10 }, DEVICES, 64)
    ctx.detail('mosquitto', mosquittoRuns)
  } catch (err) {
    mosquittoError = (err as Error).message
    ctx.log(`Mosquitto peer failed: ${mosquittoError}`)
  }
  const mosquitto = mosquittoRuns.filter((r) => r.zeroLoss).sort((a, b) => b.endToEndPerSec - a.endToEndPerSec)[0]
  const mosquittoMax = mosquittoRuns[0]

  const e2e = fg.endToEndPerSec
  const headline = 'readings/s acked+landed+delivered, zero loss'
  const window = `slowest of acked ${Math.round(fg.ackedPerSec)}, landed ${Math.round(fg.landedPerSec)}, delivered ${Math.round(fg.deliveredPerSec ?? 0)} readings/s over the steady window`
  ctx.figure({
    scenario: SCENARIO,
    figure: headline,
    unit: '/s',
    fleetgate: e2e,
    target: '>= 40,000/s',
    verdict: fg.zeroLoss ? atLeast(e2e, 40_000) : 'missed',
    note:
      lossNote(fg) ??
      `${window}; InfluxDB caught up ${fg.landedAfterSec?.toFixed(1) ?? '-'} s and the subscriber within ${fg.deliveredAfterSec?.toFixed(1) ?? '-'} s after the load stopped`,
  })
  const refRatio = ratioOf(e2e, best?.endToEndPerSec)
  ctx.figure({
    scenario: SCENARIO,
    figure: `${headline} vs reference hub`,
    unit: '/s',
    fleetgate: e2e,
    peer: { name: 'ws+JSON+node-influx+aedes, highest zero-loss step', value: best?.endToEndPerSec },
    ratio: refRatio,
    target: 'ratio >= 1.0',
    verdict: fg.zeroLoss ? atLeast(refRatio, 1) : 'missed',
    note:
      `offered ${steps.map((s) => `${s.offeredPerSec / 1000}k ${s.passed ? 'ok' : s.error !== undefined ? 'error' : s.zeroLoss ? 'behind' : 'short'}`).join(', ')}` +
      (firstFailed === undefined ? '; never failed within the steps tried' : `; first failed step ${firstFailed.offeredPerSec}/s: sent ${Math.round(firstFailed.sentPerSec)}/s, acked ${Math.round(firstFailed.ackedPerSec)}/s, landed ${Math.round(firstFailed.landedPerSec)}/s, delivered ${Math.round(firstFailed.deliveredPerSec)}/s, ${firstFailed.zeroLoss ? 'all counted in the end but behind the offered rate' : `${firstFailed.sent - firstFailed.landed} not in InfluxDB and ${firstFailed.sent - firstFailed.delivered} not delivered of ${firstFailed.sent} sent, ${peerTiming.catchUpSec} s after the load stopped`}${firstFailed.error === undefined ? '' : ` (${firstFailed.error})`}`),
  })
  const mqttE2e = mosquitto?.endToEndPerSec
  const mqttRatio = ratioOf(e2e, mqttE2e)
  const mqttNote =
    mosquittoError !== undefined
      ? `Mosquitto peer failed: ${mosquittoError}`
      : `${DEVICES} lean QoS 1 publishers (mqtt-packet, window 64), 1 mqtt.js subscriber` +
        (mosquittoMax !== undefined && !mosquittoMax.zeroLoss
          ? `; as fast as it acks, Mosquitto took ${Math.round(mosquittoMax.publishedPerSec)}/s, delivered ${Math.round(mosquittoMax.deliveredPerSec)}/s ` +
            `and lost ${mosquittoMax.published - mosquittoMax.delivered} of ${mosquittoMax.published}` +
            (mosquittoMax.dropNotices.length > 0 ? ` (its log: "${mosquittoMax.dropNotices[0]?.replace(/^\d+: /, '') ?? ''}")` : '') +
            `; the zero-loss figure is from a paced run${mosquitto === undefined ? ', but none lost nothing' : ` at ${String(mosquitto.offeredPerSec)}/s`}`
          : '')
  ctx.figure({
    scenario: SCENARIO,
    figure: `${headline} vs Mosquitto QoS 1 delivered`,
    unit: '/s',
    fleetgate: e2e,
    peer: { name: 'Mosquitto 100 -> 1, zero loss', value: mqttE2e },
    ratio: mqttRatio,
    target: 'ratio >= 1.0',
    verdict: fg.zeroLoss ? atLeast(mqttRatio, 1) : 'missed',
    note: mqttNote,
  })
  const row = (figure: string, unit: string, fleetgate: number | undefined, peer?: number, note?: string): void =>
    ctx.figure({
      scenario: SCENARIO,
      figure,
      unit,
      fleetgate,
      ...(peer === undefined ? {} : { peer: { name: 'reference hub', value: peer }, ratio: ratioOf(fleetgate, peer) }),
      verdict: 'n/a',
      ...(note === undefined ? {} : { note }),
    })
  row('acked/s (steady window)', '/s', fg.ackedPerSec, best?.ackedPerSec)
  row('landed in InfluxDB/s', '/s', fg.landedPerSec, best?.landedPerSec)
  row('delivered to subscriber/s', '/s', fg.deliveredPerSec, best?.deliveredPerSec)
  row('hub CPU', 'cores', fg.hubCores, best?.hubCores, 'peer: at its highest zero-loss step')
  row('hub RSS max', 'MiB', fg.hubRssMaxBytes / 1048576, best === undefined ? undefined : best.hubRssMaxBytes / 1048576)
  row('ack latency p50', 'ms', fg.ackLatency.p50Ms)
  row('ack latency p99', 'ms', fg.ackLatency.p99Ms)
  row('load generator CPU', 'cores', fg.loadCores, best?.loadCores)
  if (bare !== undefined) {
    row(
      'diagnostic: acked/s with no MQTT subscriber',
      '/s',
      bare.ackedPerSec,
      undefined,
      `landed ${Math.round(bare.landedPerSec)}/s, hub ${bare.hubCores.toFixed(2)} cores; with the subscriber the hub ran ${fg.hubCores.toFixed(2)} cores for ${Math.round(fg.ackedPerSec)}/s`,
    )
  }
  ctx.log(`Fleetgate hub RSS max ${mib(fg.hubRssMaxBytes)}, ack latency p50 ${fg.ackLatency.p50Ms} ms, p99 ${fg.ackLatency.p99Ms} ms`)
}
