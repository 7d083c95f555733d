import type { Database, RootDatabase } from 'lmdb'
import type { SpoolStore } from '../interfaces.js'
import type { SpooledEntry, SpoolEntry, SpoolSlot } from '../records.js'
import { database, moveLegacyMeta } from './environment.js'

/** The key of the byte total in `spool-bytes` (hub 0.1 kept it in `meta` as `spool.bytes`). */
const BYTES_KEY = 'total'
const LEGACY_BYTES_KEY = 'spool.bytes'

/** The committed byte total; read inside a write transaction it includes that transaction's changes. */
const heldBytes = (totals: Database<number, string>): number => totals.get(BYTES_KEY) ?? 0

/*
 * Layout of a stored value: [u8 id length][id bytes][f64 receivedAt, big-endian][frame bytes].
 * Keeping the device's own bytes means ingest never re-encodes a reading, and the spool holds
 * exactly what was acknowledged.
 */
const entrySize = (entry: SpoolEntry): number => 1 + entry.deviceId.length + 8 + entry.frame.byteLength

function encodeEntry(entry: SpoolEntry): Buffer {
  // Device ids are ASCII (docs/protocol.md), so one char is one byte.
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
 * The spool in lmdb: entries in `spool` by seq, the byte total in `spool-bytes`, kept in the same
 * transactions as the data (exact after a crash). Appends are group-committed: every append of one
 * tick goes into one lmdb transaction, and its promise resolves once that transaction is committed
 * (see environment.ts).
 */
export class LmdbSpoolStore implements SpoolStore {
  readonly #root: RootDatabase
  readonly #spool: Database<Buffer, number>
  readonly #totals: Database<number, string>
  #nextSeq: number
  #bytes: number

  constructor(root: RootDatabase) {
    this.#root = root
    this.#spool = database<Buffer, number>(root, 'spool', { encoding: 'binary' })
    this.#totals = database<number, string>(root, 'spool-bytes')
    moveLegacyMeta(root, (key) => key === LEGACY_BYTES_KEY, (_key, value) => this.#totals.put(BYTES_KEY, value as number))
    let last = 0
    for (const key of this.#spool.getKeys({ reverse: true, limit: 1 })) last = key
    this.#nextSeq = last + 1
    this.#bytes = heldBytes(this.#totals)
  }

  get nextSeq(): number {
    return this.#nextSeq
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Entries held (an lmdb stat: no scan). */
  get entries(): number {
    return (this.#spool.getStats() as { entryCount: number }).entryCount
  }

  sizeOf(entry: SpoolEntry): number {
    return entrySize(entry)
  }

  append(entries: readonly SpoolEntry[], alongside?: () => void): Promise<number> {
    const spool = this.#spool
    const totals = this.#totals
    const values = entries.map(encodeEntry)
    const firstSeq = this.#nextSeq
    this.#nextSeq += values.length
    let added = 0
    for (const value of values) added += value.byteLength
    this.#bytes += added
    return this.#root
      .transaction(() => {
        alongside?.()
        values.forEach((value, i) => spool.put(firstSeq + i, value))
        totals.put(BYTES_KEY, heldBytes(totals) + added)
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

  *read(after: number, before?: number): Generator<SpooledEntry> {
    const range = this.#spool.getRange(before === undefined ? { start: after + 1 } : { start: after + 1, end: before })
    for (const { key, value } of range) yield decodeEntry(key, value)
  }

  async trim(shipped: readonly SpoolSlot[]): Promise<void> {
    if (shipped.length === 0) return
    const spool = this.#spool
    const totals = this.#totals
    let freed = 0
    for (const entry of shipped) freed += entry.bytes
    await this.#root.transaction(() => {
      for (const entry of shipped) spool.remove(entry.seq)
      totals.put(BYTES_KEY, Math.max(0, heldBytes(totals) - freed))
    })
    this.#bytes = Math.max(0, this.#bytes - freed)
  }
}
