import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { realClock, type NakReason } from '@fleetgate/device-sdk'
import { encodeFrame, type BatchFrame, type HubFrame, type TelemetryFrame } from '@fleetgate/device-sdk/wire'
import { tempDir } from '../../test/support/hub.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type HubStores, type SpoolStore } from '../src/store/index.js'
import { commitTarget } from '../src/telemetry/commit-target.js'
import { Ingest, type CommittedFrame, type IngestOptions, type IngestPeer } from '../src/telemetry/ingest.js'

const START_MS = 1_700_000_000_000

/** A session as ingest sees it: what it was sent, and how it was closed. */
class FakePeer implements IngestPeer {
  readonly sent: HubFrame[] = []
  readonly connectedAt = START_MS
  readonly lastSeenAt = START_MS
  closedWith: number | undefined
  constructor(
    readonly deviceId: string,
    readonly ingest: IngestPeer['ingest'],
  ) {}
  isOpen(): boolean {
    return this.closedWith === undefined
  }
  send(frame: HubFrame): boolean {
    this.sent.push(frame)
    return true
  }
  close(code: number): void {
    this.closedWith ??= code
  }
}

describe('Ingest', () => {
  let dir: { path: string; cleanup(): void }
  let store: HubStores
  let spool: SpoolStore
  let nowMs: number
  let holding: boolean
  let committed: CommittedFrame[]
  let counts: { naks: NakReason[]; droppedResults: number }
  let ingest: Ingest

  const build = (options: Partial<IngestOptions> = {}): Ingest =>
    new Ingest({
      target: commitTarget({ spool: { store: spool, maxBytes: 1 << 30 } }),
      log: createLogger('silent'),
      counters: {
        accepted: () => undefined,
        acked: () => undefined,
        naked: (reason) => counts.naks.push(reason),
        resultDropped: () => counts.droppedResults++,
      },
      publish: () => undefined,
      committed: (frames) => committed.push(...frames),
      ratePerSec: 100,
      shippingLags: () => holding,
      // Real timers (the egress retry), the test's time for budgets and stamps.
      clock: { ...realClock, now: () => nowMs },
      ...options,
    })
  const peer = (deviceId: string): FakePeer => new FakePeer(deviceId, ingest.newState())
  const send = (to: FakePeer, frame: TelemetryFrame | BatchFrame): void => ingest.accept(to, frame, encodeFrame(frame))
  const acked = (of: FakePeer): number[] => of.sent.flatMap((frame) => (frame.t === 'ack' ? [frame.s] : []))

  beforeEach(() => {
    dir = tempDir('fleetgate-ingest-')
    store = openLmdbStores(dir.path)
    spool = store.spool
    nowMs = START_MS
    holding = false
    committed = []
    counts = { naks: [], droppedResults: 0 }
    ingest = build()
  })
  afterEach(async () => {
    await ingest.drain()
    await store.close()
    dir.cleanup()
  })

  it('drops the uncommitted frames of a session that ended: what waits stays within one window per live session', async () => {
    holding = true
    let live = peer('d1')
    for (let round = 0; round < 5; round++) {
      for (let s = 1; s <= 64; s++) send(live, { t: 'tm', s, ts: START_MS + round * 100 + s, m: { v: s } })
      send(live, { t: 'tm', s: 65, ts: START_MS, m: { v: 0 } })
      expect(live.sent.at(-1)).toStrictEqual({ t: 'nak', s: 65, e: 'too_many' })
      expect(ingest.pendingFrames).toBe(64)
      // the device reconnects: the old session closes, a new one resends its window
      live.closedWith = 4001
      ingest.closed(live)
      expect(ingest.pendingFrames).toBe(0)
      live = peer('d1')
    }
    const other = peer('d2')
    send(other, { t: 'tm', s: 1, ts: START_MS, m: { v: 1 } })
    send(live, { t: 'tm', s: 1, ts: START_MS, m: { v: 2 } })
    expect(ingest.pendingFrames).toBe(2)
    holding = false
    ingest.resume()
    await vi.waitFor(() => expect([acked(other), acked(live)]).toStrictEqual([[1], [1]]))
    expect(committed.map((frame) => [frame.deviceId, frame.readings[0]?.m['v']])).toStrictEqual([
      ['d2', 1],
      ['d1', 2],
    ])
    expect(ingest.pendingFrames).toBe(0)
  })

  it('commits a session\'s frames in seq order across commits of bounded size', async () => {
    holding = true
    const a = peer('a')
    const b = peer('b')
    const batch = (s: number): BatchFrame => ({
      t: 'tb',
      s,
      r: Array.from({ length: 500 }, (_, i) => ({ ts: START_MS + s * 1000 + i, m: { v: s } })),
    })
    // 2 x 30 frames of 500 readings: 30,000 readings, three commits of at most 10,000
    for (let s = 1; s <= 30; s++) {
      for (const to of [a, b]) send(to, batch(s))
    }
    holding = false
    ingest.resume()
    await vi.waitFor(() => expect([acked(a).at(-1), acked(b).at(-1)]).toStrictEqual([30, 30]))
    for (const device of ['a', 'b']) {
      expect(committed.filter((frame) => frame.deviceId === device).map((frame) => frame.readings[0]?.m['v'])).toStrictEqual(
        Array.from({ length: 30 }, (_, i) => i + 1),
      )
    }
  })

  it('stamps readings without ts strictly increasing per device, across its sessions, and keeps the stamp in the spool', async () => {
    const first = peer('d1')
    for (let s = 1; s <= 3; s++) send(first, { t: 'tm', s, m: { v: s } })
    const second = peer('d1')
    for (let s = 1; s <= 2; s++) send(second, { t: 'tm', s, m: { v: s } })
    send(peer('d2'), { t: 'tm', s: 1, m: { v: 1 } })
    await vi.waitFor(() => expect(committed).toHaveLength(6))
    expect(committed.map((frame) => [frame.deviceId, frame.readings[0]?.ts])).toStrictEqual([
      ['d1', START_MS],
      ['d1', START_MS + 1],
      ['d1', START_MS + 2],
      ['d1', START_MS + 3],
      ['d1', START_MS + 4],
      ['d2', START_MS],
    ])
    // what the shipper reads back after a restart is the same time
    const stored = [...spool.read(0)].map((entry) => entry.receivedAt)
    expect(stored).toStrictEqual([START_MS, START_MS + 1, START_MS + 2, START_MS + 3, START_MS + 4, START_MS])
    nowMs += 10
    send(peer('d1'), { t: 'tm', s: 1, m: { v: 1 } })
    await vi.waitFor(() => expect(committed).toHaveLength(7))
    expect(committed[6]?.readings[0]?.ts).toBe(START_MS + 10)
  })

  it('forgets stamps far behind the clock once many devices have one', async () => {
    const d1 = peer('d1')
    for (let s = 1; s <= 5; s++) send(d1, { t: 'tm', s, m: { v: s } })
    await vi.waitFor(() => expect(committed).toHaveLength(5))
    // a minute later, over a thousand other devices stamp a reading: the sweep forgets d1's stamp
    nowMs = START_MS + 61_000
    for (let i = 0; i < 1025; i++) send(peer(`other-${i}`), { t: 'tm', s: 1, m: { v: i } })
    await vi.waitFor(() => expect(committed).toHaveLength(1030))
    // with the clock stepped back to the start, d1 is stamped as if new; a remembered device would get last + 1
    nowMs = START_MS
    send(d1, { t: 'tm', s: 6, m: { v: 6 } })
    send(peer('other-1'), { t: 'tm', s: 1, m: { v: 1 } })
    await vi.waitFor(() => expect(committed).toHaveLength(1032))
    expect(committed.slice(-2).map((frame) => [frame.deviceId, frame.readings[0]?.ts])).toStrictEqual([
      ['d1', START_MS],
      ['other-1', START_MS + 61_001],
    ])
  })

  it('draws a token for invalid and stale frames too: a flood of them is closed with 1008', () => {
    const flooder = peer('d1')
    for (let s = 1; s <= 700; s++) ingest.refuseInvalid(flooder, s)
    // the answer stays `invalid`; 200 tokens, then 500 refusals (5 s worth at 100/s) within 5 s are a burst
    expect(counts.naks).toStrictEqual(Array.from({ length: 700 }, () => 'invalid'))
    expect(flooder.closedWith).toBeUndefined()
    ingest.refuseInvalid(flooder, 701)
    expect(flooder.closedWith).toBe(1008)

    const replayer = peer('d2')
    send(replayer, { t: 'tm', s: 5, ts: START_MS, m: { v: 1 } })
    for (let i = 0; i < 700; i++) send(replayer, { t: 'tm', s: 5, ts: START_MS, m: { v: 1 } })
    expect(counts.naks.slice(701)).toStrictEqual(Array.from({ length: 700 }, () => 'seq'))
    expect(replayer.closedWith).toBe(1008)
  })

  it('lets results through within their own budget, apart from telemetry\'s, drops the rest, and closes a flood with 1008', () => {
    const device = peer('d1')
    // telemetry spends its whole burst of 200 tokens (64 frames fill the window, 136 are naked too_many) ...
    for (let s = 1; s <= 200; s++) send(device, { t: 'tm', s, ts: START_MS + s, m: { v: s } })
    expect(counts.naks).toStrictEqual(Array.from({ length: 136 }, () => 'too_many'))
    // ... and results still have theirs
    const admitted = Array.from({ length: 200 }, () => ingest.admitResult(device))
    expect(admitted.every(Boolean)).toBe(true)
    expect(ingest.admitResult(device)).toBe(false)
    expect(counts.droppedResults).toBe(1)
    nowMs += 10
    expect(ingest.admitResult(device)).toBe(true)
    // 5 s worth of refusals (500 at 100/s) within 5 s is a burst; one more is abuse
    for (let i = 0; i < 499; i++) ingest.admitResult(device)
    expect([counts.droppedResults, device.closedWith]).toStrictEqual([500, undefined])
    ingest.admitResult(device)
    expect(device.closedWith).toBe(1008)
    expect(counts.naks).toHaveLength(136)
  })

  it('while egress is busy, frames wait uncommitted; once it frees up they are committed and acked', async () => {
    let busy = true
    ingest = build({ egressBusy: () => busy })
    const device = peer('d1')
    for (let s = 1; s <= 3; s++) send(device, { t: 'tm', s, ts: START_MS + s, m: { v: s } })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect([ingest.pendingFrames, committed.length, acked(device)]).toStrictEqual([3, 0, []])
    busy = false
    await vi.waitFor(() => expect(acked(device)).toStrictEqual([3]))
    expect(ingest.pendingFrames).toBe(0)
  })
})
