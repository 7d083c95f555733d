import type { TelemetryMessage } from '@fleetgate/bridge'
import type { Clock, NakReason, Reading } from '@fleetgate/device-sdk'
import { CloseCode, nextStamp, type AckFrame, type BatchFrame, type NakFrame, type TelemetryFrame } from '@fleetgate/device-sdk/wire'
import type { Peer } from '../devices/index.js'
import type { Logger } from '../logger.js'
import { tune } from '../tuning.js'
import type { AcceptedFrame, CommitTarget } from './commit-target.js'
import { RateLimit, type RateVerdict } from './rate-limit.js'

/** Ingest's tuning knobs; defaults in INGEST_DEFAULTS. */
export interface IngestTuning {
  /** Unacked telemetry frames per session (docs/protocol.md `lim.window`); default 64. */
  readonly windowFrames: number
  /** Rate abuse is judged over this window, in ms: more refusals in it than the rate allows in it close the session (1008); default 5,000. */
  readonly abuseWindowMs: number
  /** Readings one commit takes at most (frames that arrive in one turn usually hold far fewer); default 10,000. */
  readonly maxCommitReadings: number
  /** How often held commits and acks are retried while egress lags, in ms; default 2. */
  readonly egressRetryMs: number
  /**
   * A device's last stamp is forgotten once it is this far behind the clock, in ms: a new stamp is
   * then the clock's time anyway, unless the clock steps back further than this; default 60,000.
   */
  readonly stampKeepMs: number
  /** Stamps kept before the first sweep of old ones; the next sweep comes at twice what a sweep leaves; default 1,024. */
  readonly stampSweepMin: number
}

/** The defaults of IngestTuning. */
export const INGEST_DEFAULTS: IngestTuning = Object.freeze({
  windowFrames: 64,
  abuseWindowMs: 5000,
  maxCommitReadings: 10_000,
  egressRetryMs: 2,
  stampKeepMs: 60_000,
  stampSweepMin: 1024,
})

/** What ingest needs of a device session: a Peer that carries its ingest state. */
export interface IngestPeer extends Peer {
  readonly ingest: IngestState
}

/**
 * Per-session ingest state: sequence, window and rate budgets. The budgets belong to the session
 * and start full: a device cannot see the hub's bucket, so one carried over a reconnect would nak
 * (and so lose) the resends of a device that paces itself correctly.
 */
export interface IngestState {
  /** Highest `s` seen on this connection (docs/protocol.md: strictly increasing). */
  lastSeq: number
  /** Frames accepted and not yet acked. */
  inflight: number
  /**
   * Acks and naks the socket refused (back-pressure), in the order they were made, written again
   * by `drained`. Consecutive acks are kept as the last one (an ack is cumulative); naks are kept
   * each, since an ack covers every frame up to its `s` that was not naked: a nak lost before a
   * later ack would pass a refused frame off as stored.
   */
  readonly owed: Array<AckFrame | NakFrame>
  /** Budget of telemetry frames, valid or not. */
  readonly telemetry: RateLimit
  /**
   * Budget of `res` frames, apart from telemetry's: the SDK paces its telemetry to the hub's rate
   * and cannot see its results, so results drawing on the same bucket would get readings naked
   * `rate` (and lost); nor may a flood of results starve telemetry.
   */
  readonly results: RateLimit
}

/** A frame's bytes when the commit target does not keep them. */
const NO_BYTES = new Uint8Array(0)

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
  /** A `res` frame over its session's budget, dropped unread. */
  resultDropped(): void
}

/** What ingest is built from. */
export interface IngestOptions {
  /** Where commits make frames durable: the spool, the history or both (commit-target.ts). */
  readonly target: CommitTarget
  readonly log: Logger
  readonly counters: IngestCounters
  /** Called with each frame's readings once durable (the MQTT bridge); must not block. */
  readonly publish: (message: TelemetryMessage) => void
  /**
   * Called after each commit to the spool, before its acks, with the frames it made durable, the
   * first at spool seq `firstSeq` and the others after it, one group (the InfluxDB shipper); default none.
   */
  readonly committed?: (frames: readonly AcceptedFrame[], firstSeq: number) => void
  /** Sustained frames per second per device; the bucket holds twice that (docs/configuration.md). */
  readonly ratePerSec: number
  /**
   * Whether InfluxDB lags behind what was committed: accepted frames then wait uncommitted, as at
   * the quota, until a trim calls `resume`. The lag then passes its bound by at most the commits
   * still under way (a few of at most 10,000 readings each); holding acks alone let every
   * device's whole window pile onto it. Default: never.
   */
  readonly shippingLags?: () => boolean
  /**
   * Whether MQTT egress lags as a whole (the broker's deliveries, not any one subscriber, which
   * the broker bounds on its own): while it does, accepted frames wait uncommitted, as at the
   * quota, and frames already committed are neither acked nor published, so devices slow down to
   * what egress takes instead of the hub buffering without bound. Default: never.
   */
  readonly egressBusy?: () => boolean
  /** Time and timers (rate budgets, receive times, the egress retry). */
  readonly clock: Clock
  /** Runs `fn` on the next turn of the event loop: one group commit per turn; default setImmediate. */
  readonly nextTurn?: (fn: () => void) => void
  /** Tuning knobs; defaults in INGEST_DEFAULTS. */
  readonly tuning?: Partial<IngestTuning>
}

interface Pending extends AcceptedFrame {
  readonly peer: IngestPeer
  readonly s: number
}

/**
 * Telemetry ingest: checks a frame's sequence, the device's rate and window, queues it for the
 * next group commit, and after the commit sends one cumulative `ack` per session and publishes
 * the readings. Nothing here awaits per frame.
 *
 * Memory: frames wait uncommitted while commits are held (spool quota, InfluxDB lag, egress lag).
 * A session's window bounds its own, and a session that ends takes its uncommitted frames with
 * it (they were never acked, so the device resends them), so what waits is at most live sessions
 * x the window (64 frames) x FLEETGATE_MAX_FRAME bytes.
 */
export class Ingest {
  readonly #options: IngestOptions
  readonly #clock: Clock
  readonly #nextTurn: (fn: () => void) => void
  readonly #tuning: IngestTuning
  /** Frames accepted and not yet committed, by session, each in seq order; sessions in the order they began waiting. */
  readonly #pending = new Map<IngestPeer, Pending[]>()
  #pendingFrames = 0
  #scheduled = false
  #commits = new Set<Promise<void>>()
  /** Committed batches whose acks wait for egress, oldest first. */
  #held: Array<readonly Pending[]> = []
  #egressRetry: unknown
  #releaseQueued = false
  /** The last stamp given to a reading without `ts`, by device (Unix ms); kept across sessions. */
  readonly #stamps = new Map<string, number>()
  #sweepStampsAbove: number

  constructor(options: IngestOptions) {
    this.#options = options
    this.#clock = options.clock
    this.#nextTurn = options.nextTurn ?? setImmediate
    this.#tuning = tune('Ingest', INGEST_DEFAULTS, options.tuning)
    this.#sweepStampsAbove = this.#tuning.stampSweepMin
  }

  /** Unacked telemetry frames a session may have (docs/protocol.md `lim.window`, announced in `hello`). */
  get windowFrames(): number {
    return this.#tuning.windowFrames
  }

  /** Frames accepted and not yet committed, over every session (gauge `fleetgate_ingest_pending_frames`). */
  get pendingFrames(): number {
    return this.#pendingFrames
  }

  /** A fresh state for a new session: full budgets, nothing seen or in flight. */
  newState(): IngestState {
    const now = this.#clock.now()
    const rate = this.#options.ratePerSec
    const { abuseWindowMs } = this.#tuning
    return { lastSeq: -1, inflight: 0, owed: [], telemetry: new RateLimit(rate, now, abuseWindowMs), results: new RateLimit(rate, now, abuseWindowMs) }
  }

  /**
   * Refuses a frame that failed validation; its `s` still counts as seen (docs/protocol.md). It draws
   * from the rate like any telemetry frame, so a flood of bad frames is closed as abuse (1008).
   */
  refuseInvalid(peer: IngestPeer, s: number): void {
    const verdict = peer.ingest.telemetry.take(this.#clock.now())
    peer.ingest.lastSeq = Math.max(peer.ingest.lastSeq, s)
    this.#refuse(peer, s, 'invalid', verdict)
  }

  /**
   * Takes one decoded telemetry frame. `raw` is the frame's bytes; they are copied, since uWS
   * reuses the message buffer once the handler returns.
   */
  accept(peer: IngestPeer, frame: TelemetryFrame | BatchFrame, raw: Uint8Array): void {
    const state = peer.ingest
    // Every frame draws a token, refused or not, so no kind of refusal is free to flood; the answer
    // is the first check that fails: seq, then rate, then the window.
    const verdict = state.telemetry.take(this.#clock.now())
    if (frame.s <= state.lastSeq) return this.#refuse(peer, frame.s, 'seq', verdict)
    state.lastSeq = frame.s
    if (verdict !== 'ok') return this.#refuse(peer, frame.s, 'rate', verdict)
    if (state.inflight >= this.#tuning.windowFrames) return this.#nak(peer, frame.s, 'too_many')
    state.inflight++
    const now = this.#clock.now()
    // The spool keeps this time with the frame: it is the `ts` of a `tm` that has none, after a restart too.
    const receivedAt = frame.t === 'tm' && frame.ts === undefined ? this.#stamp(peer.deviceId, now) : now
    const readings = readingsOf(frame, receivedAt)
    // uWS reuses the message's memory once the handler returns: a target that keeps the bytes gets a copy.
    const pending: Pending = { peer, s: frame.s, deviceId: peer.deviceId, receivedAt, frame: this.#options.target.keepsFrames ? raw.slice() : NO_BYTES, readings }
    const queue = this.#pending.get(peer)
    if (queue === undefined) this.#pending.set(peer, [pending])
    else queue.push(pending)
    this.#pendingFrames++
    this.#options.counters.accepted(1, readings.length)
    this.#schedule()
  }

  /**
   * Whether a `res` frame may go on to the commands. Results draw from their own budget; one over
   * it is dropped and counted, not answered (a `res` has no `s` to nak), so the command it answers
   * ends `timeout`. Sustained abuse closes the session with 1008, as for telemetry.
   */
  admitResult(peer: IngestPeer): boolean {
    if (this.#admit(peer, peer.ingest.results)) return true
    this.#options.counters.resultDropped()
    return false
  }

  /**
   * Whether a twin report (`twr`) is within the device's rate: it draws one token from the
   * session's telemetry budget, valid or not (docs/twins.md: like a telemetry frame), so reports and
   * readings share FLEETGATE_DEVICE_RATE. Sustained abuse closes the session with 1008.
   */
  admitTwinReport(peer: IngestPeer): boolean {
    return this.#admit(peer, peer.ingest.telemetry)
  }

  #admit(peer: IngestPeer, budget: RateLimit): boolean {
    const verdict = budget.take(this.#clock.now())
    if (verdict === 'abuse') peer.close(CloseCode.rateAbuse, 'sustained rate abuse')
    return verdict === 'ok'
  }

  /**
   * Forgets a session that ended: its frames not yet committed are dropped. None was acked, so the
   * device resends them; kept, they would pile up with every reconnect while commits are held.
   */
  closed(peer: IngestPeer): void {
    const queue = this.#pending.get(peer)
    if (queue === undefined) return
    this.#pending.delete(peer)
    this.#pendingFrames -= queue.length
  }

  /**
   * The session's socket takes frames again (uWS `drain`): the acks and naks it refused go out, in
   * order, until it refuses one again.
   */
  drained(peer: IngestPeer): void {
    const owed = peer.ingest.owed
    while (owed.length > 0) {
      if (!peer.send(owed[0] as AckFrame | NakFrame)) return
      owed.shift()
    }
  }

  /** Retries a commit held back by the spool quota or by InfluxDB's lag (the shipper calls this after a trim). */
  resume(): void {
    if (this.#pendingFrames > 0) this.#schedule()
  }

  /** Commits everything accepted, quota or not, and waits for every commit (shutdown). */
  async drain(): Promise<void> {
    this.#commit(true)
    await Promise.all([...this.#commits])
    if (this.#egressRetry !== undefined) this.#clock.clearTimeout(this.#egressRetry)
  }

  /** Naks frame `s`; when its token was refused once too often, closes the session as abuse (1008). */
  #refuse(peer: IngestPeer, s: number, e: NakReason, verdict: RateVerdict): void {
    this.#nak(peer, s, e)
    if (verdict === 'abuse') peer.close(CloseCode.rateAbuse, 'sustained rate abuse')
  }

  /**
   * The `ts` of a device's reading that came without one: the receive time, or 1 ms after the
   * device's last such stamp (nextStamp, as the SDK stamps), so an acked reading never lands on
   * another's InfluxDB point. Kept per device across its sessions; stamps far behind the clock
   * are swept once the map doubles, so it holds about the devices of the last minute.
   */
  #stamp(deviceId: string, now: number): number {
    const stamp = nextStamp(this.#stamps.get(deviceId) ?? -1, now)
    this.#stamps.set(deviceId, stamp)
    if (this.#stamps.size > this.#sweepStampsAbove) {
      for (const [id, last] of this.#stamps) if (last < now - this.#tuning.stampKeepMs) this.#stamps.delete(id)
      this.#sweepStampsAbove = Math.max(this.#tuning.stampSweepMin, 2 * this.#stamps.size)
    }
    return stamp
  }

  #nak(peer: IngestPeer, s: number, e: NakReason): void {
    this.#options.counters.naked(e)
    this.#answer(peer, { t: 'nak', s, e })
  }

  /**
   * Writes an ack or a nak, or keeps it for `drained` when the socket refuses it or answers wait
   * already (they go out in the order made). A device within its window owes at most a window of
   * answers; one that sends beyond it and never reads is closed (1008) rather than kept without bound.
   */
  #answer(peer: IngestPeer, frame: AckFrame | NakFrame): void {
    const owed = peer.ingest.owed
    if (owed.length === 0 && peer.send(frame)) return
    if (!peer.isOpen()) return
    if (frame.t === 'ack' && owed.at(-1)?.t === 'ack') {
      owed[owed.length - 1] = frame
      return
    }
    if (frame.t === 'nak' && owed.filter((answer) => answer.t === 'nak').length >= this.#tuning.windowFrames) {
      peer.close(CloseCode.rateAbuse, 'sends beyond its window and does not read the answers')
      return
    }
    owed.push(frame)
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    // One commit per turn of the event loop gathers every frame that arrived in it (group commit).
    this.#nextTurn(() => {
      this.#scheduled = false
      this.#commit(false)
    })
  }

  #commit(ignoreQuota: boolean): void {
    if (this.#pendingFrames === 0) return
    if (!ignoreQuota) {
      const { target, shippingLags, egressBusy } = this.#options
      // docs/configuration.md: at the spool quota the hub stops acknowledging; frames wait (bounded by the window).
      // The shipper calls `resume` after each trim; nothing does when egress frees up, so that is polled.
      if (target.full || shippingLags?.() === true) return
      if (egressBusy?.() === true) return this.#retryWhenEgressFrees()
    }
    // A commit's callback builds the lines of all its readings in one task: once frames piled up
    // behind a hold, they go in commits of bounded size, one per turn (the holds are checked again
    // before each). Shutdown commits everything at once.
    const maxReadings = ignoreQuota ? Number.POSITIVE_INFINITY : this.#tuning.maxCommitReadings
    const batch: Pending[] = []
    let readings = 0
    for (const [peer, queue] of this.#pending) {
      let taken = 0
      while (taken < queue.length) {
        const next = queue[taken] as Pending
        if (batch.length > 0 && readings + next.readings.length > maxReadings) break
        readings += next.readings.length
        batch.push(next)
        taken++
      }
      if (taken < queue.length) {
        // A session's frames are committed in seq order, so the rest of its queue waits for the next commit.
        queue.splice(0, taken)
        break
      }
      this.#pending.delete(peer)
    }
    this.#pendingFrames -= batch.length
    if (this.#pendingFrames > 0) this.#schedule()
    const commit = this.#options.target.commit(batch).then(
      (firstSeq) => this.#committed(batch, firstSeq),
      (err: unknown) => this.#failed(batch, err),
    )
    this.#commits.add(commit)
    void commit.finally(() => this.#commits.delete(commit))
  }

  #committed(batch: readonly Pending[], firstSeq: number | undefined): void {
    if (firstSeq !== undefined) this.#options.committed?.(batch, firstSeq)
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
   * cumulative ack with the highest seq released (docs/protocol.md).
   */
  #release(): void {
    const busy = this.#options.egressBusy
    const highest = new Map<IngestPeer, number>()
    while (this.#held.length > 0) {
      if (busy?.() === true) {
        this.#retryWhenEgressFrees()
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
      this.#answer(peer, { t: 'ack', s })
      acks++
    }
    this.#options.counters.acked(acks)
  }

  /** Once egress has room again: releases held batches, then commits what waits. */
  #retryWhenEgressFrees(): void {
    this.#egressRetry ??= this.#clock.setTimeout(() => {
      this.#egressRetry = undefined
      this.#release()
      this.resume()
    }, this.#tuning.egressRetryMs)
  }

  #failed(batch: readonly Pending[], err: unknown): void {
    this.#options.log.error({ err, frames: batch.length }, 'telemetry commit failed; closing the sessions concerned')
    for (const peer of new Set(batch.map((p) => p.peer))) {
      if (peer.isOpen()) peer.close(CloseCode.storageFailure, 'storage failure; resend unacknowledged frames')
    }
  }
}
