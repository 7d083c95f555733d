// Ingest alone: no socket, no hub process. Time is the repository's stepping clock, the group
// commit's "next turn" is run by the test, the peer is a fake that keeps what it was sent, and the
// spool is lmdb in a temp dir whose every call is recorded, so that a test waits for the commit
// itself, never for time.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { TelemetryMessage } from '@fleetgate/bridge'
import type { NakReason, Reading } from '@fleetgate/device-sdk'
import { encodeFrame, type BatchFrame, type HubFrame, type TelemetryFrame } from '@fleetgate/device-sdk/wire'
import { SteppingClock } from '../../test/support/clock.js'
import { tempDir } from '../../test/support/hub.js'
import { IoLog } from '../../test/support/io.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type HubStores, type SpoolStore } from '../src/store/index.js'
import { commitTarget } from '../src/telemetry/commit-target.js'
import { INGEST_DEFAULTS, Ingest, type IngestOptions, type IngestPeer, type IngestState } from '../src/telemetry/ingest.js'

const START_MS = 1_700_000_000_000

/** A session as ingest sees it: what was written to it, and how it was closed. */
class FakePeer implements IngestPeer {
  /** Frames written, in order. */
  readonly sent: HubFrame[] = []
  readonly connectedAt = START_MS
  readonly lastSeenAt = START_MS
  readonly grant = { createdAt: START_MS, revocations: 0 }
  /** While false, every send is refused, as uWS refuses one for back-pressure. */
  accepting = true
  closedWith: number | undefined

  constructor(
    readonly deviceId: string,
    readonly ingest: IngestState,
  ) {}

  isOpen(): boolean {
    return this.closedWith === undefined
  }

  send(frame: HubFrame): boolean {
    if (!this.isOpen() || !this.accepting) return false
    this.sent.push(frame)
    return true
  }

  close(code: number): void {
    this.closedWith ??= code
  }
}

/** A frame as the shipper is handed it after a commit, with its place in the spool. */
interface CommittedFrame {
  readonly deviceId: string
  readonly seq: number
  readonly group: number
  readonly readings: readonly Reading[]
}

const tm = (s: number, v = s): TelemetryFrame => ({ t: 'tm', s, ts: START_MS + s, m: { v } })
const ack = (s: number): HubFrame => ({ t: 'ack', s })
const nak = (s: number, e: NakReason): HubFrame => ({ t: 'nak', s, e })

describe('Ingest', () => {
  let dir: { path: string; cleanup(): void }
  let stores: HubStores
  let io: IoLog
  let spool: SpoolStore
  let clock: SteppingClock
  /** The group commit's next turns, run by `commit()`. */
  let turns: Array<() => void>
  let committed: CommittedFrame[]
  let published: TelemetryMessage[]
  let counts: { accepted: number; readings: number; acks: number; naks: NakReason[]; droppedResults: number }
  let holds: { lag: boolean; egress: boolean }
  let ingest: Ingest

  const build = (options: Partial<IngestOptions> = {}): Ingest =>
    new Ingest({
      target: commitTarget({ spool: { store: spool, maxBytes: 1 << 30 } }),
      log: createLogger('silent'),
      counters: {
        accepted: (frames, readings) => {
          counts.accepted += frames
          counts.readings += readings
        },
        acked: (acks) => (counts.acks += acks),
        naked: (reason) => counts.naks.push(reason),
        resultDropped: () => counts.droppedResults++,
      },
      publish: (message) => published.push(message),
      committed: (frames, firstSeq) =>
        frames.forEach(({ deviceId, readings }, i) => committed.push({ deviceId, seq: firstSeq + i, group: firstSeq + frames.length - 1, readings })),
      ratePerSec: 100,
      shippingLags: () => holds.lag,
      egressBusy: () => holds.egress,
      clock,
      nextTurn: (fn) => turns.push(fn),
      ...options,
    })
  const peer = (deviceId: string): FakePeer => new FakePeer(deviceId, ingest.newState())
  const send = (to: FakePeer, frame: TelemetryFrame | BatchFrame): void => ingest.accept(to, frame, encodeFrame(frame))
  /** Runs the turns the group commit asked for, and waits for the commits they started, until none is left. */
  const commit = async (): Promise<void> => {
    await io.settled()
    while (turns.length > 0) {
      for (const turn of turns.splice(0)) turn()
      await io.settled()
    }
  }
  const spooled = (): Array<[string, number]> => [...spool.read(0)].map((entry) => [entry.deviceId, entry.seq])

  beforeEach(() => {
    dir = tempDir('fleetgate-ingest-')
    stores = openLmdbStores(dir.path)
    io = new IoLog()
    spool = io.wrap(stores.spool)
    clock = new SteppingClock(START_MS)
    turns = []
    committed = []
    published = []
    counts = { accepted: 0, readings: 0, acks: 0, naks: [], droppedResults: 0 }
    holds = { lag: false, egress: false }
    ingest = build()
  })
  afterEach(async () => {
    await ingest.drain()
    await stores.close()
    dir.cleanup()
  })

  describe('group commit and acks', () => {
    it('commits every frame of one turn in one spool transaction and acks each session once, with its highest s', async () => {
      const a = peer('a')
      const b = peer('b')
      for (const s of [1, 2, 3]) send(a, tm(s))
      send(b, { t: 'tb', s: 7, r: [{ ts: START_MS, m: { x: 1 } }, { ts: START_MS + 1, m: { x: 2 }, g: { room: 'r1' } }] })
      send(b, tm(9))
      expect([turns.length, ingest.pendingFrames, spool.entries]).toStrictEqual([1, 5, 0])
      await commit()
      expect(spooled()).toStrictEqual([['a', 1], ['a', 2], ['a', 3], ['b', 4], ['b', 5]])
      expect(committed.map((frame) => [frame.deviceId, frame.seq, frame.readings.length])).toStrictEqual([
        ['a', 1, 1],
        ['a', 2, 1],
        ['a', 3, 1],
        ['b', 4, 2],
        ['b', 5, 1],
      ])
      expect(a.sent).toStrictEqual([ack(3)])
      expect(b.sent).toStrictEqual([ack(9)])
      expect(published).toStrictEqual([
        { device: 'a', seq: 1, readings: [{ ts: START_MS + 1, m: { v: 1 } }] },
        { device: 'a', seq: 2, readings: [{ ts: START_MS + 2, m: { v: 2 } }] },
        { device: 'a', seq: 3, readings: [{ ts: START_MS + 3, m: { v: 3 } }] },
        { device: 'b', seq: 7, readings: [{ ts: START_MS, m: { x: 1 } }, { ts: START_MS + 1, m: { x: 2 }, g: { room: 'r1' } }] },
        { device: 'b', seq: 9, readings: [{ ts: START_MS + 9, m: { v: 9 } }] },
      ])
      expect([counts.accepted, counts.readings, counts.acks, ingest.pendingFrames]).toStrictEqual([5, 6, 2, 0])
      // The next turn is the next transaction, and the next cumulative ack.
      send(a, tm(4))
      await commit()
      expect(a.sent).toStrictEqual([ack(3), ack(4)])
      expect(spool.entries).toBe(6)
    })

    it('commits a session\'s frames in seq order across commits of bounded size', async () => {
      holds.lag = true
      const a = peer('a')
      const b = peer('b')
      const batch = (s: number): BatchFrame => ({ t: 'tb', s, r: Array.from({ length: 500 }, (_, i) => ({ ts: START_MS + s * 1000 + i, m: { v: s } })) })
      // 2 x 30 frames of 500 readings: 30,000 readings, three commits of at most 10,000
      for (let s = 1; s <= 30; s++) {
        for (const to of [a, b]) send(to, batch(s))
      }
      await commit()
      expect(spool.entries).toBe(0)
      holds.lag = false
      ingest.resume()
      await commit()
      // 20 frames of a; the rest of a and 10 of b; the rest of b
      expect([a.sent, b.sent]).toStrictEqual([
        [ack(20), ack(30)],
        [ack(10), ack(30)],
      ])
      for (const device of ['a', 'b']) {
        expect(committed.filter((frame) => frame.deviceId === device).map((frame) => frame.readings[0]?.m['v'])).toStrictEqual(Array.from({ length: 30 }, (_, i) => i + 1))
      }
    })
  })

  describe('naks', () => {
    it('naks a stale s `seq`, a frame that failed validation `invalid` (its s counts as seen), and a frame beyond the window `too_many`', async () => {
      const device = peer('d1')
      send(device, tm(5))
      send(device, tm(5))
      send(device, tm(3))
      ingest.refuseInvalid(device, 8)
      send(device, tm(8))
      send(device, tm(9))
      await commit()
      expect(device.sent).toStrictEqual([nak(5, 'seq'), nak(3, 'seq'), nak(8, 'invalid'), nak(8, 'seq'), ack(9)])
      expect(committed.map((frame) => frame.seq)).toStrictEqual([1, 2])
      expect(counts.naks).toStrictEqual(['seq', 'seq', 'invalid', 'seq'])
    })

    it('keeps at most the window unacked: the frame beyond it is naked `too_many`, and the ack makes room again', async () => {
      const device = peer('d1')
      for (let s = 1; s <= INGEST_DEFAULTS.windowFrames + 1; s++) send(device, tm(s))
      expect(device.sent).toStrictEqual([nak(65, 'too_many')])
      expect(ingest.pendingFrames).toBe(64)
      await commit()
      expect(device.sent).toStrictEqual([nak(65, 'too_many'), ack(64)])
      send(device, tm(66))
      await commit()
      expect(device.sent.at(-1)).toStrictEqual(ack(66))
    })

    it('naks `rate` past the burst of twice the rate, and takes frames again as the bucket refills', async () => {
      ingest = build({ tuning: { windowFrames: 1000 } })
      const device = peer('d1')
      for (let s = 1; s <= 201; s++) send(device, tm(s))
      expect(device.sent).toStrictEqual([nak(201, 'rate')])
      await clock.advance(10)
      send(device, tm(202))
      send(device, tm(203))
      await commit()
      expect(device.sent).toStrictEqual([nak(201, 'rate'), nak(203, 'rate'), ack(202)])
      expect(committed).toHaveLength(201)
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
      send(replayer, tm(5))
      for (let i = 0; i < 700; i++) send(replayer, tm(5))
      expect(counts.naks.slice(701)).toStrictEqual(Array.from({ length: 700 }, () => 'seq'))
      expect(replayer.closedWith).toBe(1008)
    })

    it('closes with 1008 a device whose refusals outnumber what its rate allows over the abuse window, never one that keeps its rate', async () => {
      ingest = build({ tuning: { windowFrames: 100_000 } })
      const abuser = peer('abuser')
      const steady = peer('steady')
      let s = 0
      // 300 frames/s against a rate of 100: the burst lasts 1 s, then 200 refusals/s; more than 500
      // refusals (5 s at the rate) within 5 s is abuse. The steady device sends exactly its rate.
      for (let ms = 0; ms < 10_000 && abuser.closedWith === undefined; ms += 10) {
        s++
        for (let i = 0; i < 3; i++) send(abuser, tm(3 * s + i))
        send(steady, tm(s))
        await clock.advance(10)
      }
      expect(abuser.closedWith).toBe(1008)
      // closed by a frame of the batch sent at 3,490 ms
      expect(clock.nowMs - START_MS).toBe(3500)
      expect(counts.naks).toStrictEqual(Array.from({ length: 501 }, () => 'rate'))
      expect([steady.closedWith, steady.sent]).toStrictEqual([undefined, []])
    })

    it('lets results through within their own budget, apart from telemetry\'s, drops the rest, and closes a flood with 1008', async () => {
      const device = peer('d1')
      // telemetry spends its whole burst of 200 tokens (64 frames fill the window, 136 are naked too_many) ...
      for (let s = 1; s <= 200; s++) send(device, tm(s))
      expect(counts.naks).toStrictEqual(Array.from({ length: 136 }, () => 'too_many'))
      // ... and results still have theirs
      const admitted = Array.from({ length: 200 }, () => ingest.admitResult(device))
      expect(admitted.every(Boolean)).toBe(true)
      expect(ingest.admitResult(device)).toBe(false)
      expect(counts.droppedResults).toBe(1)
      await clock.advance(10)
      expect(ingest.admitResult(device)).toBe(true)
      // 5 s worth of refusals (500 at 100/s) within 5 s is a burst; one more is abuse
      for (let i = 0; i < 499; i++) ingest.admitResult(device)
      expect([counts.droppedResults, device.closedWith]).toStrictEqual([500, undefined])
      ingest.admitResult(device)
      expect(device.closedWith).toBe(1008)
      expect(counts.naks).toHaveLength(136)
    })
  })

  describe('holds and resume', () => {
    it('at the spool quota, frames wait uncommitted (within the window) until a trim frees room and the shipper resumes', async () => {
      ingest = build({ target: commitTarget({ spool: { store: spool, maxBytes: 1 } }) })
      const device = peer('d1')
      send(device, tm(1))
      await commit()
      expect(device.sent).toStrictEqual([ack(1)])
      // the spool now holds more than its quota
      send(device, tm(2))
      send(device, tm(3))
      await commit()
      expect([device.sent, ingest.pendingFrames, spool.entries]).toStrictEqual([[ack(1)], 2, 1])
      await spool.trim(committed.map(({ group }) => ({ group, entries: 1 })))
      ingest.resume()
      await commit()
      expect([device.sent, ingest.pendingFrames, spooled()]).toStrictEqual([[ack(1), ack(3)], 0, [['d1', 2], ['d1', 3]]])
    })

    it('while InfluxDB lags, frames wait uncommitted until the shipper resumes', async () => {
      holds.lag = true
      const device = peer('d1')
      send(device, tm(1))
      await commit()
      expect([device.sent, ingest.pendingFrames, spool.entries]).toStrictEqual([[], 1, 0])
      // a resume while it still lags changes nothing
      ingest.resume()
      await commit()
      expect(spool.entries).toBe(0)
      holds.lag = false
      ingest.resume()
      await commit()
      expect([device.sent, ingest.pendingFrames, spool.entries]).toStrictEqual([[ack(1)], 0, 1])
    })

    it('while egress is busy, frames wait uncommitted and committed ones are neither published nor acked; a timer retries', async () => {
      const device = peer('d1')
      send(device, tm(1))
      // The commit starts, then egress falls behind before its release.
      for (const turn of turns.splice(0)) turn()
      holds.egress = true
      send(device, tm(2))
      await commit()
      expect([spool.entries, published.length, device.sent, ingest.pendingFrames]).toStrictEqual([1, 0, [], 1])
      expect(clock.pending()).toStrictEqual([INGEST_DEFAULTS.egressRetryMs])
      await clock.advance(INGEST_DEFAULTS.egressRetryMs)
      await commit()
      expect([spool.entries, published.length, device.sent]).toStrictEqual([1, 0, []])
      holds.egress = false
      await clock.advance(INGEST_DEFAULTS.egressRetryMs)
      await commit()
      // the held commit is released first, then the waiting frame is committed
      expect([spool.entries, published.map((message) => message.seq), device.sent, ingest.pendingFrames]).toStrictEqual([2, [1, 2], [ack(1), ack(2)], 0])
      expect(clock.pending()).toStrictEqual([])
    })
  })

  describe('sessions that end', () => {
    it('drops the uncommitted frames of a session that ended: what waits stays within one window per live session', async () => {
      holds.lag = true
      let live = peer('d1')
      for (let round = 0; round < 5; round++) {
        for (let s = 1; s <= 64; s++) send(live, tm(s, round * 100 + s))
        send(live, tm(65))
        expect(live.sent.at(-1)).toStrictEqual(nak(65, 'too_many'))
        expect(ingest.pendingFrames).toBe(64)
        // the device reconnects: the old session closes, a new one resends its window
        live.closedWith = 4001
        ingest.closed(live)
        expect(ingest.pendingFrames).toBe(0)
        live = peer('d1')
      }
      const other = peer('d2')
      send(other, tm(1, 1))
      send(live, tm(1, 2))
      holds.lag = false
      ingest.resume()
      await commit()
      expect([other.sent, live.sent]).toStrictEqual([[ack(1)], [ack(1)]])
      expect(committed.map((frame) => [frame.deviceId, frame.readings[0]?.m['v']])).toStrictEqual([
        ['d2', 1],
        ['d1', 2],
      ])
    })

    it('does not ack a session that closed while its frames were committing; they are stored and published all the same', async () => {
      const device = peer('d1')
      send(device, tm(1))
      for (const turn of turns.splice(0)) turn()
      device.closedWith = 1006
      ingest.closed(device)
      await commit()
      expect([device.sent, spool.entries, published.length, counts.acks]).toStrictEqual([[], 1, 1, 0])
    })

    it('closes the sessions of a commit that fails with 1011, acking nothing', async () => {
      const failing: SpoolStore = new Proxy(spool, {
        get: (target, key) => (key === 'append' ? () => Promise.reject(new Error('disk full')) : Reflect.get(target, key, target)),
      })
      ingest = build({ target: commitTarget({ spool: { store: failing, maxBytes: 1 << 30 } }) })
      const a = peer('a')
      const b = peer('b')
      send(a, tm(1))
      send(b, tm(1))
      for (const turn of turns.splice(0)) turn()
      await ingest.drain()
      expect([a.closedWith, b.closedWith, a.sent, b.sent]).toStrictEqual([1011, 1011, [], []])
    })

    it('commits everything accepted at shutdown, quota or not, and acks it', async () => {
      holds.lag = true
      const device = peer('d1')
      for (let s = 1; s <= 3; s++) send(device, tm(s))
      await commit()
      expect(spool.entries).toBe(0)
      await ingest.drain()
      await io.settled()
      expect([spool.entries, device.sent, ingest.pendingFrames]).toStrictEqual([3, [ack(3)], 0])
    })
  })

  describe('a socket that refuses frames (back-pressure)', () => {
    it('keeps an ack the socket refused and writes it on drain: no later frame is needed to carry it', async () => {
      const device = peer('d1')
      device.accepting = false
      for (let s = 1; s <= 64; s++) send(device, tm(s))
      await commit()
      expect([device.sent, device.ingest.owed]).toStrictEqual([[], [ack(64)]])
      // still full: nothing is lost, nothing is written
      ingest.drained(device)
      expect(device.sent).toStrictEqual([])
      device.accepting = true
      ingest.drained(device)
      expect([device.sent, device.ingest.owed]).toStrictEqual([[ack(64)], []])
      expect(counts.acks).toBe(1)
    })

    it('keeps acks and naks in the order made, one ack for consecutive ones, and writes a nak before an ack that covers later frames', async () => {
      ingest = build({ tuning: { windowFrames: 1000 } })
      const device = peer('d1')
      device.accepting = false
      send(device, tm(1))
      send(device, tm(1))
      await commit()
      send(device, tm(2))
      await commit()
      send(device, tm(3))
      await commit()
      ingest.refuseInvalid(device, 4)
      send(device, tm(5))
      await commit()
      // Answers wait while some are owed, even once the socket would take them: order is kept.
      device.accepting = true
      send(device, tm(5))
      expect(device.sent).toStrictEqual([])
      expect(device.ingest.owed).toStrictEqual([nak(1, 'seq'), ack(3), nak(4, 'invalid'), ack(5), nak(5, 'seq')])
      ingest.drained(device)
      expect(device.sent).toStrictEqual([nak(1, 'seq'), ack(3), nak(4, 'invalid'), ack(5), nak(5, 'seq')])
      send(device, tm(6))
      await commit()
      expect(device.sent.at(-1)).toStrictEqual(ack(6))
    })

    it('closes with 1008 a session that owes more naks than its window: it sends beyond its window and does not read', () => {
      const device = peer('d1')
      device.accepting = false
      for (let s = 1; s <= 64; s++) ingest.refuseInvalid(device, s)
      expect([device.ingest.owed.length, device.closedWith]).toStrictEqual([64, undefined])
      ingest.refuseInvalid(device, 65)
      expect(device.closedWith).toBe(1008)
    })
  })

  describe('readings without ts', () => {
    it('stamps them strictly increasing per device, across its sessions, and keeps the stamp in the spool', async () => {
      const first = peer('d1')
      for (let s = 1; s <= 3; s++) send(first, { t: 'tm', s, m: { v: s } })
      const second = peer('d1')
      for (let s = 1; s <= 2; s++) send(second, { t: 'tm', s, m: { v: s } })
      send(peer('d2'), { t: 'tm', s: 1, m: { v: 1 } })
      await commit()
      expect(committed.map((frame) => [frame.deviceId, frame.readings[0]?.ts])).toStrictEqual([
        ['d1', START_MS],
        ['d1', START_MS + 1],
        ['d1', START_MS + 2],
        ['d1', START_MS + 3],
        ['d1', START_MS + 4],
        ['d2', START_MS],
      ])
      // what the shipper reads back after a restart is the same time
      expect([...spool.read(0)].map((entry) => entry.receivedAt)).toStrictEqual([START_MS, START_MS + 1, START_MS + 2, START_MS + 3, START_MS + 4, START_MS])
      await clock.advance(10)
      send(peer('d1'), { t: 'tm', s: 1, m: { v: 1 } })
      await commit()
      expect(committed[6]?.readings[0]?.ts).toBe(START_MS + 10)
    })

    it('forgets stamps far behind the clock once many devices have one', async () => {
      const d1 = peer('d1')
      for (let s = 1; s <= 5; s++) send(d1, { t: 'tm', s, m: { v: s } })
      await commit()
      // a minute later, over a thousand other devices stamp a reading: the sweep forgets d1's stamp
      clock.nowMs = START_MS + 61_000
      for (let i = 0; i < 1025; i++) send(peer(`other-${i}`), { t: 'tm', s: 1, m: { v: i } })
      await commit()
      // with the clock stepped back to the start, d1 is stamped as if new; a remembered device would get last + 1
      clock.nowMs = START_MS
      send(d1, { t: 'tm', s: 6, m: { v: 6 } })
      send(peer('other-1'), { t: 'tm', s: 1, m: { v: 1 } })
      await commit()
      expect(committed.slice(-2).map((frame) => [frame.deviceId, frame.readings[0]?.ts])).toStrictEqual([
        ['d1', START_MS],
        ['other-1', START_MS + 61_001],
      ])
    })
  })
})
