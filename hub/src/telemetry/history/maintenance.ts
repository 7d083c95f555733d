// The history's upkeep, in bounded slices on the main thread: retention (by age, then by size,
// oldest device-hours first) and compaction (a closed device-hour's many small blocks merged into
// a few large ones, so that a long range reads a few blocks per hour instead of one per frame).
import type { Clock } from '@fleetgate/device-sdk'
import type { Logger } from '../../logger.js'
import type { HistoryBlock, HistoryHour, HistoryStore, StoredHistoryBlock } from '../../store/index.js'
import { blockHeader, decodeBlock, encodeBlock } from './block-codec.js'
import { concatColumns, type Columns } from './columns.js'
import { HISTORY_HOUR_MS, nextTurn, rankOf } from './history-query.js'
import { MergeWindow } from './merge-window.js'

/** The history's tuning knobs; defaults in HISTORY_DEFAULTS. */
export interface HistoryTuning {
  /** How often upkeep looks for work while there is none, in ms; default 1,000. */
  readonly upkeepIntervalMs: number
  /** Blocks one slice of upkeep removes or reads at most before it yields the event loop; default 256. */
  readonly sliceBlocks: number
  /** A query works this long at most before it yields the event loop, in ms; default 8. */
  readonly querySliceMs: number
  /** A device-hour is compacted once it ended this long ago, in ms (late frames after that make new blocks); default 60,000. */
  readonly compactAfterMs: number
  /** Rows per compacted block, about (a block is closed at the first merge step past it); default 16,384. */
  readonly compactBlockRows: number
  /** Device-hours holding more readings than this are left as written (their frames are large already, or the device very chatty); default 262,144. */
  readonly compactMaxReadings: number
}

/** The defaults of HistoryTuning. */
export const HISTORY_DEFAULTS: HistoryTuning = Object.freeze({
  upkeepIntervalMs: 1000,
  sliceBlocks: 256,
  querySliceMs: 8,
  compactAfterMs: 60_000,
  compactBlockRows: 16_384,
  compactMaxReadings: 262_144,
})

/** Why readings left the history. */
export type TrimReason = 'age' | 'size'

/** Figures upkeep reports. */
export interface HistoryCounters {
  /** Readings removed by retention (docs/telemetry.md: the oldest go first). */
  historyTrimmed(reason: TrimReason, readings: number): void
  /** A device-hour whose blocks were merged into a few large ones. */
  historyCompacted(): void
}

/** What upkeep needs. */
export interface MaintenanceOptions {
  readonly store: HistoryStore
  readonly clock: Clock
  readonly log: Logger
  readonly counters: HistoryCounters
  /** `FLEETGATE_HISTORY_RETENTION`, in ms. */
  readonly retentionMs: number
  /** `FLEETGATE_HISTORY_MAX_BYTES`. */
  readonly maxBytes: number
  readonly tuning: HistoryTuning
}

/** Retention and compaction of the history, one bounded slice at a time. */
export class HistoryMaintenance {
  readonly #options: MaintenanceOptions
  /** Device-hours written since start (or found by the index scan) that may need compacting, by hour. */
  readonly #touched = new Map<number, Set<string>>()
  /** When each device-hour was last compacted (Unix ms), so that one that keeps getting frames is compacted once per `compactAfterMs`. */
  readonly #compactedAt = new Map<string, number>()
  /** Where the scan of the index left off (device-hours written before this start); null once done. */
  #scanAfter: Pick<HistoryHour, 'hourMs' | 'deviceId'> | undefined | null = undefined
  #running: Promise<void> | undefined
  #stopped = false
  #wake: (() => void) | undefined

  constructor(options: MaintenanceOptions) {
    this.#options = options
  }

  /** Notes device-hours that blocks were just written to, for compaction once they close. */
  touched(hours: Iterable<Pick<HistoryHour, 'hourMs' | 'deviceId'>>): void {
    for (const { hourMs, deviceId } of hours) {
      let devices = this.#touched.get(hourMs)
      if (devices === undefined) {
        devices = new Set()
        this.#touched.set(hourMs, devices)
      }
      devices.add(deviceId)
    }
  }

  start(): void {
    this.#running ??= this.#loop().catch((err: unknown) => this.#options.log.error({ err }, 'history upkeep stopped'))
  }

  /** Stops after the slice under way; a compaction cut short leaves blocks that reads merge and the next start compacts. */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#wake?.()
    await this.#running
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      let worked = false
      try {
        worked = (await this.#trim()) || (await this.#compactOne()) || this.#scan()
      } catch (err) {
        this.#options.log.error({ err }, 'history upkeep failed; retrying')
      }
      if (worked) await nextTurn()
      else await this.#sleep()
    }
  }

  #sleep(): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#options.clock.setTimeout(() => {
        this.#wake = undefined
        resolve()
      }, this.#options.tuning.upkeepIntervalMs)
      this.#wake = () => {
        this.#options.clock.clearTimeout(timer)
        this.#wake = undefined
        resolve()
      }
    })
  }

  /**
   * One slice of retention (docs/telemetry.md): device-hours that ended more than the retention ago, then,
   * while the history is over its size bound, the oldest device-hours whatever their age. At most
   * `sliceBlocks` blocks; true when it removed any.
   */
  async #trim(): Promise<boolean> {
    const { store, clock, retentionMs, maxBytes, tuning, counters } = this.#options
    const cutoff = clock.now() - retentionMs
    let budget = tuning.sliceBlocks
    for (const hour of store.hours(undefined, 16)) {
      const reason = hour.hourMs + HISTORY_HOUR_MS <= cutoff ? 'age' : store.bytes > maxBytes ? 'size' : undefined
      if (reason === undefined) break
      const blocks: StoredHistoryBlock[] = []
      for (const block of store.read(hour.deviceId, hour.hourMs, hour.hourMs)) {
        blocks.push(block)
        if (blocks.length === budget) break
      }
      const readings = blocks.map((block) => blockHeader(block.value).rows)
      await store.remove(blocks, readings)
      counters.historyTrimmed(reason, readings.reduce((sum, n) => sum + n, 0))
      budget -= blocks.length
      if (budget <= 0 || this.#stopped) break
    }
    return budget < tuning.sliceBlocks
  }

  /** Whether a device-hour is worth compacting now: closed, small blocks, not too large as a whole. */
  #due(hour: HistoryHour): boolean {
    const { tuning, clock } = this.#options
    return (
      hour.blocks >= 2 &&
      hour.hourMs + HISTORY_HOUR_MS + tuning.compactAfterMs <= clock.now() &&
      hour.readings <= tuning.compactMaxReadings &&
      hour.readings < (hour.blocks * tuning.compactBlockRows) / 4
    )
  }

  /**
   * Compacts the oldest closed device-hour that was written to; false when none is due. One
   * compacted within the last `compactAfterMs` waits (it stays noted) until that has passed.
   */
  async #compactOne(): Promise<boolean> {
    const now = this.#options.clock.now()
    const { compactAfterMs } = this.#options.tuning
    for (const [key, at] of this.#compactedAt) if (at <= now - compactAfterMs) this.#compactedAt.delete(key)
    for (const [hourMs, devices] of [...this.#touched].sort(([a], [b]) => a - b)) {
      if (hourMs > now - compactAfterMs - HISTORY_HOUR_MS) return false
      for (const deviceId of devices) {
        if (this.#compactedAt.has(`${hourMs}\0${deviceId}`)) continue
        devices.delete(deviceId)
        if (devices.size === 0) this.#touched.delete(hourMs)
        const hour = this.#options.store.hour(hourMs, deviceId)
        if (hour !== undefined && this.#due(hour)) {
          this.#compactedAt.set(`${hourMs}\0${deviceId}`, now)
          await this.#compact(hour)
          return true
        }
      }
    }
    return false
  }

  /** Reads one page of the time index for device-hours written before this start that are due. */
  #scan(): boolean {
    if (this.#scanAfter === null) return false
    const page = this.#options.store.hours(this.#scanAfter, this.#options.tuning.sliceBlocks)
    this.touched(page.filter((hour) => hour.blocks >= 2))
    const last = page[page.length - 1]
    this.#scanAfter = last === undefined ? null : { hourMs: last.hourMs, deviceId: last.deviceId }
    return page.length > 0
  }

  /**
   * Merges the blocks of a device-hour above its `settledOrder`, as one snapshot sees them, into
   * blocks of about `compactBlockRows` rows, written at the highest order merged (so that a block
   * written after the snapshot still wins a field over them), then removes the merged blocks.
   * Settled blocks stay as they are, so a device that keeps sending into a closed hour costs a
   * rewrite of what it sent lately, not of the hour; what a compaction writes is settled once it
   * holds a quarter of a block's rows, else the next compaction takes it again with what came since.
   * Between the write and the last removal both copies are there: reads merge them into the same
   * points. Ingest blocks at or below `settledOrder` are what a crash left of an earlier
   * compaction's removal (their points are in its blocks): they are removed, not merged again.
   */
  async #compact(hour: HistoryHour): Promise<void> {
    const { store, tuning, counters } = this.#options
    const merged: StoredHistoryBlock[] = []
    const readings: number[] = []
    const leftovers: StoredHistoryBlock[] = []
    const out: HistoryBlock[] = []
    const window = new MergeWindow()
    let chunk: Columns[] = []
    let chunkRows = 0
    let rows = 0
    let order = hour.settledOrder
    let part = 0
    const close = (): void => {
      if (chunkRows === 0) return
      // The window's takes follow each other in time, without a point in common: they join as they are.
      const columns = concatColumns(chunk)
      out.push({ deviceId: hour.deviceId, hourMs: hour.hourMs, minTs: columns.ts[0] as number, readings: columns.rows, value: encodeBlock(columns) })
      rows += columns.rows
      chunk = []
      chunkRows = 0
    }
    const add = (columns: Columns | undefined): void => {
      if (columns === undefined) return
      chunk.push(columns)
      chunkRows += columns.rows
      if (chunkRows >= tuning.compactBlockRows) close()
    }
    let seen = 0
    for (const block of store.read(hour.deviceId, hour.hourMs, hour.hourMs)) {
      if (++seen % tuning.sliceBlocks === 0) {
        await nextTurn()
        if (this.#stopped) return
      }
      if (block.order <= hour.settledOrder) {
        if (block.part === 0) leftovers.push(block)
        continue
      }
      merged.push(block)
      readings.push(blockHeader(block.value).rows)
      // A new key, never one of the blocks it replaces: the highest order merged, one part above.
      if (block.order > order) [order, part] = [block.order, block.part + 1]
      else if (block.order === order) part = Math.max(part, block.part + 1)
      add(window.take(block.minTs))
      window.push(decodeBlock(block.value), rankOf(block.order, block.part))
    }
    add(window.take(Number.POSITIVE_INFINITY))
    close()
    if (merged.length >= 2) await store.writeCompacted(out, order, part, rows >= tuning.compactBlockRows / 4)
    else merged.splice(0)
    const removed = [...merged, ...leftovers]
    const removedReadings = [...readings.slice(0, merged.length), ...leftovers.map((block) => blockHeader(block.value).rows)]
    for (let i = 0; i < removed.length; i += tuning.sliceBlocks) {
      await store.remove(removed.slice(i, i + tuning.sliceBlocks), removedReadings.slice(i, i + tuning.sliceBlocks))
      if (this.#stopped) return
      await nextTurn()
    }
    if (merged.length === 0) return
    counters.historyCompacted()
    this.#options.log.debug({ deviceId: hour.deviceId, hourMs: hour.hourMs, blocks: merged.length, into: out.length }, 'history device-hour compacted')
  }
}
