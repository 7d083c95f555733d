import type { Store } from './environment.js'

/** One accepted telemetry frame, as the spool keeps it. */
export interface SpoolEntry {
  readonly deviceId: string
  /** The hub's receive time (Unix ms): the `ts` of a `tm` reading that has none. */
  readonly receivedAt: number
  /** The frame exactly as the device sent it (one CBOR data item), already validated once. */
  readonly frame: Uint8Array
}

/** Where an entry sits in the spool and the bytes it takes there: what `trim` needs. */
export interface SpoolSlot {
  readonly seq: number
  readonly bytes: number
}

/** A stored entry with its place in the spool. */
export interface SpooledEntry extends SpoolEntry, SpoolSlot {}

const BYTES_KEY = 'spool.bytes'

/** The committed byte total; read inside a write transaction it includes that transaction's changes. */
const heldBytes = (meta: Store['meta']): number => (meta.get(BYTES_KEY) as number | undefined) ?? 0

/*
 * Layout of a stored value: [u8 id length][id bytes][f64 receivedAt, big-endian][frame bytes].
 * Keeping the device's own bytes means ingest never re-encodes a reading, and the spool holds
 * exactly what was acknowledged.
 */
export const entrySize = (entry: SpoolEntry): number => 1 + entry.deviceId.length + 8 + entry.frame.byteLength

function encodeEntry(entry: SpoolEntry): Buffer {
  // Device ids are ASCII (CONTRACT §2), so one char is one byte.
  const idLength = entry.deviceId.length
  const value = Buffer.allocUnsafe(entrySize(entry))
  value[0] = idLength
  value.write(entry.deviceId, 1, 'latin1')
  value.writeDoubleBE(entry.receivedAt, 1 + idLength)
  value.set(entry.frame, 1 + idLength + 8)
  return value
}

function decodeEntry(seq: number, value: Buffer): SpooledEntry {
  const idLength = value[0] ?? 0
  return {
    seq,
    bytes: value.byteLength,
    deviceId: value.toString('latin1', 1, 1 + idLength),
    receivedAt: value.readDoubleBE(1 + idLength),
    frame: value.subarray(1 + idLength + 8),
  }
}

/**
 * The durable telemetry spool: an append-only log in the store, keyed by a sequence number, with
 * its byte total kept in the same transactions as the data (exact after a crash). Appends are
 * group-committed: every append of one tick goes into one lmdb transaction, and its promise
 * resolves once that transaction is committed (see store.ts).
 */
export class Spool {
  readonly #store: Store
  #nextSeq: number
  #bytes: number

  constructor(store: Store) {
    this.#store = store
    let last = 0
    for (const key of store.spool.getKeys({ reverse: true, limit: 1 })) last = key
    this.#nextSeq = last + 1
    this.#bytes = heldBytes(store.meta)
  }

  /** The seq the next appended entry gets. */
  get nextSeq(): number {
    return this.#nextSeq
  }

  /** Bytes held, committed or in a commit under way. */
  get bytes(): number {
    return this.#bytes
  }

  /** Entries held (an lmdb stat: no scan). */
  get entries(): number {
    return (this.#store.spool.getStats() as { entryCount: number }).entryCount
  }

  /**
   * Appends entries in one transaction; resolves once they are durable, with the seq of the first
   * (the others follow it one by one). A failed append leaves its seqs unused.
   */
  append(entries: readonly SpoolEntry[]): Promise<number> {
    const { spool, meta } = this.#store
    const values = entries.map(encodeEntry)
    const firstSeq = this.#nextSeq
    this.#nextSeq += values.length
    let added = 0
    for (const value of values) added += value.byteLength
    this.#bytes += added
    return this.#store.root
      .transaction(() => {
        values.forEach((value, i) => spool.put(firstSeq + i, value))
        meta.put(BYTES_KEY, heldBytes(meta) + added)
      })
      .then(
        () => firstSeq,
        (err: unknown) => {
          // Nothing was stored: the bytes must not count toward the quota for good.
          this.#bytes -= added
          throw err
        },
      )
  }

  /**
   * Entries after spool seq `after` and, when `before` is given, below it; oldest first, read as
   * the caller walks.
   */
  *read(after: number, before?: number): Generator<SpooledEntry> {
    const range = this.#store.spool.getRange(before === undefined ? { start: after + 1 } : { start: after + 1, end: before })
    for (const { key, value } of range) yield decodeEntry(key, value)
  }

  /** Removes entries that have been shipped. */
  async trim(shipped: readonly SpoolSlot[]): Promise<void> {
    if (shipped.length === 0) return
    const { spool, meta } = this.#store
    let freed = 0
    for (const entry of shipped) freed += entry.bytes
    await this.#store.root.transaction(() => {
      for (const entry of shipped) spool.remove(entry.seq)
      meta.put(BYTES_KEY, Math.max(0, heldBytes(meta) - freed))
    })
    this.#bytes = Math.max(0, this.#bytes - freed)
  }
}
