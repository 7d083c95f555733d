import pg from 'pg'
import { HubError } from '../../errors.js'
import { tune } from '../../tuning.js'

/** The schema that holds every table of the hub, so that it can share a database with others. */
export const SCHEMA = 'fleetgate'

/** The PostgreSQL stores' tuning knobs; defaults in POSTGRES_DEFAULTS. */
export interface PostgresTuning {
  /** Connections of the pool that the stores share (the listener has one more of its own); default 10. */
  readonly poolSize: number
  /** How long getting a connection may take before the call fails as unavailable, in ms; default 2,000. */
  readonly connectTimeoutMs: number
  /** How long one query may wait for its answer before the call fails as unavailable, in ms; default 10,000. */
  readonly queryTimeoutMs: number
  /** How often the listener connection checks that the server still answers, in ms; default 1,000. */
  readonly pingIntervalMs: number
  /** The listener's first wait before reconnecting, doubled per failure, in ms; default 100. */
  readonly reconnectMinMs: number
  /** The listener's longest wait between reconnects, in ms; default 1,000. */
  readonly reconnectMaxMs: number
  /** Writes grouped into one transaction at most (group commit); default 1,000. */
  readonly groupMaxWrites: number
  /** How long the registry cache remembers a deleted device's last version, in ms; default 60,000. */
  readonly tombstoneMs: number
  /**
   * A node whose last heartbeat is older than this is dead (docs/cluster.md: its devices read offline,
   * its sent commands end `timeout`), in ms, on PostgreSQL's clock; default 10,000.
   */
  readonly nodeDeadAfterMs: number
}

/** The defaults of PostgresTuning. */
export const POSTGRES_DEFAULTS: PostgresTuning = Object.freeze({
  poolSize: 10,
  connectTimeoutMs: 2000,
  queryTimeoutMs: 10_000,
  pingIntervalMs: 1000,
  reconnectMinMs: 100,
  reconnectMaxMs: 1000,
  groupMaxWrites: 1000,
  tombstoneMs: 60_000,
  nodeDeadAfterMs: 10_000,
})

/** Validated tuning: POSTGRES_DEFAULTS with what `given` sets. */
export const postgresTuning = (given: Partial<PostgresTuning> | undefined): PostgresTuning => tune('PostgreSQL stores', POSTGRES_DEFAULTS, given)

const INT8 = 20
/**
 * Type parsers of the stores' connections: bigint columns (times in ms, versions, seqs, counts)
 * read as numbers, since every one of them stays below 2^53; `json` columns are parsed by pg itself.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
}

/**
 * Connection settings of every connection the stores open: the schema, types, and a name that says
 * which node and what for (`fleetgate NODE pool`, `... listener`, `... migrate`, in pg_stat_activity).
 */
export function clientConfig(url: string, nodeId: string, tuning: PostgresTuning, role: 'pool' | 'listener' | 'migrate'): pg.ClientConfig {
  return {
    connectionString: url,
    // PostgreSQL keeps 63 bytes of it.
    application_name: `fleetgate ${nodeId} ${role}`,
    options: `-c search_path=${SCHEMA}`,
    connectionTimeoutMillis: tuning.connectTimeoutMs,
    // Waiting for another node's migration is expected.
    ...(role === 'migrate' ? {} : { query_timeout: tuning.queryTimeoutMs }),
    keepAlive: true,
    types: TYPES,
  }
}

/** The pool the stores share. Errors of idle connections (a server restart) are handed to `onIdleError`. */
export function openPool(url: string, nodeId: string, tuning: PostgresTuning, onIdleError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(url, nodeId, tuning, 'pool'), max: tuning.poolSize })
  pool.on('error', onIdleError)
  return pool
}

/** Node's codes for a peer that cannot be reached or went away. */
const NETWORK_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])
/** SQLSTATEs of a server that is going or not there yet: admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections. */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300'])
/**
 * pg raises a few of its own errors without a code (a connection that ended, the pool's connect
 * timeout, a query's read timeout); only their messages tell them apart.
 */
const UNCODED_UNAVAILABLE = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed)/

/** Whether `err` says that the server cannot be reached now (as opposed to refusing the statement). */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return NETWORK_ERRNOS.has(code) || UNAVAILABLE_STATES.has(code) || code.startsWith('08')
  return UNCODED_UNAVAILABLE.test(err.message)
}

/** SQLSTATEs after which the same transaction may simply run again: serialization_failure, deadlock_detected. */
export function isRetryable(err: unknown): boolean {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined
  return code === '40001' || code === '40P01'
}

/** A store error for the caller: `HUB_ERR_STORE_UNAVAILABLE` while the server cannot be reached, else `HUB_ERR_STORE`. */
export function storeError(what: string, cause: unknown): HubError {
  const message = cause instanceof Error ? cause.message : String(cause)
  return isUnavailable(cause)
    ? new HubError('HUB_ERR_STORE_UNAVAILABLE', `${what}: PostgreSQL is unreachable (${message})`, { cause })
    : new HubError('HUB_ERR_STORE', `${what}: PostgreSQL refused it (${message})`, { cause })
}

/** Where the stores call PostgreSQL: a failure is reported to `failed` (health) and thrown as a store error. */
export interface Db {
  readonly pool: pg.Pool
  /** Told of every call that failed because the server could not be reached. */
  readonly unreachable: () => void
}

/** Runs `sql` on the pool; errors become store errors naming `what`. */
export async function query<Row extends pg.QueryResultRow>(db: Db, what: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  try {
    return (await db.pool.query<Row>(sql, params)).rows
  } catch (err) {
    if (isUnavailable(err)) db.unreachable()
    throw storeError(what, err)
  }
}

/** Most times a transaction is run again after a deadlock or a serialization failure. */
const MAX_TRIES = 5

/**
 * Runs `work` in one transaction on a pooled connection: committed when it resolves, rolled back
 * when it throws, run again (up to 5 times) after a deadlock or a serialization failure, which
 * PostgreSQL resolves by aborting one side. A connection that failed is discarded.
 */
export async function transaction<T>(db: Db, what: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let client: pg.PoolClient | undefined
    try {
      client = await db.pool.connect()
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      client.release()
      return result
    } catch (err) {
      if (client !== undefined) {
        // A connection that cannot roll back is broken: it leaves the pool.
        const broken = await client.query('ROLLBACK').then(() => undefined, (rollbackErr: unknown) => rollbackErr as Error)
        client.release(broken ?? (isUnavailable(err) ? (err as Error) : undefined))
      }
      if (isRetryable(err) && attempt < MAX_TRIES) continue
      if (isUnavailable(err)) db.unreachable()
      throw storeError(what, err)
    }
  }
}
