// Telemetry: ingest (checks, group commit, acks), the spool and its shipper to InfluxDB (line
// protocol, batches, the dead letter), the embedded history, and the telemetry query over either.
// `createTelemetry` builds them together and wires their callbacks to each other.
import type { TelemetryMessage } from '@fleetgate/bridge'
import type { Clock } from '@fleetgate/device-sdk'
import type { Registry } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { HistoryStore, SpoolStore } from '../store/index.js'
import { commitTarget, type CommitTarget } from './commit-target.js'
import { DeadLetter, type DeadLetterCounters } from './dead-letter.js'
import { History, type HistoryCounters, type HistoryFrame, type HistoryTuning } from './history/index.js'
import { InfluxTelemetryQuery } from './influx-query.js'
import type { TelemetryQuery } from './telemetry-query.js'
import { InfluxShipper, type ShipperCounters, type ShipperTuning } from './influx-shipper.js'
import { InfluxWriter } from './influx-writer.js'
import { Ingest, type IngestCounters, type IngestTuning } from './ingest.js'

export type { DeadLetterCounters, DeadLetterLoss, DeadLetterReason } from './dead-letter.js'
export { appendLine } from './influx-line.js'
export { TELEMETRY_MEASUREMENT, type ShipperCounters, type ShipperTuning } from './influx-shipper.js'
export type { InfluxWriter, QuerySeries, WriteResult } from './influx-writer.js'
export { Ingest, type IngestCounters, type IngestPeer, type IngestState, type IngestTuning } from './ingest.js'
export { HISTORY_DEFAULTS, HISTORY_HOUR_MS, type HistoryCounters, type HistoryTuning, type TrimReason } from './history/index.js'
export { AGGREGATE_FNS, type AggregateFn, type TelemetryPoint, type TelemetryQuery, type TelemetryRequest } from './telemetry-query.js'

/** What telemetry is built from. */
export interface TelemetryOptions {
  /** Where accepted frames wait until they are shipped (the node's own spool). */
  readonly spool: SpoolStore
  /**
   * The embedded history (docs/telemetry.md): its store, retention and size bound, or undefined when
   * `FLEETGATE_HISTORY=off`. Without InfluxDB it is where commits go, and the spool is not used.
   */
  readonly history: { readonly store: HistoryStore; readonly retentionMs: number; readonly maxBytes: number; readonly tuning?: Partial<HistoryTuning> } | undefined
  /** Registry tags go on every point (docs/telemetry.md). */
  readonly registry: Registry
  /** InfluxDB 1.x base URL and database, or undefined when shipping is off. */
  readonly influx: { readonly url: string; readonly database: string } | undefined
  /** Directory of the dead-letter file (the data dir). */
  readonly dataDir: string
  readonly log: Logger
  readonly clock: Clock
  readonly counters: IngestCounters & ShipperCounters & DeadLetterCounters & HistoryCounters
  /** Sustained frames per second per device; the bucket holds twice that (docs/configuration.md). */
  readonly ratePerSec: number
  /** The spool quota in bytes: above it acks stop until the shipper frees room. */
  readonly spoolMaxBytes: number
  /** Called with each frame's readings once durable (the MQTT bridge); must not block. */
  readonly publish: (message: TelemetryMessage) => void
  /** Whether MQTT egress lags: committed frames then wait for their acks; default never. */
  readonly egressBusy?: () => boolean
  /** Ingest's tuning knobs; defaults in INGEST_DEFAULTS. */
  readonly ingest?: Partial<IngestTuning>
  /** The shipper's tuning knobs; defaults in SHIPPER_DEFAULTS. */
  readonly shipper?: Partial<ShipperTuning>
}

/** Telemetry as the rest of the hub uses it. */
export interface Telemetry {
  /** Takes device frames (the device endpoint). */
  readonly ingest: Ingest
  /** InfluxDB, or undefined when there is none (readiness, hub figures). */
  readonly writer: InfluxWriter | undefined
  /** The history, or undefined when it is off (its size for the figures). */
  readonly history: History | undefined
  /** What answers the telemetry API: InfluxDB when configured, else the history, else nothing. */
  readonly query: TelemetryQuery | undefined
  /** Starts shipping (and creates the InfluxDB database when it can) and the history's upkeep. */
  start(): void
  /**
   * Commits what is accepted, ships what it can within its bound, and flushes the dead letter
   * (shutdown). The commit starts at once, before the call returns: call it before the sessions
   * close, since a closing session drops its frames that wait for a commit.
   */
  stop(): Promise<void>
}

/**
 * Builds ingest, the commit target, the shipper, the history and the InfluxDB writer, wired to each
 * other. With InfluxDB, commits go to the spool (and, with `FLEETGATE_HISTORY=on`, to the history in
 * the same transaction) and the shipper ships them; without it they go to the history alone, and a
 * spool left by an earlier run moves into the history. With neither, the spool takes commits and
 * releases them at once (acks keep their meaning; MQTT subscribers still get every reading).
 */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const { spool, log, clock, counters } = options
  const deadLetter = new DeadLetter({
    dir: options.dataDir,
    counters,
    clock,
    onError: (err) => log.error({ err }, 'dead letter write failed'),
  })
  const writer = options.influx === undefined ? undefined : new InfluxWriter({ ...options.influx, deadLetter })
  const history =
    options.history === undefined
      ? undefined
      : new History({ ...options.history, clock, log, counters, ...(options.history.tuning === undefined ? {} : { tuning: options.history.tuning }) })
  const spooling = writer !== undefined || history === undefined
  const target: CommitTarget =
    history !== undefined && writer === undefined
      ? commitTarget({ history })
      : commitTarget({ spool: { store: spool, maxBytes: options.spoolMaxBytes }, ...(history === undefined ? {} : { history }) })
  // Ingest and shipper call each other back (a commit wakes shipping, a trim resumes held
  // commits); each callback runs only after both exist.
  const ingest: Ingest = new Ingest({
    target,
    log,
    counters,
    publish: options.publish,
    committed: (frames, firstSeq) => shipper?.committed(frames, firstSeq),
    shippingLags: () => shipper?.lagging === true,
    ...(options.egressBusy === undefined ? {} : { egressBusy: options.egressBusy }),
    ratePerSec: options.ratePerSec,
    clock,
    ...(options.ingest === undefined ? {} : { tuning: options.ingest }),
  })
  // Without InfluxDB and with the history, the shipper is there only to move what an earlier run left in the spool.
  const shipper: InfluxShipper | undefined =
    spooling || spool.entries > 0
      ? new InfluxShipper({
          spool,
          registry: options.registry,
          writer,
          ...(writer === undefined && history !== undefined ? { history: (frames: readonly HistoryFrame[]) => history.append(history.blocks(frames)) } : {}),
          deadLetter,
          log,
          counters,
          relieved: () => ingest.resume(),
          clock,
          ...(options.shipper === undefined ? {} : { tuning: options.shipper }),
        })
      : undefined
  return {
    ingest,
    writer,
    history,
    query: writer !== undefined ? new InfluxTelemetryQuery(writer) : history,
    start() {
      // InfluxDB may be away at start; the writer creates the database on its first successful write too.
      writer?.ensureDatabase().catch((err: unknown) => log.warn({ err }, 'InfluxDB is not reachable yet; the spool holds telemetry'))
      shipper?.start()
      history?.start()
    },
    async stop() {
      // docs/configuration.md: flush what is accepted before exiting.
      await ingest.drain()
      await shipper?.stop()
      // a write still under way gives up: its batch stays in the spool for the next start
      writer?.close()
      await history?.stop()
      await deadLetter.flush()
    },
  }
}
