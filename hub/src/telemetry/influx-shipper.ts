import { Backoff, type Clock, type Reading } from '@fleetgate/device-sdk'
import { decodeDeviceFrame } from '@fleetgate/device-sdk/wire'
import type { DeviceRecord, Registry } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { SpoolRun, SpoolStore } from '../store/index.js'
import { tune } from '../tuning.js'
import type { DeadLetter } from './dead-letter.js'
import { LineBuffer, seriesKey, type LineRefusal } from './influx-line.js'
import type { InfluxWriter } from './influx-writer.js'
import type { HistoryFrame } from './history/index.js'
import { readingsOf } from './ingest.js'

/** docs/telemetry.md: the measurement telemetry lands in. */
export const TELEMETRY_MEASUREMENT = 'telemetry'

/** Figures the shipper reports (the dead letter counts its own). */
export interface ShipperCounters {
  shipped(points: number): void
  writeFailed(): void
}

/** The shipper's tuning knobs; defaults in SHIPPER_DEFAULTS. */
export interface ShipperTuning {
  /** Points per InfluxDB write at most (docs/telemetry.md: 5k batches); default 5,000. */
  readonly batchPoints: number
  /** A smaller batch is written once its oldest point waited this long, in ms; default 1,000. */
  readonly flushIntervalMs: number
  /** Batches written to InfluxDB at once (one write waits on InfluxDB, not on the hub); default 4. */
  readonly writesInFlight: number
  /**
   * Readings committed and not landed above which `lagging` holds commits (and so acks): three
   * times what the writes in flight carry, so a reachable InfluxDB that is slower than the devices
   * slows them down instead of the spool filling up to its quota; default 60,000.
   */
  readonly maxLagReadings: number
  /** Readings of committed frames kept in memory as lines (about 30 MB); beyond that, frames are read back from the spool; default 250,000. */
  readonly maxHotReadings: number
  /** First delay before a failed write is retried, in ms (doubling, full jitter); default 500. */
  readonly retryInitialMs: number
  /** Longest delay between retries of a failed write, in ms; default 30,000. */
  readonly retryMaxMs: number
  /** How long `stop` waits for writes under way, in ms; what does not land stays in the spool for next time; default 2,000. */
  readonly stopWaitMs: number
}

/** The defaults of ShipperTuning. */
export const SHIPPER_DEFAULTS: ShipperTuning = Object.freeze({
  batchPoints: 5000,
  flushIntervalMs: 1000,
  writesInFlight: 4,
  maxLagReadings: 60_000,
  maxHotReadings: 250_000,
  retryInitialMs: 500,
  retryMaxMs: 30_000,
  stopWaitMs: 2000,
})

/** What the shipper is built from. */
export interface ShipperOptions {
  readonly spool: SpoolStore
  readonly registry: Registry
  /** InfluxDB, or undefined when there is none: entries are then released once committed. */
  readonly writer: Pick<InfluxWriter, 'writeOrDeadLetter'> | undefined
  /**
   * Without InfluxDB, where the entries left in the spool by an earlier run go instead of being
   * released (the history's `append`); a write that fails is retried like an InfluxDB write.
   */
  readonly history?: (frames: readonly HistoryFrame[]) => Promise<void>
  readonly deadLetter: DeadLetter
  readonly log: Logger
  readonly counters: ShipperCounters
  /**
   * Called whenever ingest may go on with frames held back by the spool quota or by `lagging`:
   * after every trim, and when a failed write ends the lag's hold (the outage's backlog then waits
   * in the spool).
   */
  readonly relieved: () => void
  /** Time and timers (batch age, retry backoff, the stop deadline). */
  readonly clock: Clock
  /** Tuning knobs; defaults in SHIPPER_DEFAULTS. */
  readonly tuning?: Partial<ShipperTuning>
}

/** Entries of one spool group in a batch (SpoolRun, counted as the batch fills). */
interface Run {
  readonly group: number
  entries: number
}

/**
 * One InfluxDB write: the lines of frames that follow each other in seq order, and what to trim
 * once they landed. Batches of committed frames are built as the frames are committed (hot);
 * the others are read back from the spool.
 */
interface Batch {
  readonly lines: LineBuffer
  readonly runs: Run[]
  /** Readings read back from the spool, for `history`. */
  readonly frames: HistoryFrame[]
  firstSeq: number
  lastSeq: number
  points: number
  /** Points of entries committed since this start, i.e. counted in the shipper's lag. */
  counted: number
}

/** A device's point tags and its escaped series. */
interface DeviceSeries {
  readonly tags: Readonly<Record<string, string>>
  readonly series: Uint8Array | LineRefusal
}

/** Line buffers kept for later batches once theirs landed, at most (each holds a batch's bytes: about 300 KiB). */
const SPARE_LINE_BUFFERS = 4

/**
 * Ships the spool to InfluxDB: batches of up to 5,000 points, or whatever waited 1 s, up to four
 * writes at once; each batch retries with backoff while InfluxDB is away; what landed is trimmed.
 * The spool itself is the durable cursor: an entry leaves it only after its points were written
 * (or dead-lettered), so a restart resumes from the oldest entry left, and a batch written twice
 * lands on the same points. Batches may land out of order: points are keyed by time, not order.
 */
export class InfluxShipper {
  readonly #options: ShipperOptions
  readonly #clock: Clock
  readonly #tuning: ShipperTuning
  /** Readings committed and not yet in a batch; unknown after a start, so the first pass ships at once. */
  #unshipped = Number.POSITIVE_INFINITY
  #oldestAt = 0
  /** The highest spool seq already in a batch (in memory: after a restart every entry left is shipped). */
  #cursor = 0
  /** Batches of frames committed since this start, in seq order, their lines built: shipped without a spool read. */
  #hot: Batch[] = []
  /** The last hot batch, while it takes more frames. */
  #open: Batch | undefined
  #hotReadings = 0
  readonly #spare: LineBuffer[] = []
  /** Each device record's series, while the store holds that record. */
  readonly #series = new WeakMap<DeviceRecord, DeviceSeries>()
  /** The first seq appended since this start: entries from it on count in the lag. */
  readonly #countedFrom: number
  /** Readings committed since this start and not yet landed. */
  #unlanded = 0
  /**
   * Set while a backlog ships: after a failed write (until the lag is back under its bound), and
   * from a start with entries left in the spool (until the cursor has passed them, since they are
   * not counted in the lag). A backlog ships without holding commits.
   */
  #catchingUp: boolean
  readonly #writes = new Set<Promise<void>>()
  /** Backoff sleeps of failing writes, cut short by `stop`. */
  readonly #pauses = new Set<() => void>()
  #wake: (() => void) | undefined
  #running: Promise<void> | undefined
  #stopped = false

  constructor(options: ShipperOptions) {
    this.#options = options
    this.#clock = options.clock
    this.#tuning = tune('InfluxShipper', SHIPPER_DEFAULTS, options.tuning)
    this.#countedFrom = options.spool.nextSeq
    this.#catchingUp = options.spool.entries > 0
  }

  /** Starts the shipping loop. */
  start(): void {
    this.#running ??= this.#loop()
  }

  /**
   * Takes frames just made durable, the first at spool seq `firstSeq` and the others after it (one
   * group), and writes their lines now into the batch that will ship them: commits come a few
   * frames at a time, so the work is spread out instead of holding the event loop per batch.
   */
  committed(frames: readonly HistoryFrame[], firstSeq: number): void {
    if (frames.length === 0) return
    if (this.#unshipped === 0) this.#oldestAt = this.#clock.now()
    const group = firstSeq + frames.length - 1
    const { batchPoints, maxHotReadings } = this.#tuning
    for (let i = 0; i < frames.length; i++) {
      const { deviceId, readings } = frames[i] as HistoryFrame
      const seq = firstSeq + i
      const points = readings.length
      this.#unshipped += points
      this.#unlanded += points
      // Already shipped: a read-back of the spool can see a commit before its callback runs.
      if (seq <= this.#cursor) continue
      // Past the bound (InfluxDB away a long time) frames stay only in the spool and are read back
      // from it; the next hot batch starts after them, so none is passed over.
      if (this.#hotReadings + points > maxHotReadings) {
        this.#open = undefined
        continue
      }
      let batch = this.#open
      if (batch === undefined || (batch.points > 0 && batch.points + points > batchPoints)) {
        batch = this.#newBatch()
        this.#hot.push(batch)
        this.#open = batch
      }
      this.#add(batch, seq, group, deviceId, readings)
      this.#hotReadings += points
    }
    if (this.#unshipped >= batchPoints) this.#wake?.()
  }

  /**
   * Whether a reachable InfluxDB is behind by more than the bound: ingest then holds commits. Never
   * while InfluxDB is away, nor while the backlog of an outage ships: the spool absorbs those.
   */
  get lagging(): boolean {
    return this.#options.writer !== undefined && !this.#catchingUp && this.#unlanded >= this.#tuning.maxLagReadings
  }

  /**
   * Stops taking new batches and waits up to 2 s for the writes under way. A write that fails or
   * has not landed by then gives up: its entries stay in the spool and ship after the restart, so
   * an InfluxDB that is away never holds up a shutdown (docs/configuration.md: exit within 10 s).
   */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#wake?.()
    for (const wake of this.#pauses) wake()
    let timer: unknown
    await Promise.race([this.#running, new Promise((resolve) => (timer = this.#clock.setTimeout(() => resolve(undefined), this.#tuning.stopWaitMs)))])
    this.#clock.clearTimeout(timer)
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      if (this.#writes.size >= this.#tuning.writesInFlight) {
        await this.#sleep(this.#tuning.flushIntervalMs)
        continue
      }
      const waitMs = this.#unshipped === 0 ? this.#tuning.flushIntervalMs : this.#tuning.flushIntervalMs - (this.#clock.now() - this.#oldestAt)
      if (this.#unshipped < this.#tuning.batchPoints && waitMs > 0) {
        await this.#sleep(waitMs)
        continue
      }
      const batch = this.#collect()
      if (batch.runs.length === 0) {
        this.#unshipped = 0
        continue
      }
      this.#cursor = batch.lastSeq
      this.#unshipped = Math.max(0, this.#unshipped - batch.points)
      this.#oldestAt = this.#clock.now()
      const write = this.#deliver(batch).finally(() => {
        this.#writes.delete(write)
        this.#wake?.()
      })
      this.#writes.add(write)
    }
    await Promise.all([...this.#writes])
  }

  /** Writes one batch until it lands (or the shipper stops), then trims it from the spool. */
  async #deliver(batch: Batch): Promise<void> {
    const backoff = new Backoff({ initialDelayMs: this.#tuning.retryInitialMs, maxDelayMs: this.#tuning.retryMaxMs })
    while (!(await this.#ship(batch))) {
      this.#options.counters.writeFailed()
      if (this.#stopped) return
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#clock.clearTimeout(timer)
          this.#pauses.delete(wake)
          resolve()
        }
        const timer = this.#clock.setTimeout(wake, backoff.next())
        this.#pauses.add(wake)
      })
      if (this.#stopped) return
    }
    // After stop the store may be closing: the batch landed, and shipping it again is harmless.
    if (this.#stopped) return
    await this.#options.spool.trim(batch.runs)
    if (this.#spare.length < SPARE_LINE_BUFFERS) {
      batch.lines.clear()
      this.#spare.push(batch.lines)
    }
    this.#unlanded -= batch.counted
    if (this.#unlanded < this.#tuning.maxLagReadings && this.#cursor >= this.#countedFrom - 1) this.#catchingUp = false
    this.#options.relieved()
  }

  /**
   * The next batch after the cursor: entries the spool holds before the next hot batch (a
   * restart's backlog, frames past the hot bound), up to the batch size, decoded from the spool;
   * else the next hot batch. A hot batch after a gap the spool does not fill follows a failed commit.
   */
  #collect(): Batch {
    const hot = this.#hot[0]
    // The next hot batch continues the cursor (the usual case): nothing to read back.
    if (hot !== undefined && hot.firstSeq === this.#cursor + 1) return this.#takeHot(hot)
    const batch = this.#newBatch()
    const { batchPoints } = this.#tuning
    for (const entry of this.#options.spool.read(this.#cursor, hot?.firstSeq)) {
      const readings = this.#decode(entry.seq, entry.deviceId, entry.frame, entry.receivedAt)
      if (batch.runs.length > 0 && batch.points + readings.length > batchPoints) break
      this.#add(batch, entry.seq, entry.group, entry.deviceId, readings)
      if (this.#options.history !== undefined) batch.frames.push({ deviceId: entry.deviceId, readings })
    }
    if (batch.runs.length > 0 || hot === undefined) return batch
    this.#spare.push(batch.lines)
    return this.#takeHot(hot)
  }

  /** Takes the first hot batch off the queue; it takes no more frames. */
  #takeHot(hot: Batch): Batch {
    this.#hot.shift()
    if (this.#open === hot) this.#open = undefined
    this.#hotReadings -= hot.points
    return hot
  }

  #newBatch(): Batch {
    const lines = this.#spare.pop() ?? new LineBuffer()
    return { lines, runs: [], frames: [], firstSeq: 0, lastSeq: 0, points: 0, counted: 0 }
  }

  /**
   * Adds a frame to a batch: its place in the spool and its lines (none when shipping is off).
   * Unwritable readings are dead-lettered. docs/telemetry.md: tag `device`, the registry's tags, the
   * reading's own tags (which win a clash).
   */
  #add(batch: Batch, seq: number, group: number, deviceId: string, readings: readonly Reading[]): void {
    if (batch.runs.length === 0) batch.firstSeq = seq
    batch.lastSeq = seq
    const run = batch.runs[batch.runs.length - 1]
    if (run?.group === group) run.entries++
    else batch.runs.push({ group, entries: 1 })
    batch.points += readings.length
    if (seq >= this.#countedFrom) batch.counted += readings.length
    if (this.#options.writer === undefined) return
    const lines = batch.lines
    const device = this.#deviceSeries(deviceId)
    for (const reading of readings) {
      const series = reading.g === undefined ? device.series : seriesKey(TELEMETRY_MEASUREMENT, { ...device.tags, ...reading.g })
      const refused = typeof series === 'string' ? series : lines.point(deviceId, series, reading.m, reading.ts)
      if (refused !== undefined) {
        this.#options.deadLetter.add({ device: deviceId, reason: 'line_protocol', message: `not writable as line protocol: ${refused}`, reading })
      }
    }
  }

  /**
   * Built once per device record: the store hands out the same record object until the device
   * changes, so a tag change shows in the next frame's points.
   */
  #deviceSeries(deviceId: string): DeviceSeries {
    const record = this.#options.registry.get(deviceId)
    let device = record === undefined ? undefined : this.#series.get(record)
    if (device === undefined) {
      // Neither may be named `device` (validated), so it goes first.
      const tags = { device: deviceId, ...record?.tags }
      device = { tags, series: seriesKey(TELEMETRY_MEASUREMENT, tags) }
      if (record !== undefined) this.#series.set(record, device)
    }
    return device
  }

  #decode(seq: number, deviceId: string, frame: Uint8Array, receivedAt: number): readonly Reading[] {
    const decoded = decodeDeviceFrame(frame)
    if (decoded.ok && (decoded.frame.t === 'tm' || decoded.frame.t === 'tb')) return readingsOf(decoded.frame, receivedAt)
    // Ingest validated every frame before storing it; this only happens to a damaged store (or a
    // codec that grew stricter since). The bytes go to the dead letter, where they can be looked at.
    const why = decoded.ok ? `a ${decoded.frame.t} frame` : `${decoded.code}: ${decoded.reason}`
    this.#options.log.error({ seq, deviceId }, 'spool entry does not decode; dead-lettering it')
    this.#options.deadLetter.add({
      device: deviceId,
      reason: 'undecodable',
      message: `spool entry ${seq} is not telemetry (${why})`,
      frame: Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('base64'),
    })
    return []
  }

  /** Moves a batch read back from the spool into the history, when there is one; false when the write failed. */
  async #toHistory(batch: Batch): Promise<boolean> {
    const history = this.#options.history
    if (history === undefined || batch.frames.length === 0) return true
    try {
      await history(batch.frames)
      return true
    } catch (err) {
      this.#options.log.warn({ err, frames: batch.frames.length }, 'moving spooled telemetry into the history failed; retrying with backoff')
      return false
    }
  }

  /** Writes a batch; false when InfluxDB is away and the batch must be retried. */
  async #ship(batch: Batch): Promise<boolean> {
    const writer = this.#options.writer
    if (writer === undefined) return this.#toHistory(batch)
    if (batch.lines.lines === 0) return true
    const result = await writer.writeOrDeadLetter(batch.lines)
    if ('retry' in result) {
      this.#options.log.warn({ err: result.error, points: batch.lines.lines }, 'InfluxDB write failed; retrying with backoff')
      if (!this.#catchingUp) {
        this.#catchingUp = true
        this.#options.relieved()
      }
      return false
    }
    this.#options.counters.shipped(result.written)
    return true
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#clock.setTimeout(() => {
        this.#wake = undefined
        resolve()
      }, ms)
      this.#wake = () => {
        this.#clock.clearTimeout(timer)
        this.#wake = undefined
        resolve()
      }
    })
  }
}
