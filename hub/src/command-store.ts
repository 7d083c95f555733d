import type { CommandRecord, CommandStatus } from './command-record.js'
import type { Store } from './store.js'

/** The highest key component lmdb orders after every timestamp and id we store. */
const END = '\uffff'

/**
 * Command records and their indexes in the store. Every change goes through `write`, which keeps
 * the indexes in step with the record's status in the same transaction.
 */
export class CommandStore {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  get(device: string, id: string): CommandRecord | undefined {
    return this.#store.commands.get([device, id])
  }

  /**
   * Writes a record, new or changed, and keeps its indexes in step with its status; resolves once
   * durable. The indexes follow the stored record, not the caller's idea of it, so a change whose
   * write failed is made good by the record's next write. One child transaction: a write that fails
   * half-way (lmdb-js commits whatever a plain `transaction` callback did before it threw) leaves
   * nothing behind.
   */
  write(after: CommandRecord): Promise<void> {
    const { commands, commandOrder, commandQueue, commandExpiry, commandSent, commandBatches } = this.#store
    return this.#store.root.childTransaction(() => {
      const before = commands.get([after.device, after.id])
      const was = (status: CommandStatus): boolean => before?.status === status
      commands.put([after.device, after.id], after)
      if (before === undefined) {
        commandOrder.put([after.device, after.createdAt, after.id], null)
        if (after.batch !== undefined) commandBatches.put([after.batch, after.device], after.id)
      }
      if (was('queued') !== (after.status === 'queued')) {
        const queueKey: [string, number, string] = [after.device, after.createdAt, after.id]
        const expiryKey: [number, string, string] | undefined =
          after.expiresAt === undefined ? undefined : [after.expiresAt, after.device, after.id]
        if (after.status === 'queued') {
          commandQueue.put(queueKey, null)
          if (expiryKey !== undefined) commandExpiry.put(expiryKey, null)
        } else {
          commandQueue.remove(queueKey)
          if (expiryKey !== undefined) commandExpiry.remove(expiryKey)
        }
      }
      if (was('sent') !== (after.status === 'sent')) {
        if (after.status === 'sent') commandSent.put([after.device, after.id], (after.sentAt ?? after.createdAt) + after.timeoutMs)
        else commandSent.remove([after.device, after.id])
      }
    })
  }

  /** A device's queued commands, oldest first. */
  queued(device: string): CommandRecord[] {
    const records: CommandRecord[] = []
    for (const [, , id] of this.#store.commandQueue.getKeys({ start: [device], end: [device, Number.MAX_SAFE_INTEGER, END] })) {
      const record = this.get(device, id)
      if (record !== undefined) records.push(record)
    }
    return records
  }

  /** How many commands each device has queued (read once at start). */
  queuedCounts(): Map<string, number> {
    const counts = new Map<string, number>()
    for (const [device] of this.#store.commandQueue.getKeys()) counts.set(device, (counts.get(device) ?? 0) + 1)
    return counts
  }

  /** Queued commands whose TTL ended at or before `now`. */
  expiredBy(now: number, limit: number): CommandRecord[] {
    const records: CommandRecord[] = []
    for (const [, device, id] of this.#store.commandExpiry.getKeys({ end: [now, END, END], limit })) {
      const record = this.get(device, id)
      if (record !== undefined) records.push(record)
    }
    return records
  }

  /** Every sent command waiting for its result (for recovery after a restart). */
  sent(): CommandRecord[] {
    const records: CommandRecord[] = []
    for (const [device, id] of this.#store.commandSent.getKeys()) {
      const record = this.get(device, id)
      if (record !== undefined) records.push(record)
    }
    return records
  }

  /** A device's commands, newest first, those `accept` takes (default all), at most `limit`. */
  list(device: string, accept: ((record: CommandRecord) => boolean) | undefined, limit: number): CommandRecord[] {
    const records: CommandRecord[] = []
    for (const [, , id] of this.#store.commandOrder.getKeys({ start: [device, Number.MAX_SAFE_INTEGER, END], end: [device], reverse: true })) {
      const record = this.get(device, id)
      if (record === undefined || (accept !== undefined && !accept(record))) continue
      records.push(record)
      if (records.length >= limit) break
    }
    return records
  }

  /** The commands of a fan-out. */
  *batch(batch: string): Generator<CommandRecord> {
    for (const { key, value } of this.#store.commandBatches.getRange({ start: [batch], end: [batch, END] })) {
      const record = this.get(key[1], value)
      if (record !== undefined) yield record
    }
  }
}
