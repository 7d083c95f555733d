// Where a DeviceClient keeps readings until the hub acknowledges them. The interface is synchronous
// on purpose: a reading is in the store before send() returns, so a process killed right after
// send() still has it; an async store would leave a window where a reading was sent but not kept.
// Browser stores can sit on localStorage or OPFS sync access handles; Node has FileQueueStore
// (`@fleetgate/device-sdk/node`).
import { SdkError } from './errors.js'
import type { Metrics, Tags } from './frames.js'
import { toReading } from './reading.js'

/** A reading as a store keeps it: `id` (from 1, increasing in send order), `ts` Unix ms, metrics `m`, tags `g`. */
export interface StoredReading {
  readonly id: number
  readonly ts: number
  readonly m: Metrics
  readonly g?: Tags
}

/** What a store holds when a client starts: unacked readings by increasing id, and the next seq to use (0: none used yet). */
export interface StoredQueue {
  readonly readings: readonly StoredReading[]
  readonly nextSeq: number
}

/**
 * Persistence of the telemetry queue. Every method is synchronous and throws (best an SdkError
 * SDK_ERR_STORE) when it fails. A client calls load() once when it is built, then append() for
 * accepted readings, remove() for readings acked, naked or dropped, saveNextSeq() before it uses
 * seqs at or beyond the last saved value, and close() from its own close(). One store serves one
 * client at a time.
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
  /** Releases the store's resources; the client calls nothing after it. */
  close(): void
}

/** A QueueStore in memory, the default: readings survive reconnects but not the process. */
export class MemoryQueueStore implements QueueStore {
  readonly #readings = new Map<number, StoredReading>()
  #nextSeq = 0

  /** Readings held, not yet removed. */
  get size(): number {
    return this.#readings.size
  }

  load(): StoredQueue {
    return { readings: [...this.#readings.values()], nextSeq: this.#nextSeq }
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

/**
 * Loads `store` and checks what it holds: readings by the codec's rules (CONTRACT §3) with ids
 * increasing, and a next seq >= 0. Throws SdkError SDK_ERR_STORE when it fails or holds anything else.
 */
export function loadQueueStore(store: QueueStore): { readings: StoredReading[]; nextSeq: number } {
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
  return { readings, nextSeq: loaded.nextSeq }
}

/** A store's failure as SdkError SDK_ERR_STORE, `cause` kept; an SdkError passes through as it is. */
export function storeError(message: string, cause: unknown): SdkError {
  return cause instanceof SdkError ? cause : new SdkError('SDK_ERR_STORE', message, { cause })
}
