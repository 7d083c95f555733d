// TelemetryQueue without a socket: a `transmit` that decodes what would go on the wire, a clock the
// test drives, and the hub's side played by calling open/ack/nak/lost by hand (docs/protocol.md).
import { describe, expect, it } from 'vitest'
import {
  MemoryQueueStore,
  SdkError,
  type HubLimits,
  type QueueStore,
  type Reading,
  type StoredQueue,
  type StoredReading,
} from '../src/index.js'
import { decodeDeviceFrame, encodeFrame, type BatchFrame, type TelemetryFrame } from '../src/wire.js'
import { encodedReadingBytes } from '../src/protocol.js'
import { batchFrameBytes } from '../src/frame-packer.js'
import { TelemetryQueue, type TelemetryQueueOptions } from '../src/telemetry-queue.js'
import { loadQueueStore } from '../src/queue-store.js'
import { track } from '../../test/support/outcome.js'
import { SteppingClock, settle } from '../../test/support/clock.js'

const LIMITS: HubLimits = Object.freeze({ frame: 65_536, batch: 500, rate: 100, window: 64 })
const T0 = 1_700_000_000_000

type Telemetry = TelemetryFrame | BatchFrame

function harness(options: Partial<TelemetryQueueOptions> = {}) {
  const clock = new SteppingClock(T0)
  const store = new MemoryQueueStore()
  const wire: Telemetry[] = []
  const bytesOnWire: Uint8Array[] = []
  const errors: SdkError[] = []
  const link = { online: true }
  const queue = new TelemetryQueue({
    clock,
    store,
    batchMaxReadings: undefined,
    lingerMs: 0,
    maxQueuedReadings: 10_000,
    overflow: 'drop-oldest',
    pacing: true,
    transmit: (bytes) => {
      if (!link.online) return false
      const decoded = decodeDeviceFrame(bytes)
      if (!decoded.ok || (decoded.frame.t !== 'tm' && decoded.frame.t !== 'tb')) throw new Error(`not telemetry: ${JSON.stringify(decoded)}`)
      wire.push(decoded.frame)
      bytesOnWire.push(bytes)
      return true
    },
    onError: (error) => errors.push(error),
    ...options,
    loaded: loadQueueStore(options.store ?? store),
  })
  return { queue, clock, store, wire, bytesOnWire, errors, link }
}

const seqs = (frames: readonly Telemetry[]): number[] => frames.map((frame) => frame.s)
const counts = (frames: readonly Telemetry[]): number[] => frames.map((frame) => (frame.t === 'tm' ? 1 : frame.r.length))
const values = (frames: readonly Telemetry[], key = 'n'): unknown[] =>
  frames.flatMap((frame) => (frame.t === 'tm' ? [frame.m[key]] : frame.r.map((reading) => reading.m[key])))
const readingsOf = (n: number, from = 0): Array<{ metrics: { n: number } }> => Array.from({ length: n }, (_, i) => ({ metrics: { n: from + i } }))

describe('TelemetryQueue: frames', () => {
  it('sends one reading as tm with its ts, and readings of one tick as one tb', async () => {
    const { queue, wire } = harness()
    queue.open(LIMITS)
    const one = track(queue.add([{ metrics: { temp: 21.5 }, tags: { room: 'a' } }], false))
    await settle()
    expect(wire).toStrictEqual([{ t: 'tm', s: 1, ts: T0, m: { temp: 21.5 }, g: { room: 'a' } }])
    const a = track(queue.add([{ metrics: { n: 1 } }], false))
    const b = track(queue.add([{ metrics: { n: 2 }, ts: 5 }], false))
    const c = track(queue.add([{ metrics: { n: 3 }, ts: new Date(7) }], false))
    await settle()
    expect(wire[1]).toStrictEqual({ t: 'tb', s: 2, r: [{ ts: T0 + 1, m: { n: 1 } }, { ts: 5, m: { n: 2 } }, { ts: 7, m: { n: 3 } }] })
    expect([queue.queued, queue.inflight, queue.inflightFrames]).toStrictEqual([0, 4, 2])
    queue.ack(1)
    await settle()
    expect([one.state, a.state]).toStrictEqual(['resolved', 'pending'])
    queue.ack(2)
    await settle()
    expect([a.state, b.state, c.state]).toStrictEqual(['resolved', 'resolved', 'resolved'])
    expect([queue.queued, queue.inflight]).toStrictEqual([0, 0])
  })

  it('stamps readings without ts with strictly increasing device time', async () => {
    const { queue, wire, clock } = harness()
    queue.open(LIMITS)
    void queue.add(readingsOf(3), true)
    await settle()
    await clock.advance(10)
    void queue.add(readingsOf(1), false)
    await settle()
    expect(wire.flatMap((frame) => (frame.t === 'tb' ? frame.r.map((r) => r.ts) : [frame.ts]))).toStrictEqual([T0, T0 + 1, T0 + 2, T0 + 10])
  })

  it('cuts batches at lim.batch and at batchMaxReadings', async () => {
    const big = harness()
    big.queue.open(LIMITS)
    void big.queue.add(readingsOf(1201), true)
    await settle()
    expect(counts(big.wire)).toStrictEqual([500, 500, 201])
    expect(seqs(big.wire)).toStrictEqual([1, 2, 3])
    expect(values(big.wire)).toStrictEqual(Array.from({ length: 1201 }, (_, i) => i))

    const small = harness({ batchMaxReadings: 100 })
    small.queue.open({ ...LIMITS, batch: 300 })
    void small.queue.add(readingsOf(250), true)
    await settle()
    expect(counts(small.wire)).toStrictEqual([100, 100, 50])

    const hubSmaller = harness({ batchMaxReadings: 400 })
    hubSmaller.queue.open({ ...LIMITS, batch: 30 })
    void hubSmaller.queue.add(readingsOf(70), true)
    await settle()
    expect(counts(hubSmaller.wire)).toStrictEqual([30, 30, 10])
  })

  it('keeps every frame within lim.frame bytes, and refuses a reading that fits in none', async () => {
    const { queue, wire, bytesOnWire, store } = harness()
    const limits = { ...LIMITS, frame: 400 }
    queue.open(limits)
    const text = 'x'.repeat(40)
    const batch = track(queue.add(Array.from({ length: 50 }, (_, i) => ({ metrics: { n: i, text } })), true))
    const huge = track(queue.add([{ metrics: { text: 'y'.repeat(256), more: 'z'.repeat(256) } }], false))
    const after = track(queue.add([{ metrics: { n: 50 } }], false))
    await settle()
    expect(bytesOnWire.every((bytes) => bytes.length <= 400)).toBe(true)
    // the greedy packer fills each frame: one more reading would not have fit
    const sizes = wire.map((frame) => encodeFrame(frame).length)
    expect(sizes).toStrictEqual(bytesOnWire.map((bytes) => bytes.length))
    expect(Math.max(...sizes)).toBeGreaterThan(400 - 60)
    expect(values(wire)).toStrictEqual([...Array.from({ length: 50 }, (_, i) => i), 50])
    expect(huge).toMatchObject({ state: 'rejected', error: { code: 'SDK_ERR_INVALID_READING' } })
    expect(huge.error?.message).toMatch(/more than the hub's frame limit of 400/)
    for (const frame of wire) queue.ack(frame.s)
    await settle()
    expect([batch.state, after.state]).toStrictEqual(['resolved', 'resolved'])
    expect(store.size).toBe(0)
  })

  it('computes tb sizes exactly as cbor-x encodes them', () => {
    const reading = (i: number): Reading => ({ ts: T0 + i, m: { n: i, label: `r${i}` } })
    for (const s of [0, 1, 23, 24, 255, 256, 65_535, 65_536, 4_294_967_295, 4_294_967_296, Number.MAX_SAFE_INTEGER]) {
      for (const count of [1, 2, 23, 24, 255, 256, 500]) {
        const r = Array.from({ length: count }, (_, i) => reading(i))
        const body = r.reduce((sum, one) => sum + encodedReadingBytes(one), 0)
        expect([s, count, batchFrameBytes(s, count, body)]).toStrictEqual([s, count, encodeFrame({ t: 'tb', s, r }).length])
      }
    }
  })
})

describe('TelemetryQueue: window and pacing', () => {
  it('keeps at most lim.window frames unacked and sends more as acks come', async () => {
    const { queue, wire } = harness({ batchMaxReadings: 1, pacing: false })
    queue.open({ ...LIMITS, window: 4 })
    const outcomes = readingsOf(10).map((reading) => track(queue.add([reading], false)))
    await settle()
    expect(seqs(wire)).toStrictEqual([1, 2, 3, 4])
    expect([queue.queued, queue.inflight, queue.inflightFrames]).toStrictEqual([6, 4, 4])
    queue.ack(2)
    await settle()
    expect(seqs(wire)).toStrictEqual([1, 2, 3, 4, 5, 6])
    expect(outcomes.map((o) => o.state)).toStrictEqual(['resolved', 'resolved', ...Array<string>(8).fill('pending')])
    // an ack below what is in flight changes nothing; one beyond covers only frames sent
    queue.ack(1)
    queue.ack(100)
    await settle()
    expect(seqs(wire)).toStrictEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    queue.ack(10)
    await settle()
    expect(outcomes.every((o) => o.state === 'resolved')).toBe(true)
    expect(queue.inflightFrames).toBe(0)
  })

  it('paces frames to lim.rate with a burst of 1.5x, on the injected clock', async () => {
    const { queue, wire, clock } = harness({ batchMaxReadings: 1 })
    queue.open({ ...LIMITS, rate: 10 })
    for (let i = 0; i < 40; i++) void queue.add([{ metrics: { n: i } }], false)
    await settle()
    // 2 x 10 frames/s at the hub, 0.5 s of it held in reserve for jitter
    expect(wire).toHaveLength(15)
    expect(clock.pending()).toStrictEqual([100])
    await clock.advance(99)
    expect(wire).toHaveLength(15)
    await clock.advance(1)
    expect(wire).toHaveLength(16)
    await clock.advance(1000)
    expect(wire).toHaveLength(26)
    // acks free the window but not the rate
    for (const frame of wire) queue.ack(frame.s)
    await settle()
    expect(wire).toHaveLength(26)
    await clock.advance(1400)
    expect(wire).toHaveLength(40)
    expect(seqs(wire)).toStrictEqual(Array.from({ length: 40 }, (_, i) => i + 1))
  })

  it('lets readings that pile up behind the rate share frames', async () => {
    const { queue, wire, clock } = harness()
    queue.open({ ...LIMITS, rate: 1 })
    void queue.add(readingsOf(1), false)
    await settle()
    expect(wire).toHaveLength(1)
    // 1 frame/s, burst 1.5: the bucket has 0.5 left, so the next frame waits 500 ms
    for (let i = 1; i <= 30; i++) void queue.add(readingsOf(1, i), false)
    await settle()
    expect(wire).toHaveLength(1)
    await clock.advance(500)
    expect(counts(wire)).toStrictEqual([1, 30])
  })

  it('leaves the next token to a twin report waiting on the same pace', async () => {
    const waiting = { report: false }
    const { queue, wire, clock } = harness({ batchMaxReadings: 1, yieldTo: () => waiting.report })
    queue.open({ ...LIMITS, rate: 10 })
    for (let i = 0; i < 40; i++) void queue.add([{ metrics: { n: i } }], false)
    await settle()
    expect(wire).toHaveLength(15)
    // a report waits: the next frame waits for two tokens, one of them left for the report
    waiting.report = true
    await clock.advance(100)
    expect(wire).toHaveLength(15)
    await clock.advance(100)
    expect(wire).toHaveLength(16)
    expect(queue.pace?.tokens(clock.now())).toBeGreaterThanOrEqual(1)
  })

  it('does not pace with pacing: false', async () => {
    const { queue, wire } = harness({ batchMaxReadings: 1, pacing: false })
    queue.open({ ...LIMITS, rate: 1 })
    for (let i = 0; i < 20; i++) void queue.add([{ metrics: { n: i } }], false)
    await settle()
    expect(wire).toHaveLength(20)
  })

  it('lingers up to lingerMs for more readings, unless a batch is full or flush() is called', async () => {
    const { queue, wire, clock } = harness({ lingerMs: 50, batchMaxReadings: 10 })
    queue.open(LIMITS)
    void queue.add(readingsOf(1), false)
    await clock.advance(30)
    void queue.add(readingsOf(2, 1), true)
    await clock.advance(19)
    expect(wire).toHaveLength(0)
    await clock.advance(1)
    expect(counts(wire)).toStrictEqual([3])
    void queue.add(readingsOf(12, 3), true)
    await settle()
    expect(counts(wire)).toStrictEqual([3, 10])
    // the 2 left over linger again
    await clock.advance(49)
    expect(counts(wire)).toStrictEqual([3, 10])
    const flushed = track(queue.flush())
    await settle()
    expect(counts(wire)).toStrictEqual([3, 10, 2])
    expect(clock.pending()).toStrictEqual([])
    for (const frame of wire) queue.ack(frame.s)
    await settle()
    expect(flushed.state).toBe('resolved')
  })
})

describe('TelemetryQueue: naks, flush and close', () => {
  it('rejects the readings of a naked frame with SDK_ERR_NAK and its reason, and carries on', async () => {
    const { queue, wire, store } = harness({ batchMaxReadings: 2, pacing: false })
    queue.open(LIMITS)
    const batch = track(queue.add(readingsOf(4), true))
    const single = track(queue.add(readingsOf(1, 4), false))
    await settle()
    expect(counts(wire)).toStrictEqual([2, 2, 1])
    expect(queue.nak(2, 'rate')).toBe(true)
    expect(queue.nak(2, 'rate')).toBe(false)
    expect(queue.nak(99, 'seq')).toBe(false)
    await settle()
    expect(batch.state).toBe('rejected')
    expect(batch.error).toBeInstanceOf(SdkError)
    expect(batch.error).toMatchObject({ code: 'SDK_ERR_NAK', reason: 'rate', message: 'the hub refused frame 2 (rate); its readings are not stored' })
    expect([queue.inflight, queue.inflightFrames, store.size]).toStrictEqual([3, 2, 3])
    queue.ack(3)
    await settle()
    expect(single.state).toBe('resolved')
    expect(store.size).toBe(0)
  })

  it('flush() waits for acks and naks of everything added before it, not after', async () => {
    const { queue, wire } = harness({ batchMaxReadings: 1, pacing: false })
    expect(track(queue.flush()).state).toBe('pending')
    await settle()
    const empty = track(queue.flush())
    await settle()
    expect(empty.state).toBe('resolved')
    void queue.add(readingsOf(3), true).catch(() => {})
    const flushed = track(queue.flush())
    void queue.add(readingsOf(1, 3), false)
    await settle()
    expect(flushed.state).toBe('pending')
    queue.open(LIMITS)
    await settle()
    expect(seqs(wire)).toStrictEqual([1, 2, 3, 4])
    queue.ack(1)
    queue.nak(3, 'invalid')
    await settle()
    expect(flushed.state).toBe('pending')
    queue.ack(2)
    await settle()
    expect(flushed.state).toBe('resolved')
  })

  it('close() rejects what is unsettled with the error given and keeps the store', async () => {
    const { queue, store } = harness({ batchMaxReadings: 1 })
    queue.open(LIMITS)
    const sent = track(queue.add(readingsOf(1), false))
    await settle()
    queue.lost()
    const queued = track(queue.add(readingsOf(1, 1), false))
    const flushed = track(queue.flush())
    queue.close(new SdkError('SDK_ERR_CLOSED', 'closed'))
    await settle()
    for (const outcome of [sent, queued, flushed]) expect(outcome).toMatchObject({ state: 'rejected', error: { code: 'SDK_ERR_CLOSED' } })
    expect(store.size).toBe(2)
    await expect(queue.add(readingsOf(1), false)).rejects.toMatchObject({ code: 'SDK_ERR_CLOSED' })
    await expect(queue.flush()).rejects.toMatchObject({ code: 'SDK_ERR_CLOSED' })
  })
})

describe('TelemetryQueue: validation and overflow', () => {
  it.each([
    ['no metrics', { metrics: {} }, 'metrics: 0 metrics, expected 1 to 64'],
    ['65 metrics', { metrics: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, i])) }, 'metrics: 65 metrics, expected 1 to 64'],
    ['NaN', { metrics: { bad: Number.NaN } }, 'metrics.bad: not a finite number (NaN)'],
    ['a bad key', { metrics: { '1x': 1 } }, 'metrics: bad key "1x", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$'],
    ['257 bytes of text', { metrics: { t: 'x'.repeat(257) } }, 'metrics.t: text of 257 bytes, at most 256'],
    ['null', { metrics: { a: null } }, 'metrics.a: expected a finite number, a bool or text, got null'],
    ['tag device', { metrics: { a: 1 }, tags: { device: 'x' } }, 'tags: reserved key "device" (the hub sets it)'],
    ['an empty tag', { metrics: { a: 1 }, tags: { room: '' } }, 'tags.room: empty text, expected 1 to 128 bytes'],
    ['17 tags', { metrics: { a: 1 }, tags: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`g${i}`, 'v'])) }, 'tags: 17 tags, at most 16'],
    ['ts -1', { metrics: { a: 1 }, ts: -1 }, 'ts: expected Unix ms (a whole number from 0 to 9223372036854) or a valid Date'],
    ['an invalid Date', { metrics: { a: 1 }, ts: new Date(Number.NaN) }, 'ts: expected Unix ms (a whole number from 0 to 9223372036854) or a valid Date'],
    ['ts 1.5', { metrics: { a: 1 }, ts: 1.5 }, 'ts: expected Unix ms (a whole number from 0 to 9223372036854) or a valid Date'],
    ['ts beyond what InfluxDB stores', { metrics: { a: 1 }, ts: 9_223_372_036_855 }, 'ts: expected Unix ms (a whole number from 0 to 9223372036854) or a valid Date'],
    ['an unknown field', { metrics: { a: 1 }, extra: 1 }, 'extra: unknown field, expected metrics, ts or tags'],
    ['metrics as an array', { metrics: [1] }, 'metrics: expected an object of 1 to 64 metrics'],
    ['null as a reading', null, 'expected { metrics, ts?, tags? }'],
  ])('refuses %s locally with SDK_ERR_INVALID_READING', async (_label, input, message) => {
    const { queue, wire, store } = harness()
    queue.open(LIMITS)
    await expect(queue.add([input], false)).rejects.toMatchObject({ code: 'SDK_ERR_INVALID_READING', message })
    await settle()
    expect([wire.length, queue.queued, store.size]).toStrictEqual([0, 0, 0])
  })

  it('refuses a whole batch with one bad reading, naming its index', async () => {
    const { queue, wire } = harness()
    queue.open(LIMITS)
    await expect(queue.add([...readingsOf(2), { metrics: { n: Number.POSITIVE_INFINITY } }, ...readingsOf(2)], true)).rejects.toMatchObject({
      code: 'SDK_ERR_INVALID_READING',
      message: 'readings[2].metrics.n: not a finite number (Infinity)',
    })
    await settle()
    expect(wire).toHaveLength(0)
  })

  it("drop-oldest: the oldest queued readings make room and reject with SDK_ERR_DROPPED, counted", async () => {
    const { queue, wire, store } = harness({ maxQueuedReadings: 5 })
    const outcomes = readingsOf(8).map((reading) => track(queue.add([reading], false)))
    await settle()
    expect(outcomes.map((o) => o.state)).toStrictEqual(['rejected', 'rejected', 'rejected', ...Array<string>(5).fill('pending')])
    expect(outcomes[0]?.error).toMatchObject({ code: 'SDK_ERR_DROPPED' })
    expect([queue.dropped, queue.queued, store.size]).toStrictEqual([3, 5, 5])
    // a batch drops what it must, and a batch larger than the queue is refused whole
    const batch = track(queue.add(readingsOf(4, 8), true))
    await expect(queue.add(readingsOf(6, 20), true)).rejects.toMatchObject({ code: 'SDK_ERR_QUEUE_FULL' })
    await settle()
    expect([queue.dropped, queue.queued, store.size]).toStrictEqual([7, 5, 5])
    expect(outcomes.map((o) => o.state)).toStrictEqual([...Array<string>(7).fill('rejected'), 'pending'])
    queue.open(LIMITS)
    await settle()
    expect(values(wire)).toStrictEqual([7, 8, 9, 10, 11])
    queue.ack(1)
    await settle()
    expect([outcomes[7]?.state, batch.state]).toStrictEqual(['resolved', 'resolved'])
  })

  it('reject: send rejects with SDK_ERR_QUEUE_FULL once the queue is full, and nothing is dropped', async () => {
    const { queue, wire } = harness({ maxQueuedReadings: 5, overflow: 'reject' })
    const outcomes = readingsOf(7).map((reading) => track(queue.add([reading], false)))
    await expect(queue.add(readingsOf(1), true)).rejects.toMatchObject({
      code: 'SDK_ERR_QUEUE_FULL',
      message: 'the queue holds 5 of 5 readings; 1 more do not fit',
    })
    await settle()
    expect(outcomes.map((o) => o.state)).toStrictEqual([...Array<string>(5).fill('pending'), 'rejected', 'rejected'])
    expect(outcomes[5]?.error).toMatchObject({ code: 'SDK_ERR_QUEUE_FULL' })
    expect([queue.dropped, queue.queued]).toStrictEqual([0, 5])
    queue.open(LIMITS)
    await settle()
    expect(values(wire)).toStrictEqual([0, 1, 2, 3, 4])
    // frames in flight do not count against the queue
    expect(track(queue.add(readingsOf(5), true)).state).toBe('pending')
    await settle()
    expect([queue.queued, queue.inflight, wire.length]).toStrictEqual([0, 10, 2])
  })
})

describe('TelemetryQueue: reconnects and stores', () => {
  it('resends unacked frames after a reconnect with their original s and ts, in order, before new frames', async () => {
    const { queue, wire, bytesOnWire, clock, link } = harness({ batchMaxReadings: 2 })
    queue.open(LIMITS)
    const first = readingsOf(9).map((reading) => track(queue.add([reading], false)))
    await settle()
    expect(seqs(wire)).toStrictEqual([1, 2, 3, 4, 5])
    queue.ack(2)
    queue.lost()
    link.online = false
    await clock.advance(5000)
    const later = track(queue.add(readingsOf(3, 9), true))
    await settle()
    expect([queue.queued, queue.inflight]).toStrictEqual([3, 5])
    link.online = true
    queue.open(LIMITS)
    await settle()
    const resent = wire.slice(5)
    expect(resent.slice(0, 3)).toStrictEqual(wire.slice(2, 5))
    expect(bytesOnWire.slice(5, 8)).toStrictEqual(bytesOnWire.slice(2, 5))
    expect(seqs(resent)).toStrictEqual([3, 4, 5, 6, 7])
    expect(values(resent)).toStrictEqual([4, 5, 6, 7, 8, 9, 10, 11])
    // the new readings carry the time they were sent at, not the time of the resend
    expect(resent.slice(3)).toStrictEqual([
      { t: 'tb', s: 6, r: [{ ts: T0 + 5000, m: { n: 9 } }, { ts: T0 + 5001, m: { n: 10 } }] },
      { t: 'tm', s: 7, ts: T0 + 5002, m: { n: 11 } },
    ])
    queue.ack(7)
    await settle()
    expect([...first, later].every((o) => o.state === 'resolved')).toBe(true)
  })

  it('a frame sent while the socket was already gone goes again on the next session', async () => {
    const { queue, wire, link } = harness()
    queue.open(LIMITS)
    link.online = false
    const outcome = track(queue.add(readingsOf(1), false))
    await settle()
    expect(wire).toHaveLength(0)
    expect([queue.queued, queue.inflight]).toStrictEqual([0, 1])
    queue.lost()
    link.online = true
    queue.open(LIMITS)
    queue.ack(1)
    await settle()
    expect(seqs(wire)).toStrictEqual([1])
    expect(outcome.state).toBe('resolved')
  })

  it('packs unacked frames again under new seqs when the new hub has smaller limits', async () => {
    const { queue, wire } = harness()
    queue.open(LIMITS)
    void queue.add(readingsOf(10), true)
    void queue.add(readingsOf(1, 10), false)
    await settle()
    expect(counts(wire)).toStrictEqual([11])
    queue.lost()
    queue.open({ ...LIMITS, batch: 4 })
    await settle()
    expect(counts(wire.slice(1))).toStrictEqual([4, 4, 3])
    expect(seqs(wire.slice(1))).toStrictEqual([2, 3, 4])
    expect(values(wire.slice(1))).toStrictEqual(Array.from({ length: 11 }, (_, i) => i))
  })

  it('saves seqs to the store in blocks, and starts from the store: old readings first, new seqs', async () => {
    const saved: number[] = []
    const store = new MemoryQueueStore()
    const spy: QueueStore = {
      load: (): StoredQueue => store.load(),
      append: (readings: readonly StoredReading[]) => store.append(readings),
      remove: (ids: readonly number[]) => store.remove(ids),
      saveNextSeq: (seq: number) => {
        saved.push(seq)
        store.saveNextSeq(seq)
      },
      close: () => {},
    }
    const one = harness({ store: spy, batchMaxReadings: 1, pacing: false })
    one.queue.open({ ...LIMITS, window: 2000 })
    for (let i = 0; i < 1030; i++) void one.queue.add([{ metrics: { n: i } }], false).catch(() => {})
    await settle()
    expect(one.wire).toHaveLength(1030)
    expect(saved).toStrictEqual([1025, 2049])
    one.queue.ack(1000)
    await settle()
    expect(store.size).toBe(30)
    // a process restart: the same store, a new queue
    const two = harness({ store: spy, batchMaxReadings: 500 })
    expect(two.queue.queued).toBe(30)
    void two.queue.add(readingsOf(1, 5000), false)
    two.queue.open(LIMITS)
    await settle()
    expect(seqs(two.wire)).toStrictEqual([2049])
    expect(values(two.wire)).toStrictEqual([...Array.from({ length: 30 }, (_, i) => 1000 + i), 5000])
    const flushed = track(two.queue.flush())
    two.queue.ack(2049)
    await settle()
    expect(flushed.state).toBe('resolved')
    expect(store.size).toBe(0)
  })

  it('refuses a store that holds what is not a reading', () => {
    const store = new MemoryQueueStore()
    store.append([{ id: 1, ts: T0, m: { bad: Number.NaN } }])
    expect(() => harness({ store })).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE' }))
  })

  it('rejects a send whose store write fails, and reports a failed removal as an error', async () => {
    const store = new MemoryQueueStore()
    let fail = false
    const flaky: QueueStore = {
      load: () => store.load(),
      append: (readings) => {
        if (fail) throw new Error('disk full')
        store.append(readings)
      },
      remove: (ids) => {
        if (fail) throw new Error('disk gone')
        store.remove(ids)
      },
      saveNextSeq: (seq) => store.saveNextSeq(seq),
      close: () => {},
    }
    const { queue, errors } = harness({ store: flaky })
    queue.open(LIMITS)
    const ok = track(queue.add(readingsOf(1), false))
    await settle()
    fail = true
    await expect(queue.add(readingsOf(1), false)).rejects.toMatchObject({ code: 'SDK_ERR_STORE', cause: { message: 'disk full' } })
    queue.ack(1)
    await settle()
    expect(ok.state).toBe('resolved')
    expect(errors).toMatchObject([{ code: 'SDK_ERR_STORE', cause: { message: 'disk gone' } }])
  })
})
