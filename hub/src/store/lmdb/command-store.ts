import type { Database, RootDatabase } from 'lmdb'
import type { CommandStore, InsertOptions, InsertOutcome } from '../interfaces.js'
import { zeroCounts, type CommandRecord, type CommandStatus } from '../records.js'
import { database } from './environment.js'

/** The highest key component lmdb orders after every timestamp and id we store. */
const END = '\uffff'

/**
 * Command records and their indexes in lmdb, one named database each. Every change goes through
 * `write`, which keeps the indexes in step with the record's status in the same transaction.
 * Reads are synchronous lmdb reads (the memory map), handed out as settled promises.
 */
export class LmdbCommandStore implements CommandStore {
  readonly #root: RootDatabase
  /** [device, command id] -> command record */
  readonly #commands: Database<CommandRecord, [string, string]>
  /** [device, createdAt, command id] -> null: a device's commands in creation order */
  readonly #order: Database<null, [string, number, string]>
  /** [device, createdAt, command id] -> null: the commands waiting for their device */
  readonly #queue: Database<null, [string, number, string]>
  /** [expiresAt, device, command id] -> null: queued commands by when they expire */
  readonly #expiry: Database<null, [number, string, string]>
  /** [device, command id] -> deadline (Unix ms): sent commands waiting for their result */
  readonly #sent: Database<number, [string, string]>
  /** [batch, device] -> command id: the members of a fan-out */
  readonly #batches: Database<string, [string, string]>

  constructor(root: RootDatabase) {
    this.#root = root
    this.#commands = database<CommandRecord, [string, string]>(root, 'commands')
    this.#order = database<null, [string, number, string]>(root, 'command-order')
    this.#queue = database<null, [string, number, string]>(root, 'command-queue')
    this.#expiry = database<null, [number, string, string]>(root, 'command-expiry')
    this.#sent = database<number, [string, string]>(root, 'command-sent')
    this.#batches = database<string, [string, string]>(root, 'command-batches')
  }

  get(device: string, id: string): Promise<CommandRecord | undefined> {
    return Promise.resolve(this.#get(device, id))
  }

  /**
   * One child transaction: a write that fails half-way (lmdb-js commits whatever a plain
   * `transaction` callback did before it threw) leaves nothing behind.
   */
  write(after: CommandRecord): Promise<void> {
    return this.#root.childTransaction(() => {
      this.#put(this.#get(after.device, after.id), after)
    })
  }

  /** One process writes this store, and the checks run inside the write transaction. */
  insertIfAbsent(record: CommandRecord, options: InsertOptions = {}): Promise<InsertOutcome> {
    const { maxQueued } = options
    return this.#root.childTransaction((): InsertOutcome => {
      const before = this.#get(record.device, record.id)
      if (before !== undefined) return { kind: 'exists', record: before }
      if (maxQueued !== undefined && record.status === 'queued' && this.#queuedOf(record.device, maxQueued) >= maxQueued) return { kind: 'queue_full' }
      this.#put(undefined, record)
      return { kind: 'stored' }
    })
  }

  writeIf(after: CommandRecord, expected: CommandStatus): Promise<boolean> {
    return this.#root.childTransaction(() => {
      const before = this.#get(after.device, after.id)
      if (before?.status !== expected) return false
      this.#put(before, after)
      return true
    })
  }

  queued(device: string): Promise<CommandRecord[]> {
    const records: CommandRecord[] = []
    for (const [, , id] of this.#queue.getKeys({ start: [device], end: [device, Number.MAX_SAFE_INTEGER, END] })) {
      const record = this.#get(device, id)
      if (record !== undefined) records.push(record)
    }
    return Promise.resolve(records)
  }

  queuedAmong(devices: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(devices.filter((device) => this.#queuedOf(device, 1) > 0)))
  }

  queuedCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>()
    for (const [device] of this.#queue.getKeys()) counts.set(device, (counts.get(device) ?? 0) + 1)
    return Promise.resolve(counts)
  }

  expiredBy(now: number, limit: number): Promise<CommandRecord[]> {
    const records: CommandRecord[] = []
    for (const [, device, id] of this.#expiry.getKeys({ end: [now, END, END], limit })) {
      const record = this.#get(device, id)
      if (record !== undefined) records.push(record)
    }
    return Promise.resolve(records)
  }

  sent(): Promise<CommandRecord[]> {
    const records: CommandRecord[] = []
    for (const [device, id] of this.#sent.getKeys()) {
      const record = this.#get(device, id)
      if (record !== undefined) records.push(record)
    }
    return Promise.resolve(records)
  }

  /** One node: its own timers end its sent commands, so none is orphaned. */
  orphaned(): Promise<CommandRecord[]> {
    return Promise.resolve([])
  }

  list(device: string, accept: ((record: CommandRecord) => boolean) | undefined, limit: number): Promise<CommandRecord[]> {
    const records: CommandRecord[] = []
    for (const [, , id] of this.#order.getKeys({ start: [device, Number.MAX_SAFE_INTEGER, END], end: [device], reverse: true })) {
      const record = this.#get(device, id)
      if (record === undefined || (accept !== undefined && !accept(record))) continue
      records.push(record)
      if (records.length >= limit) break
    }
    return Promise.resolve(records)
  }

  /** Counted by reading the batch's records: a poll of a running batch is served from CommandBatches' live counts. */
  batchCounts(batch: string): Promise<Record<CommandStatus, number>> {
    const counts = zeroCounts()
    for (const { key, value } of this.#batches.getRange({ start: [batch], end: [batch, END] })) {
      const record = this.#get(key[1], value)
      if (record !== undefined) counts[record.status]++
    }
    return Promise.resolve(counts)
  }

  /** How many commands `device` has queued, counted up to `upTo`. */
  #queuedOf(device: string, upTo: number): number {
    return this.#queue.getCount({ start: [device], end: [device, Number.MAX_SAFE_INTEGER, END], limit: upTo })
  }

  #get(device: string, id: string): CommandRecord | undefined {
    return this.#commands.get([device, id])
  }

  /**
   * Writes `after` in place of `before`, as stored and read in this transaction: the index entries
   * of `before` go (by its own keys: a change may drop `expiresAt`) and those of `after` come.
   */
  #put(before: CommandRecord | undefined, after: CommandRecord): void {
    this.#commands.put([after.device, after.id], after)
    if (before === undefined) {
      this.#order.put([after.device, after.createdAt, after.id], null)
      if (after.batch !== undefined) this.#batches.put([after.batch, after.device], after.id)
    }
    if (before?.status === 'queued') {
      this.#queue.remove([before.device, before.createdAt, before.id])
      if (before.expiresAt !== undefined) this.#expiry.remove([before.expiresAt, before.device, before.id])
    }
    if (after.status === 'queued') {
      this.#queue.put([after.device, after.createdAt, after.id], null)
      if (after.expiresAt !== undefined) this.#expiry.put([after.expiresAt, after.device, after.id], null)
    }
    if (after.status === 'sent') this.#sent.put([after.device, after.id], (after.sentAt ?? after.createdAt) + after.timeoutMs)
    else if (before?.status === 'sent') this.#sent.remove([after.device, after.id])
  }
}
