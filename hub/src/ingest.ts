import type { BatchFrame, HubFrame, NakReason, Reading, TelemetryFrame } from '@fleetgate/device-sdk'
import type { Logger } from './logger.js'
import { CloseCode } from './sessions.js'
import { entrySize, type Spool, type SpoolEntry, type SpoolSlot } from './spool.js'

/** CONTRACT §3: the default flow-control window, in telemetry frames. */
export const WINDOW_FRAMES = 64

/** What ingest needs of a device session; the device endpoint adapts a uWS socket to it. */
export interface Peer {
  readonly deviceId: string
  readonly ingest: IngestState
  /** False once the session has closed: nothing may be sent then. */
  isOpen(): boolean
  send(frame: HubFrame): boolean
  close(code: number, reason: string): void
}

/** A device's token bucket: tokens left and when it was last refilled (Unix ms). */
export interface Bucket {
  tokens: number
  refilledAt: number
}

/** Per-session ingest state: sequence, window and token bucket. */
export interface IngestState {
  /** Highest `s` seen on this connection (CONTRACT §3: strictly increasing). */
  lastSeq: number
  /** Frames accepted and not yet acked. */
  inflight: number
  /**
   * The session's bucket, full when it opens. A device cannot see the hub's bucket, so one carried
   * over a reconnect would nak (and so lose) the resends of a device that paces itself correctly.
   */
  readonly bucket: Bucket
  /** Rate naks in the current abuse window, and when it began (Unix ms). */
  rateNaks: number
  rateWindowStart: number
}

/** A telemetry message as MQTT subscribers get it once the frame is durable (CONTRACT §6). */
export interface TelemetryMessage {
  readonly device: string
  readonly seq: number
  readonly readings: readonly Reading[]
}

/** A frame made durable: its place in the spool, its device and its readings (decoded once, at ingest). */
export interface CommittedFrame extends SpoolSlot {
  readonly deviceId: string
  readonly readings: readonly Reading[]
}

/** The readings of a telemetry frame; a `tm` without `ts` is stamped with the hub's receive time. */
export function readingsOf(frame: TelemetryFrame | BatchFrame, receivedAt: number): readonly Reading[] {
  if (frame.t === 'tb') return frame.r
  return [frame.g === undefined ? { ts: frame.ts ?? receivedAt, m: frame.m } : { ts: frame.ts ?? receivedAt, m: frame.m, g: frame.g }]
}

/** Counters ingest reports to the hub's figures. */
export interface IngestCounters {
  accepted(frames: number, readings: number): void
  acked(acks: number): void
  naked(reason: NakReason): void
}

/** What ingest is built from. */
export interface IngestOptions {
  readonly spool: Spool
  readonly log: Logger
  readonly counters: IngestCounters
  /** Called with each frame's readings once durable (the MQTT bridge); must not block. */
  readonly publish: (message: TelemetryMessage) => void
  /** Called after each commit, before its acks, with the frames it made durable (the InfluxDB shipper). */
  readonly committed: (frames: readonly CommittedFrame[]) => void
  /** Sustained frames per second per device; the bucket holds twice that (CONTRACT §1). */
  readonly ratePerSec: number
  /** The spool quota in bytes: above it acks stop until the shipper frees room. */
  readonly spoolMaxBytes: number
  /**
   * Whether InfluxDB lags behind what was committed: accepted frames then wait uncommitted, as at
   * the quota, until a trim calls `resume`. The lag then passes its bound by at most the commits
   * still under way (a few of at most 10,000 readings each); holding acks alone let every
   * device's whole window pile onto it. Default: never.
   */
  readonly shippingLags?: () => boolean
  /**
   * Whether MQTT egress lags as a whole (the broker's deliveries, not any one subscriber, which
   * the broker bounds on its own): while it does, committed frames are neither
   * acked nor published, so devices slow down to what egress takes instead of the hub buffering
   * without bound. Default: never.
   */
  readonly egressBusy?: () => boolean
  /** Clock, Unix ms; default Date.now. */
  readonly now?: () => number
}

/** Rate abuse is judged over this window: naks beyond `ratePerSec * window` close the session. */
const ABUSE_WINDOW_MS = 5000
/** Readings one commit takes at most (frames that arrive in one turn usually hold far fewer). */
const MAX_COMMIT_READINGS = 10_000
/** How often held acks are retried while egress lags, in ms. */
const EGRESS_RETRY_MS = 2

interface Pending {
  readonly peer: Peer
  readonly s: number
  readonly entry: SpoolEntry
  readonly readings: readonly Reading[]
}

/**
 * Telemetry ingest: checks a frame's sequence, the device's rate and window, queues it for the
 * next group commit, and after the commit sends one cumulative `ack` per session and publishes
 * the readings. Nothing here awaits per frame.
 */
export class Ingest {
  readonly #options: IngestOptions
  readonly #now: () => number
  #pending: Pending[] = []
  #scheduled = false
  #commits = new Set<Promise<void>>()
  /** Committed batches whose acks wait for egress, oldest first. */
  #held: Array<readonly Pending[]> = []
  #releaseTimer: NodeJS.Timeout | undefined
  #releaseQueued = false

  constructor(options: IngestOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  /** A fresh state for a new session: a full bucket, nothing seen or in flight. */
  newState(): IngestState {
    const now = this.#now()
    return { lastSeq: -1, inflight: 0, bucket: { tokens: 2 * this.#options.ratePerSec, refilledAt: now }, rateNaks: 0, rateWindowStart: now }
  }

  /** Refuses a frame that failed validation; its `s` still counts as seen (CONTRACT §3). */
  refuseInvalid(peer: Peer, s: number): void {
    peer.ingest.lastSeq = Math.max(peer.ingest.lastSeq, s)
    this.#nak(peer, s, 'invalid')
  }

  /**
   * Takes one decoded telemetry frame. `raw` is the frame's bytes; they are copied, since uWS
   * reuses the message buffer once the handler returns.
   */
  accept(peer: Peer, frame: TelemetryFrame | BatchFrame, raw: Uint8Array): void {
    const state = peer.ingest
    if (frame.s <= state.lastSeq) return this.#nak(peer, frame.s, 'seq')
    state.lastSeq = frame.s
    if (!this.#takeToken(peer, frame.s)) return
    if (state.inflight >= WINDOW_FRAMES) return this.#nak(peer, frame.s, 'too_many')
    state.inflight++
    const receivedAt = this.#now()
    const readings = readingsOf(frame, receivedAt)
    this.#pending.push({ peer, s: frame.s, entry: { deviceId: peer.deviceId, receivedAt, frame: raw.slice() }, readings })
    this.#options.counters.accepted(1, readings.length)
    this.#schedule()
  }

  /** Retries a commit held back by the spool quota or by InfluxDB's lag (the shipper calls this after a trim). */
  resume(): void {
    if (this.#pending.length > 0) this.#schedule()
  }

  /** Commits everything accepted, quota or not, and waits for every commit (shutdown). */
  async drain(): Promise<void> {
    this.#commit(true)
    await Promise.all([...this.#commits])
    clearTimeout(this.#releaseTimer)
  }

  #takeToken(peer: Peer, s: number): boolean {
    const state = peer.ingest
    const bucket = state.bucket
    const rate = this.#options.ratePerSec
    const now = this.#now()
    bucket.tokens = Math.min(2 * rate, bucket.tokens + ((now - bucket.refilledAt) * rate) / 1000)
    bucket.refilledAt = now
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return true
    }
    this.#nak(peer, s, 'rate')
    if (now - state.rateWindowStart >= ABUSE_WINDOW_MS) {
      state.rateWindowStart = now
      state.rateNaks = 0
    }
    // Sending at twice the allowed rate for a whole window is abuse, not a burst.
    if (++state.rateNaks > (rate * ABUSE_WINDOW_MS) / 1000) {
      peer.close(CloseCode.rateAbuse, 'sustained rate abuse')
    }
    return false
  }

  #nak(peer: Peer, s: number, e: NakReason): void {
    this.#options.counters.naked(e)
    peer.send({ t: 'nak', s, e })
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    // One commit per turn of the event loop gathers every frame that arrived in it (group commit).
    setImmediate(() => {
      this.#scheduled = false
      this.#commit(false)
    })
  }

  #commit(ignoreQuota: boolean): void {
    if (this.#pending.length === 0) return
    // CONTRACT §1: at the quota the hub stops acknowledging; frames wait (bounded by the window).
    if (!ignoreQuota && (this.#options.spool.bytes >= this.#options.spoolMaxBytes || this.#options.shippingLags?.() === true)) return
    // A commit's callback builds the lines of all its readings in one task: once frames piled up
    // behind a hold, they go in commits of bounded size, one per turn (the quota and the lag are
    // checked again before each). Shutdown commits everything at once.
    let take = this.#pending.length
    if (!ignoreQuota) {
      let readings = 0
      take = 0
      for (const { readings: r } of this.#pending) {
        if (take > 0 && readings + r.length > MAX_COMMIT_READINGS) break
        readings += r.length
        take++
      }
    }
    const batch = take === this.#pending.length ? this.#pending : this.#pending.splice(0, take)
    if (batch === this.#pending) this.#pending = []
    else this.#schedule()
    const commit = this.#options.spool.append(batch.map((p) => p.entry)).then(
      (firstSeq) => this.#committed(batch, firstSeq),
      (err: unknown) => this.#failed(batch, err),
    )
    this.#commits.add(commit)
    void commit.finally(() => this.#commits.delete(commit))
  }

  #committed(batch: readonly Pending[], firstSeq: number): void {
    this.#options.committed(batch.map(({ peer, entry, readings }, i) => ({ seq: firstSeq + i, bytes: entrySize(entry), deviceId: peer.deviceId, readings })))
    this.#held.push(batch)
    if (this.#releaseQueued) return
    // lmdb often finishes several queued commits at once: releasing after all their callbacks
    // acks each session once for all of them instead of once per commit.
    this.#releaseQueued = true
    queueMicrotask(() => {
      this.#releaseQueued = false
      this.#release()
    })
  }

  /**
   * Publishes held batches, in order, for as long as egress keeps up, then sends each session one
   * cumulative ack with the highest seq released (CONTRACT §3).
   */
  #release(): void {
    this.#releaseTimer = undefined
    const busy = this.#options.egressBusy
    const highest = new Map<Peer, number>()
    while (this.#held.length > 0) {
      if (busy?.() === true) {
        this.#releaseTimer ??= setTimeout(() => this.#release(), EGRESS_RETRY_MS)
        break
      }
      for (const { peer, s, readings } of this.#held.shift() as readonly Pending[]) {
        peer.ingest.inflight--
        highest.set(peer, s)
        this.#options.publish({ device: peer.deviceId, seq: s, readings })
      }
    }
    let acks = 0
    for (const [peer, s] of highest) {
      if (!peer.isOpen()) continue
      peer.send({ t: 'ack', s })
      acks++
    }
    this.#options.counters.acked(acks)
  }

  #failed(batch: readonly Pending[], err: unknown): void {
    this.#options.log.error({ err, frames: batch.length }, 'spool commit failed; closing the sessions concerned')
    for (const peer of new Set(batch.map((p) => p.peer))) {
      if (peer.isOpen()) peer.close(CloseCode.storageFailure, 'storage failure; resend unacknowledged frames')
    }
  }
}
