import type { NakReason } from '@fleetgate/device-sdk'
import { Counter, Gauge, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client'
import type { BusCounters } from '../cluster/index.js'
import type { CommandCounters, CommandStatus } from '../commands/index.js'
import type { EventStreamCounters } from '../events/index.js'
import type { DeadLetterCounters, DeadLetterLoss, DeadLetterReason, HistoryCounters, IngestCounters, ShipperCounters, TrimReason } from '../telemetry/index.js'
import type { DesiredOutcome, ReportOutcome, TwinCounters } from '../twins/index.js'

/**
 * Where a last-resort guard caught an error: the `where` label of `fleetgate_uncaught_errors_total`,
 * a closed set. `http` a REST route or fallback, `upgrade` a device's WebSocket upgrade, `ws` a
 * callback of a live WebSocket (the guards of transport/uws-guard.ts), `process` the process-level
 * last resort (main.ts).
 */
export const UNCAUGHT_WHERE = ['http', 'upgrade', 'ws', 'process'] as const
/** One of {@link UNCAUGHT_WHERE}. */
export type UncaughtWhere = (typeof UNCAUGHT_WHERE)[number]

/**
 * A counter's children by label value, made once: prom-client hashes a labels object on every
 * `inc`, which the per-frame path should not pay.
 */
class LabelledCounter {
  readonly counter: Counter<string>
  readonly #children = new Map<string, Counter.Internal>()

  constructor(counter: Counter<string>) {
    this.counter = counter
  }

  inc(value: string): void {
    let child = this.#children.get(value)
    if (child === undefined) {
      child = this.counter.labels(value)
      this.#children.set(value, child)
    }
    child.inc()
  }
}

/** WebSocket close codes the hub names in `fleetgate_session_closes_total`: docs/protocol.md's, 1011, and what uWS reports for a lost or bare close. */
const NAMED_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1001, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 4001, 4003])

/**
 * The label of a close code: the code itself when the hub names it, else its thousand
 * (`other_1xxx` .. `other_4xxx`, `other` beyond), since a device chooses its own close code and
 * one label value per code would let it grow the metric without bound.
 */
function closeCodeLabel(code: number): string {
  if (NAMED_CLOSE_CODES.has(code)) return String(code)
  return code >= 1000 && code <= 4999 ? `other_${Math.floor(code / 1000)}xxx` : 'other'
}

/** What the gauges read, when `/metrics` is scraped. */
export interface MetricsSources {
  /** Live device sessions. */
  readonly sessions: () => number
  /** Bytes held in the spool. */
  readonly spoolBytes: () => number
  /** Telemetry frames accepted and not yet committed. */
  readonly pendingFrames: () => number
  /** Bytes held in the history, or undefined when it is off. */
  readonly historyBytes: () => number | undefined
  /** Live event streams open. */
  readonly eventStreams: () => number
}

/** The hub's figures, in Prometheus form (`GET /metrics`). */
export class HubMetrics implements IngestCounters, ShipperCounters, CommandCounters, DeadLetterCounters, TwinCounters, HistoryCounters, EventStreamCounters, BusCounters {
  readonly registry = new PromRegistry()
  readonly sessions: Gauge
  readonly connects: Counter<'outcome'>
  readonly authFailures: Counter<'reason'>
  readonly frames: LabelledCounter
  readonly naks: LabelledCounter
  readonly closes: LabelledCounter
  readonly pendingFrames: Gauge
  readonly droppedResults: Counter
  readonly acceptedFrames: Counter
  readonly readings: Counter
  readonly acks: Counter
  readonly shippedPoints: Counter
  readonly deadLetters: LabelledCounter
  readonly lostDeadLetters: Counter<'cause'>
  readonly influxWriteErrors: Counter
  readonly spoolBytes: Gauge
  readonly commandsEnded: Counter<'status'>
  readonly ignoredResults: Counter
  readonly uncaughtErrors: Counter<'where'>
  readonly twinDesired: LabelledCounter
  readonly twinReports: LabelledCounter
  readonly twinDesiredFrames: LabelledCounter
  readonly busMessages: Counter<'direction' | 'type'>
  readonly historyTrimmedReadings: Counter<'reason'>
  readonly historyCompactions: Counter
  readonly eventStreamsCut: Counter
  readonly eventStreamsRefused: Counter<'reason'>

  constructor(sources: MetricsSources) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'fleetgate_' })
    this.sessions = new Gauge({
      name: 'fleetgate_sessions',
      help: 'Live device sessions',
      registers,
      collect() {
        this.set(sources.sessions())
      },
    })
    this.connects = new Counter({
      name: 'fleetgate_connects_total',
      help: 'Device connection attempts by outcome (accepted, unauthorized, throttled)',
      labelNames: ['outcome'],
      registers,
    })
    this.authFailures = new Counter({
      name: 'fleetgate_auth_failures_total',
      help: 'Refused device tokens by reason',
      labelNames: ['reason'],
      registers,
    })
    this.frames = new LabelledCounter(
      new Counter({ name: 'fleetgate_frames_total', help: 'Device frames received by type', labelNames: ['type'], registers }),
    )
    this.naks = new LabelledCounter(
      new Counter({ name: 'fleetgate_naks_total', help: 'Frames refused by reason', labelNames: ['reason'], registers }),
    )
    this.acceptedFrames = new Counter({ name: 'fleetgate_frames_accepted_total', help: 'Telemetry frames accepted for the spool', registers })
    this.readings = new Counter({ name: 'fleetgate_readings_total', help: 'Readings accepted for the spool', registers })
    this.acks = new Counter({ name: 'fleetgate_acks_total', help: 'Cumulative acks sent', registers })
    this.shippedPoints = new Counter({ name: 'fleetgate_influx_points_total', help: 'Points written to InfluxDB', registers })
    this.deadLetters = new LabelledCounter(
      new Counter({
        name: 'fleetgate_influx_dead_letters_total',
        help: 'Readings dead-lettered, by reason (influx_refused, line_protocol, undecodable)',
        labelNames: ['reason'],
        registers,
      }),
    )
    this.lostDeadLetters = new Counter({
      name: 'fleetgate_influx_dead_letters_lost_total',
      help: 'Dead letters counted and not written, by cause (device_budget, too_large, io_error)',
      labelNames: ['cause'],
      registers,
    })
    this.influxWriteErrors = new Counter({ name: 'fleetgate_influx_write_errors_total', help: 'Failed InfluxDB writes (retried)', registers })
    this.commandsEnded = new Counter({
      name: 'fleetgate_commands_total',
      help: 'Commands that ended, by final status',
      labelNames: ['status'],
      registers,
    })
    this.ignoredResults = new Counter({
      name: 'fleetgate_command_results_ignored_total',
      help: 'Results for unknown, finished or foreign commands',
      registers,
    })
    this.spoolBytes = new Gauge({
      name: 'fleetgate_spool_bytes',
      help: 'Bytes held in the durable spool',
      registers,
      collect() {
        this.set(sources.spoolBytes())
      },
    })
    this.uncaughtErrors = new Counter({
      name: 'fleetgate_uncaught_errors_total',
      help: 'Exceptions no handler caught, answered by the last-resort guards (where: http, upgrade, ws, process)',
      labelNames: ['where'],
      registers,
    })
    // Each series exists from the start, so an alert on its increase sees the first error.
    for (const where of UNCAUGHT_WHERE) this.uncaughtErrors.inc({ where }, 0)
    this.closes = new LabelledCounter(
      new Counter({
        name: 'fleetgate_session_closes_total',
        help: 'Device sessions ended, by close code (codes the hub does not name grouped as other_1xxx .. other_4xxx, other)',
        labelNames: ['code'],
        registers,
      }),
    )
    this.pendingFrames = new Gauge({
      name: 'fleetgate_ingest_pending_frames',
      help: 'Telemetry frames accepted and not yet committed (at most 64 per live session)',
      registers,
      collect() {
        this.set(sources.pendingFrames())
      },
    })
    const twinCounter = (name: string, help: string, outcomes: readonly string[]): LabelledCounter => {
      const counter = new Counter({ name, help, labelNames: ['outcome'], registers })
      for (const outcome of outcomes) counter.inc({ outcome }, 0)
      return new LabelledCounter(counter)
    }
    this.twinDesired = twinCounter(
      'fleetgate_twin_desired_changes_total',
      'Operator changes of twin desired documents, by outcome (changed, unchanged, version_conflict, too_large, not_found)',
      ['changed', 'unchanged', 'version_conflict', 'too_large', 'not_found'],
    )
    this.twinReports = twinCounter(
      'fleetgate_twin_reports_total',
      'Device twin reports (twr), by outcome (changed, unchanged, or refused: invalid, too_large, rate)',
      ['changed', 'unchanged', 'invalid', 'too_large', 'rate'],
    )
    this.twinDesiredFrames = twinCounter(
      'fleetgate_twin_desired_frames_total',
      'Desired documents (twd) sent to sessions, or held for a socket that does not take them (its drain sends the latest)',
      ['sent', 'held'],
    )
    new Gauge({
      name: 'fleetgate_history_bytes',
      help: 'Bytes held in the embedded telemetry history (absent when FLEETGATE_HISTORY=off)',
      registers,
      collect() {
        const bytes = sources.historyBytes()
        if (bytes !== undefined) this.set(bytes)
      },
    })
    this.historyTrimmedReadings = new Counter({
      name: 'fleetgate_history_trimmed_readings_total',
      help: 'Readings removed from the history by retention, by reason (age: older than FLEETGATE_HISTORY_RETENTION; size: over FLEETGATE_HISTORY_MAX_BYTES)',
      labelNames: ['reason'],
      registers,
    })
    for (const reason of ['age', 'size']) this.historyTrimmedReadings.inc({ reason }, 0)
    this.historyCompactions = new Counter({
      name: 'fleetgate_history_compactions_total',
      help: "Device-hours of the history whose small blocks were merged into large ones",
      registers,
    })
    new Gauge({
      name: 'fleetgate_event_streams',
      help: 'Live event streams (GET /api/v1/events) open',
      registers,
      collect() {
        this.set(sources.eventStreams())
      },
    })
    this.eventStreamsCut = new Counter({
      name: 'fleetgate_event_streams_cut_total',
      help: 'Event streams cut because their client did not read fast enough',
      registers,
    })
    this.eventStreamsRefused = new Counter({
      name: 'fleetgate_event_streams_refused_total',
      help: 'Event streams refused 429, by the bound reached (token: streams per token; hub: streams per hub)',
      labelNames: ['reason'],
      registers,
    })
    this.droppedResults = new Counter({
      name: 'fleetgate_command_results_dropped_total',
      help: 'Command results (res frames) dropped over their session\'s rate',
      registers,
    })
    this.busMessages = new Counter({
      name: 'fleetgate_cluster_bus_messages_total',
      help: 'Cluster mode: node-to-node messages over the shared broker, by direction (sent, received, refused) and type',
      labelNames: ['direction', 'type'],
      registers,
    })
  }

  busMessage(direction: 'sent' | 'received' | 'refused', type: string): void {
    this.busMessages.inc({ direction, type })
  }

  /** A device session ended with `code`. */
  closed(code: number): void {
    this.closes.inc(closeCodeLabel(code))
  }

  accepted(frames: number, readings: number): void {
    this.acceptedFrames.inc(frames)
    this.readings.inc(readings)
  }

  acked(acks: number): void {
    this.acks.inc(acks)
  }

  naked(reason: NakReason): void {
    this.naks.inc(reason)
  }

  shipped(points: number): void {
    this.shippedPoints.inc(points)
  }

  deadLettered(reason: DeadLetterReason): void {
    this.deadLetters.inc(reason)
  }

  deadLettersLost(cause: DeadLetterLoss, entries: number): void {
    this.lostDeadLetters.inc({ cause }, entries)
  }

  resultDropped(): void {
    this.droppedResults.inc()
  }

  writeFailed(): void {
    this.influxWriteErrors.inc()
  }

  commandEnded(status: CommandStatus): void {
    this.commandsEnded.inc({ status })
  }

  resultIgnored(): void {
    this.ignoredResults.inc()
  }

  desiredChanged(outcome: DesiredOutcome['kind']): void {
    this.twinDesired.inc(outcome)
  }

  reported(outcome: ReportOutcome): void {
    this.twinReports.inc(outcome)
  }

  desiredSent(outcome: 'sent' | 'held'): void {
    this.twinDesiredFrames.inc(outcome)
  }

  historyTrimmed(reason: TrimReason, readings: number): void {
    this.historyTrimmedReadings.inc({ reason }, readings)
  }

  historyCompacted(): void {
    this.historyCompactions.inc()
  }

  eventStreamCut(): void {
    this.eventStreamsCut.inc()
  }

  eventStreamRefused(reason: 'token' | 'hub'): void {
    this.eventStreamsRefused.inc({ reason })
  }

  /** Counts one exception caught by a last-resort guard (see transport/uws-guard.ts and main.ts). */
  uncaught(where: UncaughtWhere): void {
    this.uncaughtErrors.inc({ where })
  }

  /** The figures of docs/telemetry.md's `fleetgate_hub` measurement, from the same counters. */
  async snapshot(): Promise<Record<string, number>> {
    const total = async (metric: Counter<string> | Gauge<string>): Promise<number> =>
      (await metric.get()).values.reduce((sum, v) => sum + v.value, 0)
    const memory = process.memoryUsage()
    return {
      connections: await total(this.sessions),
      frames: await total(this.frames.counter),
      readings: await total(this.readings),
      acks: await total(this.acks),
      naks: await total(this.naks.counter),
      spool_bytes: await total(this.spoolBytes),
      influx_points: await total(this.shippedPoints),
      influx_write_errors: await total(this.influxWriteErrors),
      influx_dead_letters: await total(this.deadLetters.counter),
      ...Object.fromEntries(
        (await this.commandsEnded.get()).values.map((v) => [`commands_${String(v.labels['status'])}`, v.value]),
      ),
      rss_bytes: memory.rss,
      heap_used_bytes: memory.heapUsed,
    }
  }
}
