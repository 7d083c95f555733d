import type { Logger } from '../../logger.js'
import type { HubStores } from '../interfaces.js'
import type { LocalStore } from '../lmdb/index.js'
import { PgAuditStore } from './audit-store.js'
import { PgBatchStore } from './batch-store.js'
import { PgClusterStore } from './cluster-store.js'
import { PgCommandStore } from './command-store.js'
import { PgListener } from './listener.js'
import { migrate } from './migrate.js'
import { clientConfig, openPool, postgresTuning, type Db, type PostgresTuning } from './pool.js'
import { PgRegistryStore } from './registry-store.js'
import { PgTwinStore } from './twin-store.js'

export { migrate, readMigrations, type Migration, type MigrationOutcome } from './migrate.js'
export { POSTGRES_DEFAULTS, type PostgresTuning } from './pool.js'
export { REGISTRY_CHANNEL } from './registry-store.js'

/** Where the shared stores live and who this node is. */
export interface PostgresStoresOptions {
  /** `postgres://user:password@host:port/database` (`FLEETGATE_POSTGRES_URL`). */
  readonly url: string
  /** This node's name (`FLEETGATE_NODE_ID`): on its connections and in the commands it sends. */
  readonly nodeId: string
  readonly log: Logger
  /** Tuning knobs; defaults in POSTGRES_DEFAULTS. */
  readonly tuning?: Partial<PostgresTuning>
}

/**
 * Opens the shared stores of cluster mode in PostgreSQL: migrates the schema (one node at a time),
 * connects the listener and loads the registry cache, then opens `local()` (the node's lmdb spool).
 * @throws HubError `HUB_ERR_STORE_UNAVAILABLE` when PostgreSQL cannot be reached, `HUB_ERR_STORE`
 * when it refuses the schema.
 */
export async function openPostgresStores(options: PostgresStoresOptions, local: () => LocalStore): Promise<HubStores> {
  const { url, nodeId, log } = options
  const tuning = postgresTuning(options.tuning)
  await migrate(clientConfig(url, nodeId, tuning, 'migrate'), log)
  const listener = new PgListener(clientConfig(url, nodeId, tuning, 'listener'), tuning, log)
  const pool = openPool(url, nodeId, tuning, (err) => {
    // An idle connection ended (a server restart): the listener checks whether the server answers.
    log.debug({ err: err.message }, 'PostgreSQL closed an idle pooled connection')
    listener.unreachable()
  })
  const db: Db = { pool, unreachable: () => listener.unreachable() }
  const registry = new PgRegistryStore(db, listener, tuning, log)
  const commands = new PgCommandStore(db, nodeId, tuning.groupMaxWrites, tuning.nodeDeadAfterMs)
  const cluster = new PgClusterStore(db, nodeId, tuning.nodeDeadAfterMs, tuning.groupMaxWrites)
  const audit = new PgAuditStore(db, tuning.groupMaxWrites)
  const closeShared = async (): Promise<void> => {
    await Promise.all([registry.settled(), commands.settled(), audit.settled(), cluster.settled()])
    registry.close()
    await listener.close()
    await pool.end()
  }
  let node: LocalStore
  try {
    await listener.start()
    node = local()
  } catch (err) {
    await closeShared()
    throw err
  }
  return {
    registry,
    commands,
    batches: new PgBatchStore(db),
    audit,
    twins: new PgTwinStore(db),
    spool: node.spool,
    history: node.history,
    shared: true,
    cluster,
    engines: [node.engine, { name: 'postgres', healthy: () => listener.healthy() }],
    async close() {
      await node.close()
      await closeShared()
    },
  }
}
