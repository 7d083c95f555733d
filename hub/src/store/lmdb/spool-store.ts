import type { Database, RootDatabase } from 'lmdb'
import type { SpoolStore } from '../interfaces.js'
import type { SpooledEntry, SpoolEntry, SpoolRun } from '../records.js'
import { database, moveLegacyMeta } from './environment.js'

/** The keys of the byte total and the entry count in `spool-bytes` (hub 0.1 kept the bytes in `meta` as `spool.bytes`). */
const BYTES_KEY = 'total'
const ENTRIES_KEY = 'entries'
const LEGACY_BYTES_KEY = 'spool.bytes'

/** A committed total; read inside a write transaction it includes that transaction's changes. */
const held = (totals: Database<number, string>, key: string): number => totals.get(key) ?? 0

/*
 * Layout. Each append is one value, a group, keyed by the seq of its last entry:
 *   [u8 0][u32 entries][u32 bytes of the whole value] then per entry
 *   [u8 id length][id bytes][f64 receivedAt][u32 frame length][frame bytes], numbers big-endian.
 * The head says what a trim needs without copying the value out of lmdb.
 * One put per commit and one remove per shipped group, however many frames: per-frame keys cost
 * lmdb more than the rest of the commit. Hub 0.1 to 0.3 kept one entry per key, [u8 id length][id
 * bytes][f64 receivedAt][frame bytes], keyed by its seq; ids are 1 to 64 characters, so a first
 * byte of 0 tells a group from such an entry, which reads as a group of one.
 * Keeping the device's own bytes means ingest never re-encodes a reading, and the spool holds
 * exactly what was acknowledged.
 */
const GROUP = 0
const GROUP_HEAD_BYTES = 9

/** Bytes of one entry in a group. Device ids are ASCII (docs/protocol.md), so one char is one byte. */
const entryBytes = (entry: SpoolEntry): number => 1 + entry.deviceId.length + 8 + 4 + entry.frame.byteLength

function encodeGroup(entries: readonly SpoolEntry[]): Buffer {
  let size = GROUP_HEAD_BYTES
  for (const entry of entries) size += entryBytes(entry)
  const value = Buffer.allocUnsafe(size)
  value[0] = GROUP
  value.writeUInt32BE(entries.length, 1)
  value.writeUInt32BE(size, 5)
  let at = GROUP_HEAD_BYTES
  for (const { deviceId, receivedAt, frame } of entries) {
    value[at] = deviceId.length
    value.write(deviceId, at + 1, 'latin1')
    at += 1 + deviceId.length
    value.writeDoubleBE(receivedAt, at)
    value.writeUInt32BE(frame.byteLength, at + 8)
    value.set(frame, at + 12)
    at += 12 + frame.byteLength
  }
  return value
}

/** Entries of a stored value (a Buffer from lmdb): a group's count, or 1 for an entry of hub 0.3 and before. */
const entriesOf = (value: Buffer): number => (value[0] === GROUP ? value.readUInt32BE(1) : 1)

/** The entries of the value stored under `group` (its last seq), with seqs above `after` and below `before`. */
function* decodeGroup(group: number, value: Buffer, after: number, before: number): Generator<SpooledEntry> {
  if (value[0] !== GROUP) {
    const idLength = value[0] ?? 0
    if (group > after && group < before) {
      yield { seq: group, group, deviceId: value.toString('latin1', 1, 1 + idLength), receivedAt: value.readDoubleBE(1 + idLength), frame: value.subarray(1 + idLength + 8) }
    }
    return
  }
  const count = value.readUInt32BE(1)
  let at = GROUP_HEAD_BYTES
  for (let seq = group - count + 1; seq <= group && seq < before; seq++) {
    const idLength = value[at] ?? 0
    const frameAt = at + 1 + idLength + 12
    const frameEnd = frameAt + value.readUInt32BE(at + 1 + idLength + 8)
    if (seq > after) {
      yield { seq, group, deviceId: value.toString('latin1', at + 1, at + 1 + idLength), receivedAt: value.readDoubleBE(at + 1 + idLength), frame: value.subarray(frameAt, frameEnd) }
    }
    at = frameEnd
  }
}

/**
 * The spool in lmdb: groups of entries in `spool`, keyed by their last seq; the byte total and the
 * entry count in `spool-bytes`, kept in the same transactions as the data (exact after a crash).
 * Appends are group-committed: every append of one tick goes into one lmdb transaction, and its
 * promise resolves once that transaction is committed (see environment.ts).
 */
export class LmdbSpoolStore implements SpoolStore {
  readonly #root: RootDatabase
  readonly #spool: Database<Buffer, number>
  readonly #totals: Database<number, string>
  #nextSeq: number
  #bytes: number
  #entries: number
  /** Entries not yet shipped, of groups partly shipped (a batch ends inside most groups it takes). */
  readonly #unshipped = new Map<number, number>()

  constructor(root: RootDatabase) {
    this.#root = root
    this.#spool = database<Buffer, number>(root, 'spool', { encoding: 'binary' })
    this.#totals = database<number, string>(root, 'spool-bytes')
    moveLegacyMeta(root, (key) => key === LEGACY_BYTES_KEY, (_key, value) => this.#totals.put(BYTES_KEY, value as number))
    let last = 0
    for (const key of this.#spool.getKeys({ reverse: true, limit: 1 })) last = key
    this.#nextSeq = last + 1
    this.#bytes = held(this.#totals, BYTES_KEY)
    if (this.#totals.get(ENTRIES_KEY) === undefined) {
      // A spool of hub 0.3 or before: one entry per key, and no count kept.
      const entries = (this.#spool.getStats() as { entryCount: number }).entryCount
      this.#totals.putSync(ENTRIES_KEY, entries)
    }
    this.#entries = held(this.#totals, ENTRIES_KEY)
  }

  get nextSeq(): number {
    return this.#nextSeq
  }

  get bytes(): number {
    return this.#bytes
  }

  get entries(): number {
    return this.#entries
  }

  append(entries: readonly SpoolEntry[], alongside?: () => void): Promise<number> {
    const spool = this.#spool
    const totals = this.#totals
    const value = encodeGroup(entries)
    const count = entries.length
    const firstSeq = this.#nextSeq
    const group = firstSeq + count - 1
    this.#nextSeq += count
    const added = value.byteLength
    this.#bytes += added
    this.#entries += count
    return this.#root
      .transaction(() => {
        alongside?.()
        if (count > 0) spool.put(group, value)
        totals.put(BYTES_KEY, held(totals, BYTES_KEY) + added)
        totals.put(ENTRIES_KEY, held(totals, ENTRIES_KEY) + count)
      })
      .then(
        () => firstSeq,
        (err: unknown) => {
          // Nothing was stored: the bytes must not count toward the quota for good.
          this.#bytes -= added
          this.#entries -= count
          throw err
        },
      )
  }

  *read(after: number, before = Number.POSITIVE_INFINITY): Generator<SpooledEntry> {
    // A group's key is its last seq: the first group at or after `after + 1` holds it, if any does.
    for (const { key, value } of this.#spool.getRange({ start: after + 1 })) {
      if (key - entriesOf(value) + 1 >= before) return
      yield* decodeGroup(key, value, after, before)
    }
  }

  async trim(shipped: readonly SpoolRun[]): Promise<void> {
    const removed: number[] = []
    let bytes = 0
    let entries = 0
    for (const { group, entries: count } of shipped) {
      // getBinaryFast reads without a copy, into a buffer that the next read reuses: only the head counts.
      const value = this.#spool.getBinaryFast(group)
      if (value === undefined) continue
      const left = (this.#unshipped.get(group) ?? entriesOf(value)) - count
      if (left > 0) {
        this.#unshipped.set(group, left)
        continue
      }
      this.#unshipped.delete(group)
      removed.push(group)
      entries += entriesOf(value)
      bytes += value[0] === GROUP ? value.readUInt32BE(5) : (this.#spool.getBinary(group)?.byteLength ?? 0)
    }
    if (removed.length === 0) return
    const spool = this.#spool
    const totals = this.#totals
    await this.#root.transaction(() => {
      for (const group of removed) spool.remove(group)
      totals.put(BYTES_KEY, Math.max(0, held(totals, BYTES_KEY) - bytes))
      totals.put(ENTRIES_KEY, Math.max(0, held(totals, ENTRIES_KEY) - entries))
    })
    this.#bytes = Math.max(0, this.#bytes - bytes)
    this.#entries = Math.max(0, this.#entries - entries)
  }
}
