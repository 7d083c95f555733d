// Scenario `ingest-single`: 100 devices, one reading per frame. Fleetgate's readings/s acked
// durable, landed in InfluxDB and delivered to one MQTT subscriber with zero loss, and the same
// load without a subscriber; then, in the same run, the reference hub's highest zero-loss rate and
// Mosquitto's QoS 1 delivered rate, each measured PEER_RUNS times (the table shows the median).
import type { BenchContext } from './context.js'
import { cpuTargetFigure, fleetgateIngest, lossNote } from './fleetgate-ingest.js'
import { mib, PEER_RUNS, repeatRuns, type Repeated } from './measure.js'
import { MOSQUITTO_LOSSLESS, mosquittoSearch, referenceSearch, type MosquittoSearch, type PeerTiming, type ReferenceSearch } from './peer-ingest.js'
import { atLeast, formatNumber, ratioAtLeast, ratioOf, type PeerFigure } from './report.js'

const DEVICES = 100
const SCENARIO = 'ingest 1/frame'
/** Issue 16's targets: hub CPU per reading with one QoS 1 subscriber, and with none, in µs. */
const CPU_TARGET_US = 20
const CPU_TARGET_NO_SUBSCRIBER_US = 10

export async function ingestSingle(ctx: BenchContext): Promise<void> {
  const timing: PeerTiming = ctx.full ? { warmupSec: 5, steadySec: 30, catchUpSec: 30 } : { warmupSec: 3, steadySec: 8, catchUpSec: 20 }
  const fg = await fleetgateIngest(ctx, { label: 'ingest-single', devices: DEVICES, readingsPerFrame: 1, subscriber: true, ...timing })
  ctx.detail('fleetgate', fg)
  ctx.log(
    `Fleetgate: acked ${Math.round(fg.ackedPerSec)}/s, landed ${Math.round(fg.landedPerSec)}/s, delivered ${Math.round(fg.deliveredPerSec ?? 0)}/s, ` +
      `${lossNote(fg) ?? 'zero loss'}, ` +
      `hub ${fg.hubCores.toFixed(2)} cores (${formatNumber(fg.hubCpuPerReadingUs, 1)} µs/reading), load ${fg.loadCores.toFixed(2)} cores, subscriber ${fg.subscriberCores?.toFixed(2) ?? '-'} cores`,
  )
  // The overload scenario offers twice what was sustained here.
  ctx.shared.set('sustainablePerSec', fg.endToEndPerSec)
  // The same load without the MQTT subscriber: issue 16's second CPU target, and what MQTT egress costs.
  const bare = await fleetgateIngest(ctx, { label: 'ingest-single-nosub', devices: DEVICES, readingsPerFrame: 1, subscriber: false, ...timing })
  ctx.detail('fleetgateWithoutSubscriber', bare)
  ctx.log(`Fleetgate without subscriber: acked ${Math.round(bare.ackedPerSec)}/s, hub ${bare.hubCores.toFixed(2)} cores (${formatNumber(bare.hubCpuPerReadingUs, 1)} µs/reading)`)

  // The peers get the same steady window; their warm-up is shorter (no JIT-heavy hub to warm).
  const peerTiming: PeerTiming = ctx.full ? { warmupSec: 3, steadySec: 15, catchUpSec: 15 } : { warmupSec: 2, steadySec: 4, catchUpSec: 6 }
  const ladder = ctx.full
    ? [1250, 2500, 5000, 7500, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 80_000]
    : [1250, 2500, 5000, 7500, 10_000, 20_000, 30_000, 40_000, 60_000]
  // The first search climbs from 10,000/s; the next ones start where the last one found its best.
  const startOf = (before: readonly ReferenceSearch[]): number => {
    const last = before.at(-1)?.best?.offeredPerSec
    return last === undefined ? ladder.indexOf(10_000) : ladder.indexOf(last)
  }
  const reference = await repeatRuns<ReferenceSearch>(PEER_RUNS, (before) => referenceSearch(ctx, ladder, startOf(before), peerTiming, DEVICES), (s) => s.best?.endToEndPerSec)
  ctx.detail('referenceHub', reference)
  const best = reference.median?.best
  const steps = reference.median?.steps ?? reference.runs[0]?.steps ?? []
  const firstFailed = steps.find((s) => !s.passed)

  let mosquitto: Repeated<MosquittoSearch> | undefined
  let mosquittoError: string | undefined
  try {
    const mqttTiming: PeerTiming = ctx.full ? { warmupSec: 3, steadySec: 15, catchUpSec: 15 } : { warmupSec: 2, steadySec: 5, catchUpSec: 10 }
    mosquitto = await repeatRuns<MosquittoSearch>(PEER_RUNS, () => mosquittoSearch(ctx, mqttTiming, DEVICES, 64), (s) => s.best?.endToEndPerSec)
    ctx.detail('mosquitto', { config: MOSQUITTO_LOSSLESS, ...mosquitto })
  } catch (err) {
    mosquittoError = (err as Error).message
    ctx.log(`Mosquitto peer failed: ${mosquittoError}`)
  }
  const mqttBest = mosquitto?.median?.best
  const mqttMax = mosquitto?.median?.runs[0]

  const e2e = fg.endToEndPerSec
  const cpu = { fleetgate: fg.hubCpuPerReadingUs }
  const cpuVsReference = { ...cpu, peer: best?.hubCpuPerReadingUs }
  const headline = 'readings/s acked+landed+delivered, zero loss'
  const window = `slowest of acked ${Math.round(fg.ackedPerSec)}, landed ${Math.round(fg.landedPerSec)}, delivered ${Math.round(fg.deliveredPerSec ?? 0)} readings/s over the steady window`
  ctx.figure({
    scenario: SCENARIO,
    figure: headline,
    unit: '/s',
    fleetgate: e2e,
    cpuPerReadingUs: cpu,
    target: '>= 40,000/s',
    verdict: fg.zeroLoss ? atLeast(e2e, 40_000) : 'missed',
    note:
      lossNote(fg) ??
      `${window}; InfluxDB caught up ${fg.landedAfterSec?.toFixed(1) ?? '-'} s and the subscriber within ${fg.deliveredAfterSec?.toFixed(1) ?? '-'} s after the load stopped`,
  })
  const refPeer: PeerFigure = { name: 'ws+JSON+node-influx+aedes, highest zero-loss step', value: best?.endToEndPerSec, ...(reference.spread === undefined ? {} : { spread: reference.spread }) }
  ctx.figure({
    scenario: SCENARIO,
    figure: `${headline} vs reference hub`,
    unit: '/s',
    fleetgate: e2e,
    cpuPerReadingUs: cpuVsReference,
    peer: refPeer,
    ratio: ratioOf(e2e, refPeer.value),
    target: 'ratio >= 1.0',
    verdict: fg.zeroLoss ? ratioAtLeast(e2e, refPeer, 1) : 'missed',
    note:
      `best zero-loss step of each search: ${reference.runs.map((r) => (r.best === undefined ? 'none' : `${r.best.offeredPerSec / 1000}k`)).join(', ')}; ` +
      `median search offered ${steps.map((s) => `${s.offeredPerSec / 1000}k ${s.passed ? 'ok' : s.error !== undefined ? 'error' : s.zeroLoss ? 'behind' : 'short'}`).join(', ')}` +
      (firstFailed === undefined ? '; never failed within the steps tried' : `; first failed step ${firstFailed.offeredPerSec}/s: sent ${Math.round(firstFailed.sentPerSec)}/s, acked ${Math.round(firstFailed.ackedPerSec)}/s, landed ${Math.round(firstFailed.landedPerSec)}/s, delivered ${Math.round(firstFailed.deliveredPerSec)}/s, ${firstFailed.zeroLoss ? 'all counted in the end but behind the offered rate' : `${firstFailed.sent - firstFailed.landed} not in InfluxDB and ${firstFailed.sent - firstFailed.delivered} not delivered of ${firstFailed.sent} sent, ${peerTiming.catchUpSec} s after the load stopped`}${firstFailed.error === undefined ? '' : ` (${firstFailed.error})`}`),
  })
  const mqttPeer: PeerFigure = { name: 'Mosquitto 100 -> 1, zero loss', value: mqttBest?.endToEndPerSec, ...(mosquitto?.spread === undefined ? {} : { spread: mosquitto.spread }) }
  const config = `max_queued_messages ${String(MOSQUITTO_LOSSLESS.maxQueuedMessages)}, max_inflight_messages ${String(MOSQUITTO_LOSSLESS.maxInflightMessages)}`
  const mqttNote =
    mosquittoError !== undefined
      ? `Mosquitto peer failed: ${mosquittoError}`
      : `${DEVICES} lean QoS 1 publishers (mqtt-packet, window 64), 1 mqtt.js subscriber; mosquitto ${config}; peer CPU is mosquitto's per message delivered` +
        (mqttMax !== undefined && !mqttMax.zeroLoss
          ? `; in the median search, as fast as it acks, Mosquitto took ${Math.round(mqttMax.publishedPerSec)}/s, delivered ${Math.round(mqttMax.deliveredPerSec)}/s ` +
            `and had delivered ${mqttMax.delivered} of ${mqttMax.published} when the wait ended` +
            (mqttMax.dropNotices.length > 0 ? ` (its log: "${mqttMax.dropNotices[0]?.replace(/^\d+: /, '') ?? ''}")` : '') +
            `; the zero-loss figure is from a paced run${mqttBest === undefined ? ', but none lost nothing' : ` at ${String(mqttBest.offeredPerSec)}/s`}`
          : '')
  ctx.figure({
    scenario: SCENARIO,
    figure: `${headline} vs Mosquitto QoS 1 delivered`,
    unit: '/s',
    fleetgate: e2e,
    cpuPerReadingUs: { ...cpu, peer: mqttBest?.brokerCpuPerMessageUs },
    peer: mqttPeer,
    ratio: ratioOf(e2e, mqttPeer.value),
    target: 'ratio >= 1.0',
    verdict: fg.zeroLoss ? ratioAtLeast(e2e, mqttPeer, 1) : 'missed',
    note: mqttNote,
  })
  const row = (figure: string, unit: string, fleetgate: number | undefined, peer?: number, note?: string): void =>
    ctx.figure({
      scenario: SCENARIO,
      figure,
      unit,
      fleetgate,
      cpuPerReadingUs: cpuVsReference,
      ...(peer === undefined ? {} : { peer: { name: 'reference hub', value: peer }, ratio: ratioOf(fleetgate, peer) }),
      verdict: 'n/a',
      ...(note === undefined ? {} : { note }),
    })
  row('acked/s (steady window)', '/s', fg.ackedPerSec, best?.ackedPerSec)
  row('landed in InfluxDB/s', '/s', fg.landedPerSec, best?.landedPerSec)
  row('delivered to subscriber/s', '/s', fg.deliveredPerSec, best?.deliveredPerSec)
  row('hub CPU', 'cores', fg.hubCores, best?.hubCores, 'peer: at its highest zero-loss step of the median search')
  ctx.figure(cpuTargetFigure(SCENARIO, 'hub CPU per reading', fg, CPU_TARGET_US, { name: 'reference hub', value: best?.hubCpuPerReadingUs }))
  row('hub RSS max', 'MiB', fg.hubRssMaxBytes / 1048576, best === undefined ? undefined : best.hubRssMaxBytes / 1048576)
  row('ack latency p50', 'ms', fg.ackLatency.p50Ms)
  row('ack latency p99', 'ms', fg.ackLatency.p99Ms)
  row('load generator CPU', 'cores', fg.loadCores, best?.loadCores)
  ctx.figure({
    scenario: SCENARIO,
    figure: 'acked/s with no MQTT subscriber',
    unit: '/s',
    fleetgate: bare.ackedPerSec,
    cpuPerReadingUs: { fleetgate: bare.hubCpuPerReadingUs },
    verdict: 'n/a',
    note:
      `${lossNote(bare) ?? `landed ${Math.round(bare.landedPerSec)}/s, zero loss`}, hub ${bare.hubCores.toFixed(2)} cores; ` +
      `with the subscriber the hub ran ${fg.hubCores.toFixed(2)} cores for ${Math.round(fg.ackedPerSec)}/s`,
  })
  ctx.figure(cpuTargetFigure(SCENARIO, 'hub CPU per reading with no MQTT subscriber', bare, CPU_TARGET_NO_SUBSCRIBER_US))
  ctx.log(`Fleetgate hub RSS max ${mib(fg.hubRssMaxBytes)}, ack latency p50 ${fg.ackLatency.p50Ms} ms, p99 ${fg.ackLatency.p99Ms} ms`)
}
