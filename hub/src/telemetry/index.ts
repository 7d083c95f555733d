// Telemetry: ingest (checks, group commit to the spool, acks), the shipper to InfluxDB (line
// protocol, batches, the dead letter) and the writer behind both the shipper and the telemetry API.
// `createTelemetry` builds them together and wires their callbacks to each other.
import type { TelemetryMessage } from '@fleetgate/bridge'
import type { Clock } from '@fleetgate/device-sdk'
import type { Registry } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { SpoolStore } from '../store/index.js'
import { DeadLetter, type DeadLetterCounters } from './dead-letter.js'
import { InfluxShipper, type ShipperCounters, type ShipperTuning } from './influx-shipper.js'
import { InfluxWriter } from './influx-writer.js'
import { Ingest, type IngestCounters, type IngestTuning } from './ingest.js'

export type { DeadLetterCounters, DeadLetterLoss, DeadLetterReason } from './dead-letter.js'
export { appendLine } from './influx-line.js'
export { TELEMETRY_MEASUREMENT, type ShipperCounters, type ShipperTuning } from './influx-shipper.js'
export type { InfluxWriter, QuerySeries, WriteResult } from './influx-writer.js'
export { Ingest, type IngestCounters, type IngestPeer, type IngestState, type IngestTuning } from './ingest.js'

/** What telemetry is built from. */
export interface TelemetryOptions {
  /** Where accepted frames wait until they are shipped (the node's own spool). */
  readonly spool: SpoolStore
  /** Registry tags go on every point (CONTRACT §5). */
  readonly registry: Registry
  /** InfluxDB 1.x base URL and database, or undefined when shipping is off. */
  readonly influx: { readonly url: string; readonly database: string } | undefined
  /** Directory of the dead-letter file (the data dir). */
  readonly dataDir: string
  readonly log: Logger
  readonly clock: Clock
  readonly counters: IngestCounters & ShipperCounters & DeadLetterCounters
  /** Sustained frames per second per device; the bucket holds twice that (CONTRACT §1). */
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
  /** InfluxDB, or undefined when shipping is off (the telemetry API, readiness, hub figures). */
  readonly writer: InfluxWriter | undefined
  /** Starts shipping (and creates the InfluxDB database when it can). */
  start(): void
  /**
   * Commits what is accepted, ships what it can within its bound, and flushes the dead letter
   * (shutdown). The commit starts at once, before the call returns: call it before the sessions
   * close, since a closing session drops its frames that wait for a commit.
   */
  stop(): Promise<void>
}

/** Builds ingest, the shipper and the InfluxDB writer over one spool, wired to each other. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const { spool, log, clock, counters } = options
  const deadLetter = new DeadLetter({
    dir: options.dataDir,
    counters,
    clock,
    onError: (err) => log.error({ err }, 'dead letter write failed'),
  })
  const writer = options.influx === undefined ? undefined : new InfluxWriter({ ...options.influx, deadLetter })
  // Ingest and shipper call each other back (a commit wakes shipping, a trim resumes held
  // commits); each callback runs only after both exist.
  const ingest: Ingest = new Ingest({
    spool,
    log,
    counters,
    publish: options.publish,
    committed: (frames) => shipper.committed(frames),
    shippingLags: () => shipper.lagging,
    ...(options.egressBusy === undefined ? {} : { egressBusy: options.egressBusy }),
    ratePerSec: options.ratePerSec,
    spoolMaxBytes: options.spoolMaxBytes,
    clock,
    ...(options.ingest === undefined ? {} : { tuning: options.ingest }),
  })
  const shipper: InfluxShipper = new InfluxShipper({
    spool,
    registry: options.registry,
    writer,
    deadLetter,
    log,
    counters,
    relieved: () => ingest.resume(),
    clock,
    ...(options.shipper === undefined ? {} : { tuning: options.shipper }),
  })
  return {
    ingest,
    writer,
    start() {
      // InfluxDB may be away at start; the writer creates the database on its first successful write too.
      writer?.ensureDatabase().catch((err: unknown) => log.warn({ err }, 'InfluxDB is not reachable yet; the spool holds telemetry'))
      shipper.start()
    },
    async stop() {
      // CONTRACT §1: flush what is accepted before exiting.
      await ingest.drain()
      await shipper.stop()
      await deadLetter.flush()
    },
  }
}
