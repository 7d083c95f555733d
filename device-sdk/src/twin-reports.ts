// The twin reports of a DeviceClient, without a socket (docs/twins.md): each report is kept in the
// store until the hub answers it, reports wait while there is no session, and the ones waiting
// are merged into as few merge patches as RFC 7386 allows, sent in order, one `twr` at a time.
//
// Batches: every report not yet answered belongs to one batch, batches in report order; a batch's
// patch has the effect of its reports applied in turn. A new report joins the last batch when the
// two compose exactly (composeMergePatches), and then that batch joins the one before it when they
// do, and so on: a later report can make earlier ones composable again ({k: 5}, {k: {b: 1}},
// {k: 7} become one patch {k: 7}). The first batch is on the wire (`#inflight`) or next to go; a
// batch on the wire never changes. When the hub refuses a batch of several reports for what they
// hold (invalid, too_large), its reports go again one by one (`alone`), so each gets its own answer.
import { abortable } from './abort.js'
import { SdkError } from './errors.js'
import { encodeFrame } from './protocol.js'
import type { HubLimits, TwinAckFrame, TwinDocument } from './frames.js'
import type { Clock } from './options.js'
import { storeError, type QueueStore, type StoredReport } from './queue-store.js'
import type { TokenBucket } from './token-bucket.js'
import { composeMergePatches, MAX_TWIN_BYTES, twinBytes, twinPatchProblem } from './twin-doc.js'

/**
 * Most twin reports a client keeps unanswered (waiting offline, or behind the one on the wire):
 * 10,000. Beyond, report() rejects with SDK_ERR_QUEUE_FULL: a device that reports faster than the
 * hub answers, or for days offline, is told so instead of growing without bound.
 */
export const MAX_PENDING_REPORTS = 10_000

/** How TwinReports is built; DeviceClient passes its resolved options. */
export interface TwinReportsOptions {
  readonly clock: Clock
  readonly store: QueueStore
  /** Reports the store held when the client started (loadQueueStore): they go first. */
  readonly loaded: readonly StoredReport[]
  /** Sends one encoded frame on the open session; false when there is none. */
  readonly transmit: (bytes: Uint8Array) => boolean
  /** Failures with no caller to reject (a store that cannot remove answered reports). */
  readonly onError: (error: SdkError) => void
}

interface Ticket {
  done: boolean
  resolve(version: number): void
  reject(error: SdkError): void
}

interface Report {
  readonly id: number
  readonly patch: TwinDocument
  readonly ticket: Ticket | undefined
  /** Sent on its own: a batch holding it was refused for what it held. */
  alone: boolean
}

interface Batch {
  readonly reports: Report[]
  patch: TwinDocument
}

/** The twin reports of one DeviceClient: see the module comment. */
export class TwinReports {
  readonly #options: TwinReportsOptions
  #batches: Batch[] = []
  #inflight: { readonly batch: Batch; readonly id: string } | undefined
  #limits: HubLimits | undefined
  #pace: TokenBucket | undefined
  #paceTimer: unknown
  #nextId: number
  #frames = 0
  #reportedVersion: number | undefined
  #closed = false

  /** Takes what the store held (`options.loaded`): those reports are sent first, merged as they allow. */
  constructor(options: TwinReportsOptions) {
    this.#options = options
    for (const stored of options.loaded) this.#enqueue({ id: stored.id, patch: stored.p, ticket: undefined, alone: false })
    this.#nextId = (options.loaded.at(-1)?.id ?? 0) + 1
  }

  /** Reports made and not yet answered by the hub (sent or not). */
  get pending(): number {
    let count = 0
    for (const batch of this.#batches) count += batch.reports.length
    return count
  }

  /** The reported version the hub gave in its last `twa`; undefined before the first. */
  get reportedVersion(): number | undefined {
    return this.#reportedVersion
  }

  /** Whether a report is due and waits for the session's pace: telemetry leaves it the next token. */
  get waitingForPace(): boolean {
    return this.#paceTimer !== undefined
  }

  /**
   * Checks, copies and keeps a merge patch for `reported`; resolves with the reported version once
   * the hub has durably applied it. Rejects with SDK_ERR_INVALID_REPORT (nothing kept),
   * SDK_ERR_QUEUE_FULL (MAX_PENDING_REPORTS wait already) or SDK_ERR_STORE at once, later with SDK_ERR_REPORT_REFUSED (`reason` the hub's code),
   * SDK_ERR_INVALID_REPORT (larger than the hub's frame limit) or SDK_ERR_CLOSED.
   */
  add(patch: unknown, signal: AbortSignal | undefined): Promise<number> {
    return abortable(signal, 'twin.report()', () => {
      if (this.#closed) return Promise.reject(new SdkError('SDK_ERR_CLOSED', 'the client is closed'))
      if (this.pending >= MAX_PENDING_REPORTS) return Promise.reject(new SdkError('SDK_ERR_QUEUE_FULL', `${MAX_PENDING_REPORTS} twin reports wait for the hub's answer already`))
      const problem = twinPatchProblem(patch)
      if (problem !== undefined) return Promise.reject(new SdkError('SDK_ERR_INVALID_REPORT', `patch${problem}`))
      // a deep copy, so that the caller may change its object afterwards (the checks made it JSON)
      const copy = JSON.parse(JSON.stringify(patch)) as TwinDocument
      const id = this.#nextId++
      try {
        this.#options.store.appendReports?.([{ id, p: copy }])
      } catch (cause) {
        return Promise.reject(storeError('the queue store failed to keep a twin report', cause))
      }
      return new Promise<number>((resolve, reject) => {
        this.#enqueue({ id, patch: copy, ticket: { done: false, resolve, reject }, alone: false })
        this.#pump()
      })
    })
  }

  /** A session opened with these limits and this pace (undefined: pacing off): sends what waits. */
  open(limits: HubLimits, pace: TokenBucket | undefined): void {
    if (this.#closed) return
    this.#limits = limits
    this.#pace = pace
    this.#pump()
  }

  /** The session ended: a batch on the wire waits to go again (merge patches are idempotent), merged anew with what came after. */
  lost(): void {
    this.#limits = undefined
    this.#pace = undefined
    this.#clearPaceTimer()
    if (this.#inflight === undefined) return
    this.#inflight = undefined
    const reports = this.#batches.flatMap((batch) => batch.reports)
    this.#batches = []
    for (const report of reports) this.#enqueue(report)
  }

  /** The hub's `twa`. False when it answers no report on the wire (the caller reports the hub's error). */
  acked(frame: TwinAckFrame): boolean {
    const inflight = this.#inflight
    if (inflight === undefined || frame.id !== inflight.id) return false
    this.#inflight = undefined
    this.#batches.shift()
    const { reports } = inflight.batch
    if (frame.e === undefined) {
      this.#reportedVersion = frame.v
      for (const report of reports) settle(report, (ticket) => ticket.resolve(frame.v))
    } else if (frame.e !== 'rate' && reports.length > 1) {
      // refused for what the merged patch held: each report goes again on its own, in order
      this.#batches.unshift(...reports.map((report) => ((report.alone = true), { reports: [report], patch: report.patch })))
      this.#pump()
      return true
    } else {
      const error = new SdkError('SDK_ERR_REPORT_REFUSED', `the hub refused the twin report (${frame.e}); nothing changed`, { reason: frame.e })
      for (const report of reports) settle(report, (ticket) => ticket.reject(error))
    }
    this.#forget(reports)
    this.#pump()
    return true
  }

  /** Stops for good: every pending report() rejects with `error`; the store keeps the reports for the next run. */
  close(error: SdkError): void {
    if (this.#closed) return
    this.#closed = true
    this.#clearPaceTimer()
    for (const batch of this.#batches) for (const report of batch.reports) settle(report, (ticket) => ticket.reject(error))
    this.#batches = []
    this.#inflight = undefined
  }

  /** Adds a report after the others: into the last batch, and that into the one before it, while they compose. */
  #enqueue(report: Report): void {
    this.#batches.push({ reports: [report], patch: report.patch })
    while (this.#batches.length >= 2) {
      const later = this.#batches.at(-1) as Batch
      const earlier = this.#batches.at(-2) as Batch
      if (this.#inflight?.batch === earlier || isAlone(earlier) || isAlone(later)) return
      const patch = composeMergePatches(earlier.patch, later.patch)
      // a merged patch stays within what a hub stores, so its frame fits the default frame limit
      if (patch === undefined || twinBytes(patch) > MAX_TWIN_BYTES) return
      this.#batches.pop()
      earlier.reports.push(...later.reports)
      earlier.patch = patch
    }
  }

  // Sends the first batch when the session, the pace and the one-at-a-time rule allow.
  #pump(): void {
    const limits = this.#limits
    if (this.#closed || limits === undefined || this.#inflight !== undefined) return
    for (;;) {
      const batch = this.#batches[0]
      if (batch === undefined) return
      const id = String(++this.#frames)
      const bytes = encodeFrame({ t: 'twr', id, p: batch.patch })
      if (bytes.length > limits.frame) {
        if (batch.reports.length > 1) {
          this.#batches.splice(0, 1, ...batch.reports.map((report) => ((report.alone = true), { reports: [report], patch: report.patch })))
          continue
        }
        this.#batches.shift()
        const error = new SdkError('SDK_ERR_INVALID_REPORT', `the twin report takes ${bytes.length} bytes, more than the hub's frame limit of ${limits.frame}`)
        for (const report of batch.reports) settle(report, (ticket) => ticket.reject(error))
        this.#forget(batch.reports)
        continue
      }
      const pace = this.#pace
      const now = this.#options.clock.now()
      if (pace !== undefined && pace.tokens(now) < 1) {
        this.#paceTimer ??= this.#options.clock.setTimeout(() => {
          this.#paceTimer = undefined
          this.#pump()
        }, Math.max(1, pace.waitMs(now)))
        return
      }
      // no session after all: the close event follows, and the batch goes on the next one
      if (!this.#options.transmit(bytes)) return
      pace?.take(now)
      this.#inflight = { batch, id }
      return
    }
  }

  #forget(reports: readonly Report[]): void {
    try {
      this.#options.store.removeReports?.(reports.map((report) => report.id))
    } catch (cause) {
      this.#options.onError(storeError('the queue store failed to remove answered twin reports', cause))
    }
  }

  #clearPaceTimer(): void {
    if (this.#paceTimer !== undefined) this.#options.clock.clearTimeout(this.#paceTimer)
    this.#paceTimer = undefined
  }
}

function isAlone(batch: Batch): boolean {
  return batch.reports.some((report) => report.alone)
}

function settle(report: Report, how: (ticket: Ticket) => void): void {
  const ticket = report.ticket
  if (ticket === undefined || ticket.done) return
  ticket.done = true
  how(ticket)
}
