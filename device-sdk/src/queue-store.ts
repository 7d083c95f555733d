// Where a DeviceClient keeps readings until the hub acknowledges them, and twin reports until the
// hub answers them. The interface is synchronous on purpose: a reading (a report) is in the store
// before send() (twin.report()) returns, so a process killed right after still has it; an async
// store would leave a window where it was sent but not kept.
// Browser stores can sit on localStorage or OPFS sync access handles; Node has FileQueueStore
// (`@fleetgate/device-sdk/node`).
import { SdkError } from './errors.js'
import type { Metrics, Tags, TwinDocument } from './frames.js'
import { toReading } from './reading.js'
import { twinPatchProblem } from './twin-doc.js'

/** A reading as a store keeps it: `id` (from 1, increasing in send order), `ts` Unix ms, metrics `m`, tags `g`. */
export interface StoredReading {
  readonly id: number
  readonly ts: number
  readonly m: Metrics
  readonly g?: Tags
}

/** A twin report as a store keeps it until the hub answers it: `id` (from 1, increasing in report order) and its merge patch `p`. */
export interface StoredReport {
  readonly id: number
  readonly p: TwinDocument
}

/**
 * What a store holds when a client starts: unacked readings by increasing id, the next seq to use
 * (0: none used yet), and unanswered twin reports by increasing id (absent: none, as in a store
 * written before twins).
 */
export interface StoredQueue {
  readonly readings: readonly StoredReading[]
  readonly nextSeq: number
  readonly reports?: readonly StoredReport[]
}

/**
 * Persistence of the telemetry queue and of unanswered twin reports. Every method is synchronous
 * and throws (best an SdkError SDK_ERR_STORE) when it fails. A client calls load() once when it is
 * built, then append() for accepted readings, remove() for readings acked, naked or dropped,
 * saveNextSeq() before it uses seqs at or beyond the last saved value, appendReports() and
 * removeReports() for twin reports made and answered, and close() from its own close(). One store
 * serves one client at a time.
 */
export interface QueueStore {
  /** Everything appended and not removed, oldest first, and the last seq saved. */
  load(): StoredQueue
  /** Keeps new readings (ids larger than any before). */
  append(readings: readonly StoredReading[]): void
  /** Forgets readings by id; unknown ids are ignored. */
  remove(ids: readonly number[]): void
  /** Records that seqs below `seq` may have been used. */
  saveNextSeq(seq: number): void
  /**
   * Keeps new twin reports (ids larger than any before). Optional: with a store that lacks it (one
   * written before twins), reports wait in the client's memory only and do not survive its process.
   */
  appendReports?(reports: readonly StoredReport[]): void
  /** Forgets twin reports by id once the hub answered them; unknown ids are ignored. Optional, with appendReports. */
  removeReports?(ids: readonly number[]): void
  /** Releases the store's resources; the client calls nothing after it. */
  close(): void
}

/**
 * A QueueStore in memory, the default: readings and reports survive reconnects, and a new client on
 * the same store (a simulated reboot), but not the process.
 */
export class MemoryQueueStore implements QueueStore {
  readonly #readings = new Map<number, StoredReading>()
  readonly #reports = new Map<number, StoredReport>()
  #nextSeq = 0

  /** Readings held, not yet removed. */
  get size(): number {
    return this.#readings.size
  }

  load(): StoredQueue {
    return { readings: [...this.#readings.values()], nextSeq: this.#nextSeq, reports: [...this.#reports.values()] }
  }

  appendReports(reports: readonly StoredReport[]): void {
    for (const report of reports) this.#reports.set(report.id, report)
  }

  removeReports(ids: readonly number[]): void {
    for (const id of ids) this.#reports.delete(id)
  }

  append(readings: readonly StoredReading[]): void {
    for (const reading of readings) this.#readings.set(reading.id, reading)
  }

  remove(ids: readonly number[]): void {
    for (const id of ids) this.#readings.delete(id)
  }

  saveNextSeq(seq: number): void {
    this.#nextSeq = seq
  }

  close(): void {}
}

/** What loadQueueStore found, checked. */
export interface LoadedQueue {
  readonly readings: StoredReading[]
  readonly nextSeq: number
  readonly reports: StoredReport[]
}

/**
 * Loads `store` and checks what it holds: readings by the codec's rules (docs/protocol.md) with ids
 * increasing, a next seq >= 0, and twin reports by the twin rules (docs/twins.md) with ids
 * increasing. Throws SdkError SDK_ERR_STORE when it fails or holds anything else.
 */
export function loadQueueStore(store: QueueStore): LoadedQueue {
  let loaded: StoredQueue
  try {
    loaded = store.load()
  } catch (cause) {
    throw storeError('the queue store failed to load', cause)
  }
  const readings: StoredReading[] = []
  let lastId = 0
  for (const stored of loaded.readings) {
    const reading = toReading({ metrics: stored.m, ts: stored.ts, ...(stored.g === undefined ? {} : { tags: stored.g }) }, () => -1)
    if (typeof reading === 'string' || !Number.isSafeInteger(stored.id) || stored.id <= lastId) {
      throw new SdkError('SDK_ERR_STORE', `the queue store holds a bad reading (id ${String(stored.id)}): ${typeof reading === 'string' ? reading : 'ids must increase'}`)
    }
    lastId = stored.id
    readings.push({ id: stored.id, ...reading })
  }
  if (!Number.isSafeInteger(loaded.nextSeq) || loaded.nextSeq < 0) throw new SdkError('SDK_ERR_STORE', `the queue store holds a bad next seq ${loaded.nextSeq}`)
  const reports: StoredReport[] = []
  let lastReport = 0
  for (const stored of loaded.reports ?? []) {
    const problem = twinPatchProblem(stored.p)
    if (problem !== undefined || !Number.isSafeInteger(stored.id) || stored.id <= lastReport) {
      throw new SdkError('SDK_ERR_STORE', `the queue store holds a bad twin report (id ${String(stored.id)}): ${problem === undefined ? 'ids must increase' : `p${problem}`}`)
    }
    lastReport = stored.id
    reports.push(stored)
  }
  return { readings, nextSeq: loaded.nextSeq, reports }
}

/** A store's failure as SdkError SDK_ERR_STORE, `cause` kept; an SdkError passes through as it is. */
export function storeError(message: string, cause: unknown): SdkError {
  return cause instanceof SdkError ? cause : new SdkError('SDK_ERR_STORE', message, { cause })
}
