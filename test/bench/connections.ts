// Scenario `connections` (it absorbs the foundation's connection benchmark and keeps its figures):
// connect storms of authenticated sessions (hmac and ed25519) with the hub's CPU over the storm,
// then idle sessions held and the hub's RSS per session, against a bare `ws` server holding the
// same number of idle connections. Sessions are file descriptors: the count is capped by the
// open-files limits of this machine, and the cap is reported.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../support/hub.js'
import { startBenchHub, hubMetrics, type BenchContext } from './context.js'
import type { ConnectManyResult } from './fleet.js'
import { provisionBulk, sourceAddresses, type DeviceCreds } from './load.js'
import { coresSince, cpuMark, mib, openFilesLimit, PEER_RUNS, repeatRuns, rssBytes, rssParts, sleep, tcpCounters } from './measure.js'
import { atExit, Worker } from './procs.js'
import { atLeast, atMost, ratioOf } from './report.js'

const BARE_WS = fileURLToPath(new URL('./peers/bare-ws.ts', import.meta.url))
const SCENARIO = 'connections'
/** File descriptors a process keeps for itself (listeners, lmdb, logs, InfluxDB and MQTT sockets). */
const FD_RESERVE = 500
/** Sessions one worker holds at most: well under the ~28k ephemeral ports of one source address. */
const PER_WORKER = 20_000
/**
 * Connects in flight during a storm. Below uWS's listen backlog (512, fixed in uSockets): beyond
 * it the kernel drops SYNs while the hub is busy, each dropped one costs a 1 s retransmit, and the
 * figure would measure TCP timers rather than the hub. The overflows are counted either way.
 */
const STORM_CONCURRENCY = 256

/** One storm's figures. */
interface StormResult {
  readonly perSec: number
  readonly hubCores: number
  readonly loadCores: number
  readonly failed: number
  /** Accept-queue overflows and SYN retransmits in this network namespace during the storm. */
  readonly listenOverflows: number
  readonly synRetransmits: number
}

function hardOpenFilesLimit(): number {
  const match = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  return match?.[1] === undefined || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1])
}

/** Opens idle sessions spread over workers (each with its own source address); resolves the totals. */
async function holdIdle(
  workers: Worker[],
  url: string,
  shares: ReadonlyArray<{ devices?: readonly DeviceCreds[]; count?: number; address: string }>,
  until: 'message' | 'open',
): Promise<{ connected: number; failed: number; firstError: string | undefined; ms: number }> {
  // Tokens are signed before the clock starts: the rate is of connects, not of signing.
  const tokens = await Promise.all(
    shares.map((share, w) => (share.devices === undefined ? undefined : (workers[w] as Worker).call<string[]>('tokens.sign', share.devices))),
  )
  const started = performance.now()
  const results = await Promise.all(
    shares.map((share, w) =>
      (workers[w] as Worker).call<ConnectManyResult>('idle.connect', {
        url,
        ...(tokens[w] === undefined ? { count: share.count } : { tokens: tokens[w] }),
        localAddresses: [share.address],
        concurrency: 500,
        until,
      }),
    ),
  )
  return {
    connected: results.reduce((n, r) => n + r.connected, 0),
    failed: results.reduce((n, r) => n + r.failed, 0),
    firstError: results.find((r) => r.firstError !== undefined)?.firstError,
    ms: performance.now() - started,
  }
}

export async function connections(ctx: BenchContext): Promise<void> {
  const workers: Worker[] = []
  try {
    await measure(ctx, workers)
  } finally {
    await Promise.all(workers.map((w) => w.stop()))
  }
}

async function measure(ctx: BenchContext, workers: Worker[]): Promise<void> {
  const storm = ctx.full ? 5000 : 1000
  const requested = ctx.full ? 100_000 : 10_000
  let sessions = 0
  let perSession: number | undefined
  let capNote = ''
  const stormRates: Record<string, StormResult> = {}

  // Connect storms, on a hub of their own.
  const stormHub = await startBenchHub(ctx, 'connections-storm', 'fg_connections')
  try {
    const hmac = await provisionBulk(stormHub.base, 'storm-hmac', storm, { keyType: 'hmac' })
    const ed = await provisionBulk(stormHub.base, 'storm-ed', storm, { keyType: 'ed25519' })
    const stormer = await Worker.start('storm')
    workers.push(stormer)
    const runStorm = async (devices: readonly DeviceCreds[]): Promise<StormResult> => {
      // Tokens are signed before the clock starts: a device signs its token before it dials.
      const tokens = await stormer.call<string[]>('tokens.sign', devices)
      const tcp = tcpCounters()
      const hubCpu = cpuMark(stormHub.pid)
      const loadCpu = cpuMark(stormer.pid)
      const result = await stormer.call<ConnectManyResult>('storm', { url: stormHub.wsUrl, tokens, concurrency: STORM_CONCURRENCY, until: 'message' })
      const hubCores = coresSince(stormHub.pid, hubCpu)
      const loadCores = coresSince(stormer.pid, loadCpu)
      const tcpAfter = tcpCounters()
      await stormer.call('storm.close')
      return {
        perSec: result.perSec,
        hubCores,
        loadCores,
        failed: result.failed,
        listenOverflows: tcpAfter.listenOverflows - tcp.listenOverflows,
        synRetransmits: tcpAfter.synRetransmits - tcp.synRetransmits,
      }
    }
    // A first storm warms both sides' JIT; the second is the figure.
    await runStorm(hmac)
    await sleep(1000)
    stormRates['hmac'] = await runStorm(hmac)
    await sleep(1000)
    stormRates['ed25519'] = await runStorm(ed)
    ctx.log(`connect storms of ${storm}: hmac ${stormRates['hmac'].perSec}/s, ed25519 ${stormRates['ed25519'].perSec}/s`)
  } finally {
    await stormHub.stop()
  }

  // Idle sessions: devices provisioned, then the hub restarted on the same data, so that the RSS
  // before holds no garbage of provisioning and the difference is the sessions' own.
  const data = tempDir('fleetgate-bench-idle-')
  const forget = atExit(data.cleanup)
  try {
    const provisioner = await startBenchHub(ctx, 'connections-provision', 'fg_connections', {}, { dataDir: data.path })
    let devices: DeviceCreds[]
    try {
      const limit = Math.min(openFilesLimit(provisioner.pid), hardOpenFilesLimit()) - FD_RESERVE
      sessions = Math.min(requested, limit)
      if (sessions < requested) capNote = `capped at ${sessions} of ${requested} by the open-files limit (${limit + FD_RESERVE}; raise the hard limit, ulimit -Hn)`
      devices = await provisionBulk(provisioner.base, 'idle', sessions, { keyType: 'hmac' })
    } finally {
      await provisioner.stop()
    }
    const hub = await startBenchHub(ctx, 'connections-idle', 'fg_connections', { FLEETGATE_IDLE_SEC: '600' }, { dataDir: data.path })
    try {
      const shares = Math.ceil(sessions / PER_WORKER)
      const addresses = sourceAddresses(2 * shares)
      while (workers.length < 1 + shares) workers.push(await Worker.start(`idle-${workers.length}`))
      const idleWorkers = workers.slice(1)
      const settleMs = ctx.full ? 5000 : 2500
      await sleep(settleMs)
      const before = rssBytes(hub.pid)
      const partsBefore = rssParts(hub.pid)
      const split = (half: 0 | 1): Array<{ devices: readonly DeviceCreds[]; address: string }> =>
        Array.from({ length: shares }, (_, w) => {
          const share = devices.slice(w * PER_WORKER, Math.min(sessions, (w + 1) * PER_WORKER))
          const middle = Math.floor(share.length / 2)
          return { devices: half === 0 ? share.slice(0, middle) : share.slice(middle), address: addresses[w] as string }
        })
      // Two halves: the second half's growth is the marginal cost of a session, free of the
      // one-off growth (JIT code, heap sizing) that the first connections bring.
      const first = await holdIdle(idleWorkers, hub.wsUrl, split(0), 'message')
      await sleep(settleMs)
      const middle = rssBytes(hub.pid)
      const second = await holdIdle(idleWorkers, hub.wsUrl, split(1), 'message')
      await sleep(settleMs)
      const held = {
        connected: first.connected + second.connected,
        failed: first.failed + second.failed,
        firstError: first.firstError ?? second.firstError,
        ms: first.ms + second.ms,
      }
      const after = rssBytes(hub.pid)
      const partsAfter = rssParts(hub.pid)
      const gauge = (await hubMetrics(hub.base).catch(() => new Map<string, number>())).get('fleetgate_sessions')
      perSession = second.connected > 0 ? (after - middle) / second.connected : undefined
      const per = (x: number, y: number): number => Math.round((y - x) / Math.max(1, held.connected))
      ctx.detail('fleetgate', {
        connectStorm: { devices: storm, hmac: stormRates['hmac'], ed25519: stormRates['ed25519'] },
        idle: {
          requested,
          sessions: held.connected,
          failed: held.failed,
          firstError: held.firstError,
          sessionsGauge: gauge,
          connectPerSec: Math.round((held.connected / held.ms) * 1000),
          hubRssBefore: mib(before),
          hubRssAtHalf: mib(middle),
          hubRssAfter: mib(after),
          rssPerSessionBytes: perSession === undefined ? undefined : Math.round(perSession),
          rssPerSessionAllBytes: per(before, after),
          anonPerSessionBytes: per(partsBefore.anonBytes, partsAfter.anonBytes),
          filePerSessionBytes: per(partsBefore.fileBytes, partsAfter.fileBytes),
        },
      })
      ctx.log(`idle: ${held.connected} sessions held (${held.failed} failed, ${Math.round((held.connected / held.ms) * 1000)}/s), hub RSS ${mib(before)} -> ${mib(middle)} -> ${mib(after)}`)
      sessions = held.connected
      if (held.failed > 0) capNote += `${capNote === '' ? '' : '; '}${held.failed} sessions failed to open: ${held.firstError ?? ''}`
      await Promise.all(idleWorkers.map((w) => w.call('idle.close')))
    } finally {
      await hub.stop()
    }
  } finally {
    forget()
    data.cleanup()
  }

  // The peer: the same number of idle connections on a bare ws server, a fresh one each run.
  const bare = await repeatRuns<BareRun>(PEER_RUNS, (before) => bareWs(ctx, workers, sessions, before.length), (r) => r.perConnectionBytes)
  ctx.detail('bareWs', bare.runs)
  const barePerConnection = bare.median?.perConnectionBytes
  const bareHeld = bare.median?.held

  ctx.figure({
    scenario: SCENARIO,
    figure: 'authenticated idle sessions held',
    unit: '',
    fleetgate: sessions,
    peer: { name: 'bare ws server, idle connections held', value: bareHeld },
    ratio: ratioOf(sessions, bareHeld),
    target: '>= 100,000',
    verdict: requested < 100_000 ? 'n/a' : atLeast(sessions, 100_000),
    ...(requested < 100_000 ? { note: `quick run holds ${requested}; --full asks 100,000${capNote === '' ? '' : `; ${capNote}`}` } : capNote === '' ? {} : { note: capNote }),
  })
  const ratio = ratioOf(perSession, barePerConnection)
  ctx.figure({
    scenario: SCENARIO,
    figure: 'hub RSS per idle session',
    unit: 'B',
    fleetgate: perSession,
    peer: { name: 'bare ws server, same connections', value: barePerConnection, ...(bare.spread === undefined ? {} : { spread: bare.spread }) },
    ratio,
    target: '<= 4,096 B',
    verdict: atMost(perSession, 4096),
    note:
      'growth over the second half of the sessions (the first half pays one-off growth), on a hub restarted after provisioning; ' +
      'MQTT broker and InfluxDB on, as in production (a retained status message per online device); ratio < 1 means leaner than bare ws',
  })
  for (const [keyType, target] of [['hmac', 5000], ['ed25519', 2000]] as const) {
    const rate = stormRates[keyType]
    ctx.figure({
      scenario: SCENARIO,
      figure: `connect storm ${keyType} (${storm} devices)`,
      unit: '/s',
      fleetgate: rate?.perSec,
      target: `>= ${target.toLocaleString('en-US')}/s`,
      verdict: atLeast(rate?.perSec, target),
      ...(rate === undefined ? {} : { note: stormNote(rate) }),
    })
  }
}

/** One run of the bare ws peer. */
interface BareRun {
  /** Connections held at the end. */
  readonly held: number
  readonly failed: number
  /** RSS growth per connection over the second half (as for the hub), in bytes. */
  readonly perConnectionBytes: number | undefined
  readonly rssBefore: string
  readonly rssAtHalf: string
  readonly rssAfter: string
  readonly rssPerConnectionAllBytes: number
}

/**
 * A fresh bare ws server holding `sessions` idle connections, measured as the hub is (two halves).
 * Run `run` (from 0) connects from source addresses of its own: the hub's and the earlier runs'
 * are in TIME_WAIT.
 */
async function bareWs(ctx: BenchContext, workers: Worker[], sessions: number, run: number): Promise<BareRun> {
  const bare = await Worker.start('bare-ws', { script: BARE_WS })
  try {
    const { http } = await bare.call<{ http: number }>('ports')
    const shares = Math.ceil(sessions / PER_WORKER)
    const addresses = sourceAddresses((2 + run) * shares).slice((1 + run) * shares)
    const idleWorkers = workers.slice(1)
    while (idleWorkers.length < shares) {
      const w = await Worker.start(`idle-${workers.length}`)
      workers.push(w)
      idleWorkers.push(w)
    }
    const settleMs = ctx.full ? 5000 : 2500
    await sleep(1000)
    const before = rssBytes(bare.pid)
    const split = (half: 0 | 1): Array<{ count: number; address: string }> =>
      Array.from({ length: shares }, (_, w) => {
        const count = Math.min(PER_WORKER, sessions - w * PER_WORKER)
        return { count: half === 0 ? Math.floor(count / 2) : count - Math.floor(count / 2), address: addresses[w] as string }
      })
    const url = `ws://127.0.0.1:${http}/v1/connect`
    const first = await holdIdle(idleWorkers, url, split(0), 'open')
    await sleep(settleMs)
    const middle = rssBytes(bare.pid)
    const second = await holdIdle(idleWorkers, url, split(1), 'open')
    await sleep(settleMs)
    const after = rssBytes(bare.pid)
    const held = first.connected + second.connected
    ctx.log(`bare ws run ${run + 1}: ${held} connections, RSS ${mib(before)} -> ${mib(middle)} -> ${mib(after)}`)
    await Promise.all(idleWorkers.map((w) => w.call('idle.close')))
    return {
      held,
      failed: first.failed + second.failed,
      perConnectionBytes: second.connected > 0 ? (after - middle) / second.connected : undefined,
      rssBefore: mib(before),
      rssAtHalf: mib(middle),
      rssAfter: mib(after),
      rssPerConnectionAllBytes: Math.round((after - before) / Math.max(1, held)),
    }
  } finally {
    await bare.stop()
  }
}

function stormNote(storm: StormResult): string {
  return (
    `${STORM_CONCURRENCY} connects in flight; hub ${storm.hubCores.toFixed(2)} cores, load generator ${storm.loadCores.toFixed(2)} cores, ${storm.failed} failed` +
    (storm.listenOverflows > 0 ? `; ${storm.listenOverflows} accept-queue overflows and ${storm.synRetransmits} SYN retransmits (1 s each) on this machine meanwhile` : '')
  )
}
