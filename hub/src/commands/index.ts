// Commands: records, delivery, results, timeouts and TTLs (Commands), fan-out (CommandBatches), the
// request checks and the operator's view of a record. `createCommands` builds them together.
import type { Clock } from '@fleetgate/device-sdk'
import type { AuditLog } from '../audit/index.js'
import type { Registry, Sessions } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { BatchStore, CommandRecord, CommandStore } from '../store/index.js'
import { CommandBatches, type BatchesTuning } from './command-batches.js'
import { Commands, type CommandCounters, type CommandRouting, type CommandsTuning } from './commands.js'

export { BATCHES_DEFAULTS, CommandBatches, type BatchesTuning, type BatchStatus, type BatchTarget } from './command-batches.js'
export {
  checkCommandFields,
  commandView,
  DEFAULT_TIMEOUT_MS,
  MAX_PARAMS_BYTES,
  MAX_PARAMS_DEPTH,
  MAX_TIMEOUT_MS,
  MAX_TTL_MS,
  type CommandRequest,
} from './command-record.js'
export {
  COMMANDS_DEFAULTS,
  Commands,
  MAX_QUEUED_PER_DEVICE,
  type CommandCounters,
  type CommandRouting,
  type CommandsTuning,
  type CreateOutcome,
} from './commands.js'
export { COMMAND_STATUSES, type CommandRecord, type CommandStatus } from '../store/index.js'

/** What the command concern is built from. */
export interface CommandsConcernOptions {
  readonly store: CommandStore
  readonly batchStore: BatchStore
  readonly registry: Registry
  readonly sessions: Sessions
  readonly audit: AuditLog
  readonly log: Logger
  readonly clock: Clock
  readonly counters: CommandCounters
  /** Publishes a command's final record (MQTT result topic, docs/mqtt.md). */
  readonly publishResult: (record: CommandRecord) => void
  /** Told of every record once it is stored, new or changed (the live event stream); default none. */
  readonly stored?: (record: CommandRecord) => void
  /** Whether other nodes share the stores (PostgreSQL): fan-out counts are then read from the store. Default false. */
  readonly sharedStore?: boolean
  /** Cluster mode: how commands reach devices whose sessions other nodes hold; default none (one node). */
  readonly routing?: CommandRouting
  /** Tuning knobs of Commands; defaults in COMMANDS_DEFAULTS. */
  readonly commands?: Partial<CommandsTuning>
  /** Tuning knobs of fan-out; defaults in BATCHES_DEFAULTS. */
  readonly batches?: Partial<BatchesTuning>
}

/** The command concern as the rest of the hub uses it. */
export interface CommandsConcern {
  readonly commands: Commands
  readonly batches: CommandBatches
}

/** Builds Commands and fan-out over their stores, fan-out counting every change of a record. */
export function createCommands(options: CommandsConcernOptions): CommandsConcern {
  const { registry, log, clock } = options
  // Fan-out counts what Commands changes, and Commands is what fan-out creates through; the
  // callback runs only after both exist.
  const commands: Commands = new Commands({
    store: options.store,
    registry,
    sessions: options.sessions,
    audit: options.audit,
    log,
    counters: options.counters,
    publishResult: options.publishResult,
    ...(options.stored === undefined ? {} : { stored: options.stored }),
    changed: (before, after) => batches.changed(before, after),
    ...(options.routing === undefined ? {} : { routing: options.routing }),
    clock,
    ...(options.commands === undefined ? {} : { tuning: options.commands }),
  })
  const batches: CommandBatches = new CommandBatches({
    commands,
    commandStore: options.store,
    batchStore: options.batchStore,
    registry,
    log,
    clock,
    sharedStore: options.sharedStore ?? false,
    ...(options.batches === undefined ? {} : { tuning: options.batches }),
  })
  return { commands, batches }
}
