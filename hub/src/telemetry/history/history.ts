import type { Reading } from '@fleetgate/device-sdk'
import type { HistoryBlock } from '../../store/index.js'
import { tune } from '../../tuning.js'
import type { TelemetryPoint, TelemetryQuery, TelemetryRequest } from '../telemetry-query.js'
import { encodeBlock } from './block-codec.js'
import { columnsOfReadings } from './columns.js'
import { aggregatePoints, hourOf, rawPoints, rowsOf } from './history-query.js'
import { HISTORY_DEFAULTS, HistoryMaintenance, type HistoryTuning, type MaintenanceOptions } from './maintenance.js'

/** What the history is built from: what upkeep needs, with tuning knobs of which any may be left to HISTORY_DEFAULTS. */
export type HistoryOptions = Omit<MaintenanceOptions, 'tuning'> & { readonly tuning?: Partial<HistoryTuning> }

/** A frame's readings, as a commit hands them over. */
export interface HistoryFrame {
  readonly deviceId: string
  readonly readings: readonly Reading[]
}

/**
 * The embedded telemetry history (docs/telemetry.md; layout in docs/history.md): ingest encodes each
 * committed frame's readings as one block per hour they fall in (one in the common case) and
 * writes them in the commit that acks the frame; queries read a device's blocks of the range's
 * hours and merge them into points; upkeep trims and compacts in bounded slices.
 */
export class History implements TelemetryQuery {
  readonly name = 'history'
  readonly #options: HistoryOptions
  readonly #tuning: HistoryTuning
  readonly #maintenance: HistoryMaintenance

  constructor(options: HistoryOptions) {
    this.#options = options
    this.#tuning = tune('History', HISTORY_DEFAULTS, options.tuning)
    this.#maintenance = new HistoryMaintenance({ ...options, tuning: this.#tuning })
  }

  /** Bytes held (gauge `fleetgate_history_bytes`). */
  get bytes(): number {
    return this.#options.store.bytes
  }

  /**
   * The blocks of frames about to be committed: one per device and hour the commit's readings fall
   * in, its readings in frame order (a later reading wins a field at the same point). A block's key
   * holds its device, hour, earliest ts and the commit's order, so two blocks of one device-hour in
   * one commit would take the same key: one would overwrite the other.
   */
  blocks(frames: readonly HistoryFrame[]): HistoryBlock[] {
    const groups = new Map<string, { deviceId: string; hourMs: number; parts: Array<readonly Reading[]> }>()
    const add = (deviceId: string, hourMs: number, readings: readonly Reading[]): void => {
      const key = `${deviceId}\0${hourMs}`
      const group = groups.get(key)
      if (group === undefined) groups.set(key, { deviceId, hourMs, parts: [readings] })
      else group.parts.push(readings)
    }
    for (const { deviceId, readings } of frames) {
      const first = readings[0]
      if (first === undefined) continue
      const hourMs = hourOf(first.ts)
      let oneHour = true
      for (const reading of readings) if (hourOf(reading.ts) !== hourMs) oneHour = false
      if (oneHour) {
        add(deviceId, hourMs, readings)
        continue
      }
      const byHour = new Map<number, Reading[]>()
      for (const reading of readings) {
        const hour = hourOf(reading.ts)
        const group = byHour.get(hour)
        if (group === undefined) byHour.set(hour, [reading])
        else group.push(reading)
      }
      for (const [hour, group] of byHour) add(deviceId, hour, group)
    }
    const blocks: HistoryBlock[] = []
    for (const { deviceId, hourMs, parts } of groups.values()) blocks.push(this.#block(deviceId, hourMs, parts.length === 1 ? (parts[0] as readonly Reading[]) : parts.flat()))
    return blocks
  }

  /** Writes blocks in a transaction of their own; resolves once they are durable. */
  async append(blocks: readonly HistoryBlock[]): Promise<void> {
    await this.#options.store.append(blocks)
    this.committed(blocks)
  }

  /** Writes blocks inside the transaction open now (the spool's, see commit-target.ts); call `committed` once it commits. */
  writeAlongside(blocks: readonly HistoryBlock[]): void {
    this.#options.store.write(blocks)
  }

  /** Tells upkeep which device-hours a commit wrote to (after it committed). */
  committed(blocks: readonly HistoryBlock[]): void {
    this.#maintenance.touched(blocks)
  }

  run(request: TelemetryRequest): Promise<TelemetryPoint[]> {
    const rows = rowsOf(this.#options.store, request, this.#tuning.querySliceMs)
    return request.every === undefined ? rawPoints(rows, request) : aggregatePoints(rows, request, request.every)
  }

  /** Starts retention and compaction. */
  start(): void {
    this.#maintenance.start()
  }

  /** Stops upkeep after its slice under way. */
  stop(): Promise<void> {
    return this.#maintenance.stop()
  }

  #block(deviceId: string, hourMs: number, readings: readonly Reading[]): HistoryBlock {
    const columns = columnsOfReadings(readings)
    return { deviceId, hourMs, minTs: columns.ts[0] as number, readings: columns.rows, value: encodeBlock(columns) }
  }
}
