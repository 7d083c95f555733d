// Counters and latency histograms of a run. Latencies go into HDR histograms (hdr-histogram-js) in
// microseconds, from 1 µs to 1 h at 3 significant digits: fixed memory whatever the run's length.
// Windows (status line, --jsonl snapshots) get their own histograms and counts, reset each time
// they are read, beside the run's cumulative ones.
import { build, type Histogram } from 'hdr-histogram-js'
import type { SdkError } from '@fleetgate/device-sdk'
import { MODEL_NAMES, type ModelName } from './models.js'

/** Latency percentiles in ms (3 decimals); all 0 when count is 0. */
export interface Percentiles {
  readonly count: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

/** Why a session ended, as the simulator saw it. */
export type DisconnectCause = 'churn' | 'storm' | 'reboot' | 'hub' | 'network'

/** How a desired change sent through REST ended: answered 200, or not. */
export type TwinChangeOutcome = 'changed' | 'error'

/** How a command sent through REST ended. */
export type CommandOutcome = 'succeeded' | 'expected_failure' | 'unexpected' | 'timeout' | 'offline' | 'error'

/** Counts per model. */
export interface ModelCounts {
  devices: number
  sent: number
  acked: number
  naked: number
  commandsHandled: number
}

const HIGHEST_US = 3_600_000_000

function histogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3, autoResize: false })
}

function record(h: Histogram, ms: number): void {
  h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000))))
}

/** The percentiles of `h`, in ms. */
export function percentiles(h: Histogram): Percentiles {
  const count = h.totalCount
  if (count === 0) return { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 }
  const ms = (us: number): number => Math.round(us) / 1000
  return {
    count,
    p50: ms(h.getValueAtPercentile(50)),
    p95: ms(h.getValueAtPercentile(95)),
    p99: ms(h.getValueAtPercentile(99)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  }
}

/** What a window saw since it was last read. */
export interface WindowReading {
  readonly ms: number
  readonly sent: number
  readonly acked: number
  readonly commands: number
  readonly ack: Percentiles
  readonly commandRtt: Percentiles
  readonly lag: Percentiles
}

/** A window over the run: counts and latencies since its last read(). */
export class StatsWindow {
  readonly #ack = histogram()
  readonly #rtt = histogram()
  readonly #lag = histogram()
  #sent = 0
  #acked = 0
  #commands = 0
  #since: number

  constructor(nowMs: number) {
    this.#since = nowMs
  }

  /** @internal */ sent(count: number): void {
    this.#sent += count
  }
  /** @internal */ acked(count: number, latencyMs: number): void {
    this.#acked += count
    record(this.#ack, latencyMs)
  }
  /** @internal */ lag(lateMs: number): void {
    record(this.#lag, lateMs)
  }
  /** @internal */ command(rttMs: number | undefined): void {
    this.#commands++
    if (rttMs !== undefined) record(this.#rtt, rttMs)
  }

  /** What happened since the last read, then starts over. */
  read(nowMs: number): WindowReading {
    const reading: WindowReading = {
      ms: Math.max(1, nowMs - this.#since),
      sent: this.#sent,
      acked: this.#acked,
      commands: this.#commands,
      ack: percentiles(this.#ack),
      commandRtt: percentiles(this.#rtt),
      lag: percentiles(this.#lag),
    }
    this.#ack.reset()
    this.#rtt.reset()
    this.#lag.reset()
    this.#sent = 0
    this.#acked = 0
    this.#commands = 0
    this.#since = nowMs
    return reading
  }
}

/** Every counter of a run; the fleet, devices and command driver write them, the report reads them. */
export class Stats {
  /** Readings (telemetry send calls' readings, and the one invalid reading of each bad frame). */
  readonly readings = { sent: 0, acked: 0, nakedExpected: 0, nakedUnexpected: 0, dropped: 0, failed: 0 }
  /** Nak frames: expected ones answer bad frames; unexpected ones refused real readings (by reason). */
  readonly naks = { expected: 0, unexpected: 0, byReason: {} as Record<string, number> }
  /** Invalid frames sent on purpose: sent (each once), naked, and sent again after a lost session. */
  readonly badFrames = { sent: 0, naked: 0, resent: 0 }
  readonly sessions = {
    connects: 0,
    reconnects: 0,
    failedAttempts: 0,
    disconnects: { churn: 0, storm: 0, reboot: 0, hub: 0, network: 0 } as Record<DisconnectCause, number>,
    closeCodes: {} as Record<string, number>,
    storms: 0,
    /** The last few failed attempts' reasons. */
    lastFailures: [] as string[],
  }
  /** `error` events of the device clients that no chaos explains, by SDK error code, and the last few messages. */
  readonly errors = { byCode: {} as Record<string, number>, last: [] as string[] }
  readonly commands = {
    sent: 0,
    succeeded: 0,
    expectedFailures: 0,
    unexpected: 0,
    timeout: 0,
    offline: 0,
    errors: 0,
    skipped: 0,
    /** Calls made again after no answer or a 502/503 (restRepeatable). */
    repeated: 0,
    byName: {} as Record<string, Record<CommandOutcome, number>>,
    last: [] as string[],
    /** The latest detail of each outcome that has one (wrong answers, timeouts, errors). */
    lastByOutcome: {} as Partial<Record<CommandOutcome, string>>,
  }
  /** Desired twin changes through REST (--twin-rate): answered 200, failed, skipped (too many in flight), converged. */
  readonly twins = { changed: 0, errors: 0, skipped: 0, converged: 0, repeated: 0, last: [] as string[] }
  /** Commands the simulated devices ran, by name (unknown names included). */
  readonly handled: Record<string, number> = {}
  readonly perModel: Record<ModelName, ModelCounts>
  /** How late the devices' reading timers fired (the simulator falling behind its own schedule), and frames skipped when over 5 s late. */
  readonly generator = { skippedFrames: 0 }
  /** Things worth saying once (a rate beyond what the hub allows, say). */
  readonly warnings: string[] = []
  connected = 0
  maxConnected = 0
  readonly #lag = histogram()
  readonly #ack = histogram()
  readonly #rtt = histogram()
  readonly #convergence = histogram()
  readonly #windows = new Set<StatsWindow>()

  constructor() {
    const perModel = {} as Record<ModelName, ModelCounts>
    for (const name of MODEL_NAMES) perModel[name] = { devices: 0, sent: 0, acked: 0, naked: 0, commandsHandled: 0 }
    this.perModel = perModel
  }

  /** Readings sent and not yet settled (acked, naked, dropped, failed): in flight, queued, or lost at the end. */
  get unsettled(): number {
    const r = this.readings
    return r.sent - r.acked - r.nakedExpected - r.nakedUnexpected - r.dropped - r.failed
  }

  /** Unexpected error events, all codes. */
  get errorCount(): number {
    return Object.values(this.errors.byCode).reduce((a, b) => a + b, 0)
  }

  /** A window that sees everything recorded from now on. */
  openWindow(nowMs: number): StatsWindow {
    const window = new StatsWindow(nowMs)
    this.#windows.add(window)
    return window
  }

  ackLatency(): Percentiles {
    return percentiles(this.#ack)
  }

  commandRtt(): Percentiles {
    return percentiles(this.#rtt)
  }

  /** From each desired change's REST call to its device's report of settings applying it. */
  twinConvergence(): Percentiles {
    return percentiles(this.#convergence)
  }

  /** A desired change through REST ended; `detail` says what went wrong. */
  twinChange(outcome: TwinChangeOutcome, detail?: string): void {
    if (outcome === 'changed') this.twins.changed++
    else this.twins.errors++
    if (detail !== undefined) remember(this.twins.last, detail)
  }

  /** A desired change converged `ms` after its REST call. */
  twinConverged(ms: number): void {
    this.twins.converged++
    record(this.#convergence, ms)
  }

  scheduleLag(): Percentiles {
    return percentiles(this.#lag)
  }

  /** A reading timer fired `lateMs` after its time. */
  tickLag(lateMs: number): void {
    record(this.#lag, lateMs)
    for (const window of this.#windows) window.lag(lateMs)
  }

  sent(model: ModelName, count: number): void {
    this.readings.sent += count
    this.perModel[model].sent += count
    for (const window of this.#windows) window.sent(count)
  }

  acked(model: ModelName, count: number, latencyMs: number): void {
    this.readings.acked += count
    this.perModel[model].acked += count
    record(this.#ack, latencyMs)
    for (const window of this.#windows) window.acked(count, latencyMs)
  }

  /** Readings the hub refused that were meant to be stored. */
  nakedUnexpected(model: ModelName, count: number, reason: SdkError['reason']): void {
    this.readings.nakedUnexpected += count
    this.perModel[model].naked += count
    this.naks.unexpected++
    const key = reason ?? 'unknown'
    this.naks.byReason[key] = (this.naks.byReason[key] ?? 0) + 1
  }

  /** A nak nobody expected and no reading was waiting for. */
  strayNak(reason: string): void {
    this.naks.unexpected++
    this.naks.byReason[reason] = (this.naks.byReason[reason] ?? 0) + 1
  }

  badFrameSent(model: ModelName): void {
    this.badFrames.sent++
    this.sent(model, 1)
  }

  badFrameNaked(model: ModelName): void {
    this.badFrames.naked++
    this.readings.nakedExpected++
    this.perModel[model].naked++
    this.naks.expected++
    this.naks.byReason['invalid'] = (this.naks.byReason['invalid'] ?? 0) + 1
  }

  dropped(count: number): void {
    this.readings.dropped += count
  }

  failed(count: number): void {
    this.readings.failed += count
  }

  connectedNow(delta: 1 | -1): void {
    this.connected += delta
    if (this.connected > this.maxConnected) this.maxConnected = this.connected
  }

  disconnected(cause: DisconnectCause, code: number): void {
    this.sessions.disconnects[cause]++
    const key = String(code)
    this.sessions.closeCodes[key] = (this.sessions.closeCodes[key] ?? 0) + 1
  }

  /** Adds `message` once. */
  warn(message: string): void {
    if (!this.warnings.includes(message) && this.warnings.length < 20) this.warnings.push(message)
  }

  /** A connect attempt failed (the SDK retries). */
  failedAttempt(message: string): void {
    this.sessions.failedAttempts++
    remember(this.sessions.lastFailures, message)
  }

  error(code: string, message: string): void {
    this.errors.byCode[code] = (this.errors.byCode[code] ?? 0) + 1
    remember(this.errors.last, `${code}: ${message}`)
  }

  handledCommand(model: ModelName, name: string): void {
    this.handled[name] = (this.handled[name] ?? 0) + 1
    this.perModel[model].commandsHandled++
  }

  /** A command sent through REST ended; `rttMs` from the call to the final record (undefined when there is none). */
  command(name: string, outcome: CommandOutcome, rttMs: number | undefined, detail?: string): void {
    const c = this.commands
    c.sent++
    const byName = (c.byName[name] ??= { succeeded: 0, expected_failure: 0, unexpected: 0, timeout: 0, offline: 0, error: 0 })
    byName[outcome]++
    switch (outcome) {
      case 'succeeded':
        c.succeeded++
        break
      case 'expected_failure':
        c.expectedFailures++
        break
      case 'unexpected':
        c.unexpected++
        break
      case 'timeout':
        c.timeout++
        break
      case 'offline':
        c.offline++
        break
      case 'error':
        c.errors++
        break
    }
    if (detail !== undefined) {
      remember(c.last, `${name}: ${detail}`)
      c.lastByOutcome[outcome] = `${name}: ${detail}`
    }
    if (rttMs !== undefined) record(this.#rtt, rttMs)
    for (const window of this.#windows) window.command(rttMs)
  }
}

function remember(list: string[], message: string): void {
  list.push(message.length > 300 ? `${message.slice(0, 300)}...` : message)
  if (list.length > 5) list.shift()
}
