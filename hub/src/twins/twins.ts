import type { Clock } from '@fleetgate/device-sdk'
import { applyMergePatch, CloseCode, MAX_TWIN_BYTES, twinBytes, type TwinAckFrame, type TwinDocument, type TwinRefusal } from '@fleetgate/device-sdk/wire'
import type { AuditLog } from '../audit/index.js'
import type { Peer, Registry, Sessions } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { TwinChange, TwinRecord, TwinStore } from '../store/index.js'
import { TurnBatch } from '../turn-batch.js'
import { tune } from '../tuning.js'
import { emptyTwin, twinView, type TwinView } from './twin-view.js'

/** The twin module's tuning knobs; defaults in TWINS_DEFAULTS. */
export interface TwinsTuning {
  /**
   * Answers (`twa`) the hub keeps for a session whose socket refuses them (its device does not
   * read), to write in its `drain`; one more closes the session (1008); default 64, the window.
   */
  readonly maxOwedAnswers: number
}

/** The defaults of TwinsTuning. */
export const TWINS_DEFAULTS: TwinsTuning = Object.freeze({ maxOwedAnswers: 64 })

/** How an operator's change of `desired` ended. */
export type DesiredOutcome =
  | { readonly kind: 'changed' | 'unchanged'; readonly twin: TwinView }
  | { readonly kind: 'version_conflict'; readonly desiredVersion: number }
  | { readonly kind: 'too_large'; readonly bytes: number }
  | { readonly kind: 'not_found' }

/** How a device's report ended, for the figures: applied (`changed` or `unchanged`) or refused. */
export type ReportOutcome = 'changed' | 'unchanged' | TwinRefusal

/** Figures the twin module reports. */
export interface TwinCounters {
  desiredChanged(outcome: DesiredOutcome['kind']): void
  reported(outcome: ReportOutcome): void
  /** A `twd` frame went out (`sent`), or waits for the socket to drain (`held`: the latest goes then). */
  desiredSent(outcome: 'sent' | 'held'): void
}

/** What the twin module is built from. */
export interface TwinsOptions {
  readonly store: TwinStore
  /** Which devices exist: a twin belongs to a registered device. */
  readonly registry: Pick<Registry, 'get'>
  /** Where each device's live session is. */
  readonly sessions: Pick<Sessions, 'get'>
  readonly audit: Pick<AuditLog, 'record'>
  readonly log: Logger
  readonly counters: TwinCounters
  /**
   * Called once each change (desired or reported) is durable, with the twin after it, in the order
   * of each device's changes: the retained MQTT topic and the `twin` event (docs/rest.md, docs/mqtt.md, docs/twins.md).
   */
  readonly changed: (twin: TwinView) => void
  /** Called once a deleted device's twin is gone (its retained topic is cleared). */
  readonly removed: (device: string) => void
  /**
   * Cluster mode: called after a desired change of a device whose session is not here, to tell the
   * node that holds it (over the bus; should the news be lost, that node's sweep finds the change).
   * Default none.
   */
  readonly elsewhere?: (device: string) => void
  /** Time: when each change was made. */
  readonly clock: Clock
  /** Tuning knobs; defaults in TWINS_DEFAULTS. */
  readonly tuning?: Partial<TwinsTuning>
}

/** A desired change as the store decided it: `stored` is a change written, to be sent and published. */
type DesiredResult = { readonly kind: 'stored'; readonly record: TwinRecord } | Exclude<DesiredOutcome, { kind: 'changed' | 'not_found' }>

/** What a session's socket refused (its device does not read), to write in its `drain`. */
interface Owed {
  /** Answers, in the order made. */
  readonly answers: TwinAckFrame[]
  /** Whether the latest desired document is owed (read again from the store at the drain). */
  desired: boolean
}

type ReportResult = { readonly kind: 'changed' | 'unchanged'; readonly twin: TwinRecord } | { readonly kind: 'too_large' } | { readonly kind: 'gone' }

/**
 * Device twins (docs/twins.md): operators change `desired` (REST), devices change `reported` (`twr`
 * frames), each by RFC 7386 merge patches, each side with its own version. Every change of one
 * device runs after the one before it has settled (a chain per device), so reports apply in the
 * order received and a deletion comes after the changes asked for before it. After `hello` and
 * after each change of `desired`, the live session gets the whole desired document (`twd`), never
 * a version older than one it already got. What a session's socket refuses (a device that does not
 * read) is written in its drain: its answers in order, then the latest desired document.
 */
export class Twins {
  readonly #options: TwinsOptions
  readonly #tuning: TwinsTuning
  /** The last change asked for, per device, while one runs: the next waits for it. */
  readonly #tails = new Map<string, Promise<unknown>>()
  /** The highest desired version each session got. */
  readonly #sentVersion = new WeakMap<Peer, number>()
  /** What each session's socket refused, until its drain. */
  readonly #owed = new WeakMap<Peer, Owed>()
  /** The desired versions of the devices whose sessions opened in one turn, read together. */
  readonly #versions = new TurnBatch<string, number>((devices) => this.#options.store.desiredVersions(devices))

  constructor(options: TwinsOptions) {
    this.#options = options
    this.#tuning = tune('Twins', TWINS_DEFAULTS, options.tuning)
  }

  /** The twin of a device, or undefined when the device does not exist. */
  async view(device: string): Promise<TwinView | undefined> {
    if (this.#options.registry.get(device) === undefined) return undefined
    return twinView((await this.#options.store.get(device)) ?? emptyTwin(device))
  }

  /**
   * An operator's merge patch for `desired` (already checked by the twin rules), applied unless
   * `ifVersion` is given and is not the current desired version. Audited as `twin.desired`.
   */
  async changeDesired(device: string, patch: TwinDocument, ifVersion: number | undefined, actor: string): Promise<DesiredOutcome> {
    const at = this.#options.clock.now()
    const outcome = await this.#serial(device, async (): Promise<DesiredOutcome> => {
      if (this.#options.registry.get(device) === undefined) return { kind: 'not_found' }
      const result = await this.#options.store.update(device, (before): TwinChange<DesiredResult> => {
        const twin = before ?? emptyTwin(device)
        if (ifVersion !== undefined && ifVersion !== twin.desiredVersion) return { write: undefined, outcome: { kind: 'version_conflict', desiredVersion: twin.desiredVersion } }
        const desired = applyMergePatch(twin.desired, patch)
        if (desired === twin.desired) return { write: undefined, outcome: { kind: 'unchanged', twin: twinView(twin) } }
        const bytes = twinBytes(desired)
        if (bytes > MAX_TWIN_BYTES) return { write: undefined, outcome: { kind: 'too_large', bytes } }
        const after: TwinRecord = { ...twin, desired, desiredVersion: twin.desiredVersion + 1, desiredAt: at }
        return { write: after, outcome: { kind: 'stored', record: after } }
      })
      if (result.kind !== 'stored') return result
      // the device first: the retained topic and the event stream are not on its path
      const peer = this.#options.sessions.get(device)
      if (peer !== undefined) this.#sendDesired(peer, result.record)
      else this.#options.elsewhere?.(device)
      const view = twinView(result.record)
      this.#changed(view)
      return { kind: 'changed', twin: view }
    })
    this.#options.counters.desiredChanged(outcome.kind)
    if (outcome.kind !== 'not_found') this.#options.audit.record(actor, 'twin.desired', device, auditOutcome(outcome))
    return outcome
  }

  /**
   * A device's report (`twr`, already admitted by its rate): applied in the order received, then
   * answered `twa` with the new reported version once durable, or `too_large` with nothing changed.
   * A store failure closes the session (1011): the report stays unanswered and the device resends it.
   */
  report(peer: Peer, id: string, patch: TwinDocument): void {
    const device = peer.deviceId
    const at = this.#options.clock.now()
    const applied = this.#serial(device, async (): Promise<ReportResult> => {
      // a device deleted meanwhile: its session is closing (4003), and no twin may outlive it
      if (this.#options.registry.get(device) === undefined) return { kind: 'gone' }
      return await this.#options.store.update(device, (before): TwinChange<ReportResult> => {
        const twin = before ?? emptyTwin(device)
        const reported = applyMergePatch(twin.reported, patch)
        if (reported === twin.reported) return { write: undefined, outcome: { kind: 'unchanged', twin } }
        if (twinBytes(reported) > MAX_TWIN_BYTES) return { write: undefined, outcome: { kind: 'too_large' } }
        const after: TwinRecord = { ...twin, reported, reportedVersion: twin.reportedVersion + 1, reportedAt: at }
        return { write: after, outcome: { kind: 'changed', twin: after } }
      })
    })
    applied.then(
      (result) => {
        if (result.kind === 'gone') return
        this.#options.counters.reported(result.kind)
        if (result.kind === 'too_large') {
          this.#answer(peer, { t: 'twa', id, e: 'too_large' })
          return
        }
        this.#answer(peer, { t: 'twa', id, v: result.twin.reportedVersion })
        if (result.kind === 'changed') this.#changed(twinView(result.twin))
      },
      (err: unknown) => {
        this.#options.log.error({ err, deviceId: device }, 'twin report not stored; closing the session')
        peer.close(CloseCode.storageFailure, 'storage failure; resend unacknowledged reports')
      },
    )
  }

  /**
   * Answers a report refused before it reached the twin (`invalid`, `rate`): nothing changed. The
   * answer follows those of the device's reports received before it (docs/twins.md: in order).
   */
  refuse(peer: Peer, id: string, reason: TwinRefusal): void {
    this.#options.counters.reported(reason)
    void this.#serial(peer.deviceId, () => {
      this.#answer(peer, { t: 'twa', id, e: reason })
      return Promise.resolve()
    })
  }

  /**
   * The session's socket takes frames again (uWS `drain`): the answers it refused go out in order,
   * then the latest desired document when one was refused, until the socket refuses one again.
   */
  drained(peer: Peer): void {
    const owed = this.#owed.get(peer)
    if (owed === undefined) return
    while (owed.answers.length > 0) {
      if (!peer.send(owed.answers[0] as TwinAckFrame)) return
      owed.answers.shift()
    }
    if (owed.desired) {
      owed.desired = false
      this.opened(peer).catch((err: unknown) => this.#options.log.error({ err, deviceId: peer.deviceId }, 'desired twin not sent'))
    }
  }

  /**
   * A session opened (after its `hello`): sends it the whole desired document, `{}` at version 0
   * when there is none (docs/twins.md). The versions of a turn's new sessions are read together (a
   * connect storm costs a read a turn), and the document only when it is not the empty one.
   * Resolves once sent (or found not needed). Also how a session gets a change made on another node.
   */
  async opened(peer: Peer): Promise<void> {
    await this.#refresh(peer, (await this.#versions.get(peer.deviceId)) ?? 0)
  }

  /**
   * Cluster mode, each sweep: the sessions of `devices` (those here) that lack their device's
   * latest desired version get it, should the news of a change on another node have been lost.
   */
  async sweep(devices: readonly string[]): Promise<void> {
    for (const [device, version] of await this.#options.store.desiredVersions(devices)) {
      const peer = this.#options.sessions.get(device)
      if (peer === undefined || !peer.isOpen()) continue
      this.#refresh(peer, version).catch((err: unknown) => this.#options.log.error({ err, deviceId: device }, 'desired twin not sent'))
    }
  }

  /** Deletes the twin of a deleted device, after every change asked for before, and clears its retained topic. */
  async deviceDeleted(device: string): Promise<void> {
    const removed = await this.#serial(device, () => this.#options.store.remove(device))
    if (removed) this.#options.removed(device)
  }

  /** Sends the desired document at `version` unless the session has it (the empty one needs no read). */
  async #refresh(peer: Peer, version: number): Promise<void> {
    if (version <= (this.#sentVersion.get(peer) ?? -1)) return
    const twin = version === 0 ? undefined : await this.#options.store.get(peer.deviceId)
    this.#sendDesired(peer, twin ?? emptyTwin(peer.deviceId))
  }

  /** Runs `job` once every job of `device` asked for before it has settled. */
  #serial<T>(device: string, job: () => Promise<T>): Promise<T> {
    const tail = this.#tails.get(device) ?? Promise.resolve()
    const run = tail.then(job, job)
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    this.#tails.set(device, settled)
    void settled.then(() => {
      if (this.#tails.get(device) === settled) this.#tails.delete(device)
    })
    return run
  }

  #changed(twin: TwinView): void {
    try {
      this.#options.changed(twin)
    } catch (err) {
      this.#options.log.error({ err, deviceId: twin.device }, 'twin change not published')
    }
  }

  /**
   * Sends `twd` unless the session already got this version or a newer one. While the socket
   * refuses frames, or owes answers, the document is owed instead: its drain sends the latest.
   */
  #sendDesired(peer: Peer, twin: TwinRecord): void {
    if (!peer.isOpen()) return
    if (twin.desiredVersion <= (this.#sentVersion.get(peer) ?? -1)) return
    const owed = this.#owed.get(peer)
    if ((owed === undefined || (owed.answers.length === 0 && !owed.desired)) && peer.send({ t: 'twd', v: twin.desiredVersion, d: twin.desired })) {
      this.#sentVersion.set(peer, twin.desiredVersion)
      this.#options.counters.desiredSent('sent')
      return
    }
    if (!peer.isOpen()) return
    this.#options.counters.desiredSent('held')
    this.#owedOf(peer).desired = true
  }

  /**
   * Writes a `twa`, or keeps it for the drain when the socket refuses it or answers wait already
   * (they go out in the order made). A device that keeps reporting and never reads is closed (1008)
   * past `maxOwedAnswers` rather than kept without bound.
   */
  #answer(peer: Peer, frame: TwinAckFrame): void {
    const owed = this.#owed.get(peer)
    if ((owed === undefined || owed.answers.length === 0) && peer.send(frame)) return
    if (!peer.isOpen()) return
    const answers = this.#owedOf(peer).answers
    if (answers.length >= this.#tuning.maxOwedAnswers) {
      peer.close(CloseCode.rateAbuse, 'reports beyond its answers and does not read them')
      return
    }
    answers.push(frame)
  }

  #owedOf(peer: Peer): Owed {
    let owed = this.#owed.get(peer)
    if (owed === undefined) {
      owed = { answers: [], desired: false }
      this.#owed.set(peer, owed)
    }
    return owed
  }
}

/** The audit entry's outcome of a desired change. */
function auditOutcome(outcome: Exclude<DesiredOutcome, { kind: 'not_found' }>): string {
  switch (outcome.kind) {
    case 'changed':
      return `version ${outcome.twin.desiredVersion}`
    case 'unchanged':
      return `unchanged (version ${outcome.twin.desiredVersion})`
    case 'version_conflict':
      return `version_conflict (version ${outcome.desiredVersion})`
    case 'too_large':
      return `too_large (${outcome.bytes} bytes)`
  }
}
