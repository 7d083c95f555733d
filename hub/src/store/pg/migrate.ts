import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { HubError } from '../../errors.js'
import type { Logger } from '../../logger.js'
import { SCHEMA, storeError } from './pool.js'

/**
 * The versioned SQL files, shipped with the package beside `src/` and `dist/` (`hub/sql/`), found
 * from this module wherever it runs: both trees have the same depth.
 */
const MIGRATIONS_DIR = fileURLToPath(new URL('../../../sql/', import.meta.url))

/** `NNNN_what.sql`: applied in the order of NNNN, each once. */
const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/

/**
 * The key of the session advisory lock that migrations take (`pg_advisory_lock`): "FleetgateMigr"
 * would not fit in a bigint, so it is the first 8 bytes of its SHA-256.
 */
const MIGRATION_LOCK_KEY = createHash('sha256').update('fleetgate.migrate').digest().readBigInt64BE(0).toString()

/** One migration as shipped. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
  /** SHA-256 of the file, kept when it is applied: a file changed after that is refused. */
  readonly sha256: string
}

/** The migrations in `dir`, by version. */
export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  let files: string[]
  try {
    files = readdirSync(dir)
  } catch (cause) {
    throw new HubError('HUB_ERR_STORE', `cannot read the PostgreSQL migrations in ${dir}: ${(cause as Error).message}`, { cause })
  }
  const migrations: Migration[] = []
  for (const name of files.sort()) {
    const match = MIGRATION_FILE.exec(name)
    if (match?.[1] === undefined) continue
    const sql = readFileSync(`${dir}/${name}`, 'utf8')
    migrations.push({ version: Number(match[1]), name, sql, sha256: createHash('sha256').update(sql).digest('hex') })
  }
  return migrations
}

/** What `migrate` did. */
export interface MigrationOutcome {
  /** Versions this call applied, in order (none when another node had already done it). */
  readonly applied: number[]
  /** The schema's version afterwards. */
  readonly version: number
}

/**
 * Creates or brings up to date the schema `fleetgate` from the versioned SQL files, each in its own
 * transaction with its row in `schema_migrations`. The whole runs under a session advisory lock,
 * so of several nodes starting at once against one database, one migrates and the others wait and
 * then find nothing left to do; a node that dies mid-way releases the lock with its connection,
 * and its unfinished migration rolled back. A migration applied before whose file has changed is
 * refused; versions this hub does not know (a newer node migrated) are logged and left alone:
 * migrations only ever add, so an older node keeps working during a rolling upgrade.
 * @throws HubError `HUB_ERR_STORE_UNAVAILABLE` when PostgreSQL cannot be reached, `HUB_ERR_STORE` otherwise.
 */
export async function migrate(config: pg.ClientConfig, log: Pick<Logger, 'info' | 'warn'>, migrations: readonly Migration[] = readMigrations()): Promise<MigrationOutcome> {
  // Its own connection: the session that holds the lock.
  const client = new pg.Client(config)
  try {
    await client.connect()
  } catch (err) {
    throw storeError('connecting to migrate the schema', err)
  }
  client.on('error', () => undefined) // a connection lost mid-way fails the query under way, which says so
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`)
    await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA}.schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    const done = new Map<number, { name: string; sha256: string }>()
    for (const row of (await client.query<{ version: number; name: string; sha256: string }>(`SELECT version, name, sha256 FROM ${SCHEMA}.schema_migrations`)).rows) {
      done.set(row.version, row)
    }
    const known = new Set(migrations.map((m) => m.version))
    const unknown = [...done.keys()].filter((version) => !known.has(version)).sort((a, b) => a - b)
    if (unknown.length > 0) log.warn({ versions: unknown }, 'the PostgreSQL schema has migrations this hub does not know (a newer hub applied them); continuing')
    const applied: number[] = []
    for (const migration of migrations) {
      const before = done.get(migration.version)
      if (before !== undefined) {
        if (before.sha256 !== migration.sha256) {
          throw new HubError('HUB_ERR_STORE', `PostgreSQL migration ${migration.name} was changed after it was applied (as ${before.name}); a migration is never edited, a new one is added`)
        }
        continue
      }
      await client.query('BEGIN')
      try {
        await client.query(`SET LOCAL search_path = ${SCHEMA}`)
        await client.query(migration.sql)
        await client.query(`INSERT INTO ${SCHEMA}.schema_migrations (version, name, sha256) VALUES ($1, $2, $3)`, [migration.version, migration.name, migration.sha256])
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw err
      }
      applied.push(migration.version)
      log.info({ version: migration.version, name: migration.name }, 'PostgreSQL schema migrated')
    }
    const version = Math.max(0, ...done.keys(), ...applied)
    return { applied, version }
  } catch (err) {
    if (err instanceof HubError) throw err
    throw storeError('migrating the schema', err)
  } finally {
    // Ending the session releases the advisory lock.
    await client.end().catch(() => undefined)
  }
}
