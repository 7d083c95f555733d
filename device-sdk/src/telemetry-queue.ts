// The telemetry side of a DeviceClient, without a socket: readings wait in a bounded queue, are
// packed into `tm`/`tb` frames within the hub's limits, sent within the ack window and paced to
// the hub's rate, and settle on `ack`/`nak` (docs/protocol.md). The client feeds it session events
// (open with the hello's limits, lost, ack, nak) and gives it a function that sends bytes.
//
// Invariants: #frames holds the frames sent and not yet acked or naked, in seq order; the first
// #sent of them went out on the current session, the rest wait to be resent. Every reading in a
// frame is older (smaller id) than every reading in #pending, and ids increase along both, so the
// oldest unsettled reading is the first of the first frame, else the head of #pending.
import { abortable } from './abort.js'
import { Deque } from './deque.js'
import { SdkError } from './errors.js'
import { packFrame, type Packable } from './frame-packer.js'
import { nextStamp, type HubLimits, type NakReason, type Reading } from './frames.js'
import type { Clock, OverflowPolicy } from './options.js'
import { storeError, type LoadedQueue, type QueueStore } from './queue-store.js'
import { toReading } from './reading.js'
import { hubPacer, type TokenBucket } from './token-bucket.js'

/** How a TelemetryQueue is built; DeviceClient passes its resolved options. */
export interface TelemetryQueueOptions {
  readonly clock: Clock
  readonly store: QueueStore
  /** What the store held when the client started (loadQueueStore): readings to send first, the next seq. */
  readonly loaded: Pick<LoadedQueue, 'readings' | 'nextSeq'>
  /** Most readings per frame; undefined: the hub's `lim.batch`. */
  readonly batchMaxReadings: number | undefined
  /** How long a first queued reading waits for others to share its frame, in ms; 0: the current tick only. */
  readonly lingerMs: number
  /** Most readings waiting to be sent for the first time. */
  readonly maxQueuedReadings: number
  readonly overflow: OverflowPolicy
  /** Whether to pace frames to the hub's `lim.rate`. */
  readonly pacing: boolean
  /** Sends one encoded frame on the open session; false when there is none. */
  readonly transmit: (bytes: Uint8Array) => boolean
  /** Failures with no caller to reject (a store that cannot remove acked readings). */
  readonly onError: (error: SdkError) => void
  /**
   * Whether another frame on the same pace (a twin report) waits for a token: telemetry then leaves
   * it the next one, so a steady stream of readings cannot starve it. Default: never.
   */
  readonly yieldTo?: () => boolean
}

/** Seqs are saved to the store in blocks of this many, so a store is written once per block, not per frame. */
export const SEQ_SAVE_BLOCK = 1024

interface Ticket {
  left: number
  done: boolean
  resolve(): void
  reject(error: SdkError): void
}

// a StoredReading as the store sees it, with what the queue needs besides
interface Entry extends Packable {
  readonly id: number
  readonly ticket: Ticket | undefined
}

interface Frame {
  readonly s: number
  readonly entries: readonly Entry[]
  readonly bytes: Uint8Array
}

interface FlushWaiter {
  readonly mark: number
  resolve(): void
  reject(error: SdkError): void
}

/** The telemetry queue of one DeviceClient: see the module comment. */
export class TelemetryQueue {
  readonly #options: TelemetryQueueOptions
  readonly #pending = new Deque<Entry>()
  #frames: Frame[] = []
  #sent = 0
  #flushWaiters: FlushWaiter[] = []
  #limits: HubLimits | undefined
  #bucket: TokenBucket | undefined
  #nextId: number
  #nextSeq: number
  #savedSeq: number
  #lastStampTs = -1
  #dropped = 0
  #lingerDone = false
  #lingerTimer: unknown
  #paceTimer: unknown
  #pumpQueued = false
  #closed = false

  /** Takes what the store held (`options.loaded`): those readings are sent first. */
  constructor(options: TelemetryQueueOptions) {
    this.#options = options
    const loaded = options.loaded
    for (const reading of loaded.readings) this.#pending.push({ ...reading, ticket: undefined, bytes: -1 })
    const lastId = loaded.readings.at(-1)?.id ?? 0
    this.#nextId = lastId + 1
    // readings from an earlier run have waited long enough
    this.#lingerDone = this.#pending.length > 0
    // seqs start at 1 (0 is as valid on the wire; 1 reads better in logs and on MQTT)
    this.#nextSeq = Math.max(1, loaded.nextSeq)
    this.#savedSeq = loaded.nextSeq
  }

  /** Readings waiting to be sent for the first time. */
  get queued(): number {
    return this.#pending.length
  }

  /** Readings in frames sent and not yet acked or naked, including those waiting to be resent. */
  get inflight(): number {
    let readings = 0
    for (const frame of this.#frames) readings += frame.entries.length
    return readings
  }

  /**
   * The pace of the current session (docs/configuration.md: the hub's rate, burst 2x, less the jitter
   * reserve), which twin reports draw from too; undefined without a session or with pacing off.
   */
  get pace(): TokenBucket | undefined {
    return this.#bucket
  }

  /** Frames sent on the current session and not yet acked or naked. */
  get inflightFrames(): number {
    return this.#sent
  }

  /** Readings dropped by the `'drop-oldest'` policy since the queue was built. */
  get dropped(): number {
    return this.#dropped
  }

  /**
   * Validates, stamps and queues readings; resolves once the hub has acked all of them. Rejects at
   * once with SDK_ERR_INVALID_READING (nothing queued), SDK_ERR_QUEUE_FULL, SDK_ERR_STORE or
   * SDK_ERR_CLOSED; later with SDK_ERR_NAK, SDK_ERR_DROPPED or SDK_ERR_CLOSED.
   */
  add(inputs: readonly unknown[], batch: boolean): Promise<void> {
    if (this.#closed) return Promise.reject(new SdkError('SDK_ERR_CLOSED', 'the client is closed'))
    const readings: Reading[] = []
    for (let i = 0; i < inputs.length; i++) {
      const reading = toReading(inputs[i], () => this.#stamp())
      if (typeof reading === 'string') {
        return Promise.reject(new SdkError('SDK_ERR_INVALID_READING', batch ? `readings[${i}].${reading}` : reading))
      }
      readings.push(reading)
    }
    if (readings.length === 0) return Promise.resolve()
    const { maxQueuedReadings, overflow } = this.#options
    const over = this.queued + readings.length - maxQueuedReadings
    if (over > 0 && (overflow === 'reject' || readings.length > maxQueuedReadings)) {
      return Promise.reject(new SdkError('SDK_ERR_QUEUE_FULL', `the queue holds ${this.queued} of ${maxQueuedReadings} readings; ${readings.length} more do not fit`))
    }
    let ticket: Ticket | undefined
    const settled = new Promise<void>((resolve, reject) => {
      ticket = { left: readings.length, done: false, resolve, reject }
    })
    const entries = readings.map((reading): Entry => ({ id: this.#nextId++, ...reading, ticket, bytes: -1 }))
    try {
      this.#options.store.append(entries)
    } catch (cause) {
      return Promise.reject(storeError('the queue store failed to append', cause))
    }
    for (const entry of entries) this.#pending.push(entry)
    if (over > 0) this.#dropOldest(over)
    this.#queued()
    return settled
  }

  /**
   * Resolves once every reading added so far is acked, naked or dropped; rejects with SDK_ERR_CLOSED
   * on close(), SDK_ERR_ABORTED when `signal` aborts first (the readings stay queued).
   */
  flush(signal?: AbortSignal): Promise<void> {
    let waiter: FlushWaiter | undefined
    const start = (): Promise<void> => {
      if (this.#closed) return Promise.reject(new SdkError('SDK_ERR_CLOSED', 'the client is closed'))
      const mark = this.#nextId - 1
      if (this.#oldestUnsettled() > mark) return Promise.resolve()
      const done = new Promise<void>((resolve, reject) => {
        waiter = { mark, resolve, reject }
        this.#flushWaiters.push(waiter)
      })
      // what is flushed does not linger
      if (this.queued > 0) this.#lingerOver()
      return done
    }
    return abortable(signal, 'flush()', start, () => {
      this.#flushWaiters = this.#flushWaiters.filter((w) => w !== waiter)
    })
  }

  /** A session opened with these limits: resend what is unacked, then send what is queued. */
  open(limits: HubLimits): void {
    if (this.#closed) return
    this.#limits = limits
    this.#sent = 0
    this.#bucket = this.#options.pacing ? hubPacer(limits.rate, this.#options.clock.now()) : undefined
    // A frame the new hub would refuse as too large goes back to the queue with the frames after it
    // (keeping their order) and is packed again under new seqs; the rest keep their seq and ts.
    const misfit = this.#frames.findIndex((frame) => frame.bytes.length > limits.frame || frame.entries.length > limits.batch)
    if (misfit >= 0) {
      const entries = this.#frames.splice(misfit).flatMap((frame) => frame.entries)
      this.#pending.prepend(entries)
      this.#lingerDone = true
    }
    this.#pump()
  }

  /** The session ended: frames not acked wait to be resent with their seq and ts. */
  lost(): void {
    this.#limits = undefined
    this.#bucket = undefined
    this.#sent = 0
    this.#clearTimer('pace')
  }

  /** docs/protocol.md: `ack` s covers every frame of this session with seq <= s that was not naked. */
  ack(s: number): void {
    let count = 0
    while (count < this.#sent && (this.#frames[count] as Frame).s <= s) count++
    if (count === 0) return
    const acked = this.#frames.splice(0, count)
    this.#sent -= count
    const ids: number[] = []
    for (const frame of acked) {
      for (const entry of frame.entries) {
        ids.push(entry.id)
        const ticket = entry.ticket
        if (ticket !== undefined && !ticket.done && --ticket.left === 0) {
          ticket.done = true
          ticket.resolve()
        }
      }
    }
    this.#settled(ids)
  }

  /** A `nak` for frame `s`: its readings are refused for good. False when no frame of this session has seq `s`. */
  nak(s: number, reason: NakReason): boolean {
    const index = this.#frames.findIndex((frame, i) => i < this.#sent && frame.s === s)
    if (index < 0) return false
    const [frame] = this.#frames.splice(index, 1) as [Frame]
    this.#sent--
    const error = new SdkError('SDK_ERR_NAK', `the hub refused frame ${s} (${reason}); its readings are not stored`, { reason })
    for (const entry of frame.entries) this.#reject(entry, error)
    this.#settled(frame.entries.map((entry) => entry.id))
    return true
  }

  /** Stops for good: every unsettled reading and flush() rejects with `error`; the store is closed, keeping what it holds. */
  close(error: SdkError): void {
    if (this.#closed) return
    this.#closed = true
    this.#clearTimer('pace')
    this.#clearTimer('linger')
    for (const frame of this.#frames) for (const entry of frame.entries) this.#reject(entry, error)
    for (const entry of this.#pending.drain()) this.#reject(entry, error)
    this.#frames = []
    this.#sent = 0
    for (const waiter of this.#flushWaiters.splice(0)) waiter.reject(error)
    try {
      this.#options.store.close()
    } catch (cause) {
      this.#options.onError(storeError('the queue store failed to close', cause))
    }
  }

  // Stamps are device time at send, strictly increasing: two readings of one series sent within
  // the same millisecond would otherwise land on one InfluxDB point, the later overwriting the
  // earlier (docs/telemetry.md: time is `ts` in ms).
  #stamp(): number {
    const now = Math.max(0, Math.floor(this.#options.clock.now()))
    this.#lastStampTs = nextStamp(this.#lastStampTs, now)
    return this.#lastStampTs
  }

  #dropOldest(count: number): void {
    const error = new SdkError('SDK_ERR_DROPPED', `the queue was full (${this.#options.maxQueuedReadings} readings): the oldest were dropped for newer ones`)
    const ids: number[] = []
    for (let i = 0; i < count; i++) {
      const entry = this.#pending.shift() as Entry
      ids.push(entry.id)
      this.#reject(entry, error)
    }
    this.#dropped += count
    this.#settled(ids)
  }

  // New readings are queued: pack them at once (lingerMs 0, in a microtask so that a loop of
  // send() calls shares frames), or when the linger time of the oldest is over; a full batch
  // goes at once, and what is left waits for the same timer (like Kafka's linger.ms).
  #queued(): void {
    const { lingerMs, clock } = this.#options
    if (lingerMs === 0 || this.#lingerDone) {
      this.#lingerOver()
      return
    }
    this.#lingerTimer ??= clock.setTimeout(() => {
      this.#lingerTimer = undefined
      this.#lingerOver()
    }, lingerMs)
    if (this.queued >= this.#batchLimit()) this.#schedulePump()
  }

  // The readings queued may go now (flush() or the linger time is over, or a batch is full).
  #lingerOver(): void {
    this.#clearTimer('linger')
    this.#lingerDone = true
    this.#schedulePump()
  }

  #schedulePump(): void {
    if (this.#pumpQueued) return
    this.#pumpQueued = true
    queueMicrotask(() => {
      this.#pumpQueued = false
      this.#pump()
    })
  }

  // Sends what the window and the rate allow: resends first, in seq order, then new frames.
  #pump(): void {
    const limits = this.#limits
    if (limits === undefined || this.#closed) return
    const clock = this.#options.clock
    for (;;) {
      // docs/protocol.md: at most lim.window frames sent and not yet acked or naked
      if (this.#sent >= limits.window) return
      const resend = this.#sent < this.#frames.length
      if (!resend && (this.queued === 0 || !(this.#lingerDone || this.queued >= this.#batchLimit()))) return
      const bucket = this.#bucket
      const needed = this.#options.yieldTo?.() === true ? 2 : 1
      if (bucket !== undefined && bucket.tokens(clock.now()) < needed) {
        this.#pace(bucket.waitMs(clock.now(), needed))
        return
      }
      const frame = resend ? this.#frames[this.#sent] : this.#pack(limits)
      if (frame === undefined) return
      // no session after all: the close event follows, and the frame is resent on the next one
      if (!this.#options.transmit(frame.bytes)) return
      bucket?.take(clock.now())
      this.#sent++
    }
  }

  #pace(waitMs: number): void {
    if (this.#paceTimer !== undefined) return
    this.#paceTimer = this.#options.clock.setTimeout(() => {
      this.#paceTimer = undefined
      this.#pump()
    }, Math.max(1, waitMs))
  }

  #batchLimit(): number {
    const hubLimit = this.#limits?.batch ?? Number.MAX_SAFE_INTEGER
    return Math.min(this.#options.batchMaxReadings ?? hubLimit, hubLimit)
  }

  // Takes readings off the queue into one new frame: one reading is a `tm`, more a `tb`, at most
  // the batch limit and lim.frame bytes. A reading too large for any frame is refused here.
  #pack(limits: HubLimits): Frame | undefined {
    const at = (index: number): Entry => this.#pending.at(index) as Entry
    while (this.queued > 0) {
      const s = this.#nextSeq
      const { count, bytes } = packFrame(at, this.queued, s, this.#batchLimit(), limits.frame)
      const entries = Array.from({ length: Math.max(1, count) }, () => this.#pending.shift() as Entry)
      if (count === 0) {
        const [entry] = entries as [Entry]
        this.#reject(entry, new SdkError('SDK_ERR_INVALID_READING', `the reading takes ${bytes.length} bytes, more than the hub's frame limit of ${limits.frame}`))
        this.#settled([entry.id])
        continue
      }
      this.#useSeq(s)
      const frame: Frame = { s, entries, bytes }
      this.#frames.push(frame)
      if (this.queued === 0) this.#drained()
      return frame
    }
    this.#drained()
    return undefined
  }

  // Nothing waits: the next reading starts a new linger time.
  #drained(): void {
    this.#lingerDone = false
    this.#clearTimer('linger')
  }

  #useSeq(s: number): void {
    this.#nextSeq = s + 1
    if (this.#nextSeq <= this.#savedSeq) return
    // before the seq goes on the wire, so a restarted device never reuses it
    this.#savedSeq = s + SEQ_SAVE_BLOCK
    try {
      this.#options.store.saveNextSeq(this.#savedSeq)
    } catch (cause) {
      this.#options.onError(storeError('the queue store failed to save the next seq', cause))
    }
  }

  #reject(entry: Entry, error: SdkError): void {
    const ticket = entry.ticket
    if (ticket === undefined || ticket.done) return
    ticket.done = true
    ticket.reject(error)
  }

  // Readings left the queue for good (acked, naked, dropped, refused): forget them, wake flush() and the pump.
  #settled(ids: readonly number[]): void {
    try {
      this.#options.store.remove(ids)
    } catch (cause) {
      this.#options.onError(storeError('the queue store failed to remove settled readings', cause))
    }
    const oldest = this.#oldestUnsettled()
    if (this.#flushWaiters.length > 0) {
      const waiting: FlushWaiter[] = []
      for (const waiter of this.#flushWaiters) {
        if (oldest > waiter.mark) waiter.resolve()
        else waiting.push(waiter)
      }
      this.#flushWaiters = waiting
    }
    this.#schedulePump()
  }

  #oldestUnsettled(): number {
    return this.#frames[0]?.entries[0]?.id ?? this.#pending.at(0)?.id ?? Number.POSITIVE_INFINITY
  }

  #clearTimer(which: 'pace' | 'linger'): void {
    const timer = which === 'pace' ? this.#paceTimer : this.#lingerTimer
    if (timer !== undefined) this.#options.clock.clearTimeout(timer)
    if (which === 'pace') this.#paceTimer = undefined
    else this.#lingerTimer = undefined
  }
}
