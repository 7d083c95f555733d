import type { Database, RootDatabase } from 'lmdb'
import type { HistoryBlock, HistoryHour, HistoryStore, StoredHistoryBlock } from '../interfaces.js'
import { database } from './environment.js'

/**
 * Bytes a block counts for beyond its value: its key (device id, four numbers in lmdb's ordered
 * encoding) and its index share, rounded up. FLEETGATE_HISTORY_MAX_BYTES bounds this count.
 */
const KEY_OVERHEAD_BYTES = 64

/** Keys in `history-meta`: the byte total and the next write order. */
const BYTES_KEY = 'bytes'
const ORDER_KEY = 'order'

/** A block's key: device, hour, earliest ts, write order, part (see docs/history.md). */
type BlockKey = [deviceId: string, hourMs: number, minTs: number, order: number, part: number]
/** A time index key: hour first, so that a walk from the start meets the oldest device-hours first. */
type HourKey = [hourMs: number, deviceId: string]
/** A time index value: bytes, readings, blocks, and the order up to which blocks are settled (-1: none). */
type HourValue = [bytes: number, readings: number, blocks: number, settledOrder: number]

const hourOf = (hourMs: number, deviceId: string, value: HourValue): HistoryHour => ({
  hourMs,
  deviceId,
  bytes: value[0],
  readings: value[1],
  blocks: value[2],
  settledOrder: value[3] ?? -1,
})

const sizeOf = (value: Uint8Array): number => value.byteLength + KEY_OVERHEAD_BYTES

/**
 * The history in lmdb: blocks in `history` by [device, hour, minTs, order, part], the time index
 * in `history-hours` by [hour, device], the byte total and the order counter in `history-meta`,
 * all changed in the same transactions.
 */
export class LmdbHistoryStore implements HistoryStore {
  readonly #root: RootDatabase
  readonly #blocks: Database<Uint8Array, BlockKey>
  readonly #hours: Database<HourValue, HourKey>
  readonly #meta: Database<number, string>

  constructor(root: RootDatabase) {
    this.#root = root
    this.#blocks = database<Uint8Array, BlockKey>(root, 'history', { encoding: 'binary' })
    this.#hours = database<HourValue, HourKey>(root, 'history-hours')
    this.#meta = database<number, string>(root, 'history-meta')
  }

  get bytes(): number {
    return this.#meta.get(BYTES_KEY) ?? 0
  }

  write(blocks: readonly HistoryBlock[]): void {
    if (blocks.length === 0) return
    let order = this.#meta.get(ORDER_KEY) ?? 0
    order++
    // One order per commit: a commit has one block per device-hour (History.blocks), so its keys
    // differ by device, hour or earliest ts.
    for (const block of blocks) this.#blocks.put([block.deviceId, block.hourMs, block.minTs, order, 0], block.value)
    this.#meta.put(ORDER_KEY, order)
    this.#account(blocks, 1)
  }

  append(blocks: readonly HistoryBlock[]): Promise<void> {
    return this.#root.transaction(() => this.write(blocks))
  }

  writeCompacted(blocks: readonly HistoryBlock[], order: number, part: number, settle: boolean): Promise<void> {
    return this.#root.transaction(() => {
      for (const block of blocks) this.#blocks.put([block.deviceId, block.hourMs, block.minTs, order, part], block.value)
      this.#account(blocks, 1, settle ? order : undefined)
    })
  }

  *read(deviceId: string, fromHourMs: number, toHourMs: number): Generator<StoredHistoryBlock> {
    // lmdb's range iterator keeps its read snapshot until the walk ends, across turns of the event loop.
    for (const { key, value } of this.#blocks.getRange({ start: [deviceId, fromHourMs], end: [deviceId, toHourMs + 1] })) {
      yield { deviceId, hourMs: key[1], minTs: key[2], order: key[3], part: key[4], value }
    }
  }

  hour(hourMs: number, deviceId: string): HistoryHour | undefined {
    const value = this.#hours.get([hourMs, deviceId])
    return value === undefined ? undefined : hourOf(hourMs, deviceId, value)
  }

  hours(after: Pick<HistoryHour, 'hourMs' | 'deviceId'> | undefined, limit: number): HistoryHour[] {
    const out: HistoryHour[] = []
    const range = after === undefined ? { limit } : { start: [after.hourMs, after.deviceId] as HourKey, limit: limit + 1 }
    for (const { key, value } of this.#hours.getRange(range)) {
      if (after !== undefined && key[0] === after.hourMs && key[1] === after.deviceId) continue
      if (out.length === limit) break
      out.push(hourOf(key[0], key[1], value))
    }
    return out
  }

  async remove(blocks: readonly StoredHistoryBlock[], readings: readonly number[]): Promise<number> {
    let freed = 0
    await this.#root.transaction(() => {
      const removed: HistoryBlock[] = []
      blocks.forEach((block, i) => {
        // A block another change removed already is not counted twice.
        if (!this.#blocks.removeSync([block.deviceId, block.hourMs, block.minTs, block.order, block.part])) return
        removed.push({ ...block, readings: readings[i] ?? 0 })
      })
      freed = this.#account(removed, -1)
    })
    return freed
  }

  /**
   * Adds (`sign` 1) or subtracts (-1) blocks in the time index and the byte total, and records the
   * order a compaction settled; returns the bytes. Inside a transaction.
   */
  #account(blocks: readonly HistoryBlock[], sign: 1 | -1, settledOrder?: number): number {
    const changes = new Map<string, { key: HourKey; value: HourValue }>()
    let total = 0
    for (const block of blocks) {
      const bytes = sizeOf(block.value)
      total += bytes
      const id = `${block.hourMs}\0${block.deviceId}`
      let change = changes.get(id)
      if (change === undefined) {
        change = { key: [block.hourMs, block.deviceId], value: [0, 0, 0, -1] }
        changes.set(id, change)
      }
      change.value[0] += bytes
      change.value[1] += block.readings
      change.value[2] += 1
    }
    for (const { key, value } of changes.values()) {
      const before = this.#hours.get(key) ?? [0, 0, 0, -1]
      const after: HourValue = [before[0] + sign * value[0], before[1] + sign * value[1], before[2] + sign * value[2], settledOrder ?? before[3] ?? -1]
      if (after[2] <= 0) this.#hours.remove(key)
      else this.#hours.put(key, after)
    }
    if (total > 0) this.#meta.put(BYTES_KEY, Math.max(0, (this.#meta.get(BYTES_KEY) ?? 0) + sign * total))
    return total
  }
}
