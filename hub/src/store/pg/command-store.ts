import type pg from 'pg'
import type { CommandStore } from '../interfaces.js'
import { zeroCounts, type CommandRecord, type CommandStatus } from '../records.js'
import { GroupCommit } from './group-commit.js'
import { query, type Db } from './pool.js'

/** A write as the group commit takes it: a plain write, a compare-and-set, or an insert-if-absent. */
type CommandWrite =
  | { readonly kind: 'write'; readonly record: CommandRecord }
  | { readonly kind: 'writeIf'; readonly record: CommandRecord; readonly expected: CommandStatus }
  | { readonly kind: 'insert'; readonly record: CommandRecord }

/** What a write did: written or not; for an insert that found its id taken, the record stored. */
interface WriteOutcome {
  readonly written: boolean
  readonly existing?: CommandRecord
}

const keyOf = (record: CommandRecord): string => `${record.device}\0${record.id}`

/** Commands read in one query at most while a listing filters them in the hub. */
const LIST_PAGE = 500

/**
 * The columns a record is looked up by, as parallel arrays for `unnest`, in key order (so that
 * concurrent transactions lock rows in one order). `record` is the record as JSON text.
 */
function columns(records: readonly CommandRecord[]): unknown[] {
  const sorted = [...records].sort((a, b) => (a.device === b.device ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.device < b.device ? -1 : 1))
  return [
    sorted.map((r) => r.device),
    sorted.map((r) => r.id),
    sorted.map((r) => r.createdAt),
    sorted.map((r) => r.status),
    sorted.map((r) => r.expiresAt ?? null),
    sorted.map((r) => r.batch ?? null),
    sorted.map((r) => JSON.stringify(r)),
  ]
}

const UNNEST = 'unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::json[]) AS u(device, id, created_at, status, expires_at, batch, record)'

/** A plain write: the record replaces whatever is stored, and its columns follow it. */
const UPSERT = `INSERT INTO commands AS c (device, id, created_at, status, expires_at, batch, node, record)
  SELECT u.device, u.id, u.created_at, u.status, u.expires_at, u.batch, $8, u.record FROM ${UNNEST}
  ON CONFLICT (device, id) DO UPDATE SET created_at = EXCLUDED.created_at, status = EXCLUDED.status,
    expires_at = EXCLUDED.expires_at, batch = EXCLUDED.batch, node = EXCLUDED.node, record = EXCLUDED.record`

/** Inserts each record whose key is free; a key another transaction is inserting waits for it to end. */
const INSERT_IF_ABSENT = `INSERT INTO commands (device, id, created_at, status, expires_at, batch, node, record)
  SELECT u.device, u.id, u.created_at, u.status, u.expires_at, u.batch, $8, u.record FROM ${UNNEST}
  ON CONFLICT (device, id) DO NOTHING RETURNING device, id`

/** Compare-and-set: the row is locked by the UPDATE and its status checked after the lock. */
const WRITE_IF = `UPDATE commands AS c SET created_at = u.created_at, status = u.status, expires_at = u.expires_at,
    batch = u.batch, node = $8, record = u.record
  FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::json[], $9::text[])
    AS u(device, id, created_at, status, expires_at, batch, record, expected)
  WHERE c.device = u.device AND c.id = u.id AND c.status = u.expected
  RETURNING c.device, c.id`

/**
 * Command records in PostgreSQL's `commands`, one row per command: the record as JSON, and the
 * columns its indexes need (status, creation time, expiry, batch, and the node that wrote the
 * status), written with it in one statement, so that the indexes always follow the record as
 * stored. Writes go through a group commit, one transaction at a time, which keeps the writes of
 * one command in the order they were made; fan-out counts are kept by triggers in the same
 * transactions (see hub/sql/0001_initial.sql).
 */
export class PgCommandStore implements CommandStore {
  readonly #db: Db
  readonly #node: string
  readonly #writes: GroupCommit<CommandWrite, WriteOutcome>

  constructor(db: Db, node: string, maxWrites: number) {
    this.#db = db
    this.#node = node
    this.#writes = new GroupCommit(db, 'writing commands', maxWrites, (client, writes) => this.#apply(client, writes))
  }

  async get(device: string, id: string): Promise<CommandRecord | undefined> {
    const rows = await query<{ record: CommandRecord }>(this.#db, 'reading a command', 'SELECT record FROM commands WHERE device = $1 AND id = $2', [device, id])
    return rows[0]?.record
  }

  async write(after: CommandRecord): Promise<void> {
    await this.#writes.submit({ kind: 'write', record: after })
  }

  async insertIfAbsent(record: CommandRecord): Promise<CommandRecord | undefined> {
    return (await this.#writes.submit({ kind: 'insert', record })).existing
  }

  async writeIf(after: CommandRecord, expected: CommandStatus): Promise<boolean> {
    return (await this.#writes.submit({ kind: 'writeIf', record: after, expected })).written
  }

  async queued(device: string): Promise<CommandRecord[]> {
    return this.#records('reading a command queue', "SELECT record FROM commands WHERE device = $1 AND status = 'queued' ORDER BY created_at, id", [device])
  }

  async queuedCounts(): Promise<Map<string, number>> {
    const rows = await query<{ device: string; n: number }>(this.#db, 'counting queued commands', "SELECT device, count(*) AS n FROM commands WHERE status = 'queued' GROUP BY device")
    return new Map(rows.map((row) => [row.device, row.n]))
  }

  async expiredBy(now: number, limit: number): Promise<CommandRecord[]> {
    return this.#records(
      'reading expired commands',
      "SELECT record FROM commands WHERE status = 'queued' AND expires_at <= $1 ORDER BY expires_at, device, id LIMIT $2",
      [now, limit],
    )
  }

  async sent(): Promise<CommandRecord[]> {
    return this.#records('reading sent commands', "SELECT record FROM commands WHERE status = 'sent' AND node = $1", [this.#node])
  }

  async list(device: string, accept: ((record: CommandRecord) => boolean) | undefined, limit: number): Promise<CommandRecord[]> {
    const records: CommandRecord[] = []
    // `accept` runs in the hub, so records are read a page at a time until `limit` pass it.
    let cursor: [number, string] | undefined
    for (;;) {
      const page = await query<{ record: CommandRecord; created_at: number; id: string }>(
        this.#db,
        'listing commands',
        cursor === undefined
          ? 'SELECT record, created_at, id FROM commands WHERE device = $1 ORDER BY created_at DESC, id DESC LIMIT $2'
          : 'SELECT record, created_at, id FROM commands WHERE device = $1 AND (created_at, id) < ($3, $4) ORDER BY created_at DESC, id DESC LIMIT $2',
        cursor === undefined ? [device, LIST_PAGE] : [device, LIST_PAGE, cursor[0], cursor[1]],
      )
      for (const row of page) {
        if (accept !== undefined && !accept(row.record)) continue
        records.push(row.record)
        if (records.length >= limit) return records
      }
      const last = page[page.length - 1]
      if (page.length < LIST_PAGE || last === undefined) return records
      cursor = [last.created_at, last.id]
    }
  }

  async batchCounts(batch: string): Promise<Record<CommandStatus, number>> {
    const rows = await query<{ status: CommandStatus; n: number }>(this.#db, 'reading fan-out counts', 'SELECT status, n FROM command_batch_counts WHERE batch = $1', [batch])
    const counts = zeroCounts()
    for (const row of rows) counts[row.status] = row.n
    return counts
  }

  /** Resolves once every write submitted so far has settled. */
  settled(): Promise<void> {
    return this.#writes.settled()
  }

  async #records(what: string, sql: string, params: unknown[]): Promise<CommandRecord[]> {
    return (await query<{ record: CommandRecord }>(this.#db, what, sql, params)).map((row) => row.record)
  }

  /**
   * Makes a group's writes in submission order: runs of writes with distinct keys go together (up
   * to three statements, one per kind, whose order within a run does not matter); a key seen again
   * starts the next run.
   */
  async #apply(client: pg.PoolClient, writes: readonly CommandWrite[]): Promise<WriteOutcome[]> {
    const outcomes = new Map<CommandWrite, WriteOutcome>()
    let run: CommandWrite[] = []
    const keys = new Set<string>()
    for (const write of writes) {
      const key = keyOf(write.record)
      if (keys.has(key)) {
        await this.#applyRun(client, run, outcomes)
        run = []
        keys.clear()
      }
      keys.add(key)
      run.push(write)
    }
    await this.#applyRun(client, run, outcomes)
    return writes.map((write) => outcomes.get(write) ?? { written: false })
  }

  async #applyRun(client: pg.PoolClient, run: readonly CommandWrite[], outcomes: Map<CommandWrite, WriteOutcome>): Promise<void> {
    const plain = run.filter((write) => write.kind === 'write')
    const inserts = run.filter((write) => write.kind === 'insert')
    const conditional = run.flatMap((write) => (write.kind === 'writeIf' ? [write] : []))
    if (plain.length > 0) {
      await client.query(UPSERT, [...columns(plain.map((write) => write.record)), this.#node])
      for (const write of plain) outcomes.set(write, { written: true })
    }
    if (inserts.length > 0) {
      const stored = await client.query<{ device: string; id: string }>(INSERT_IF_ABSENT, [...columns(inserts.map((write) => write.record)), this.#node])
      const inserted = new Set(stored.rows.map((row) => `${row.device}\0${row.id}`))
      const taken = inserts.filter((write) => !inserted.has(keyOf(write.record)))
      const existing = new Map<string, CommandRecord>()
      if (taken.length > 0) {
        // A new statement sees what the inserts that won committed.
        const rows = await client.query<{ record: CommandRecord }>(
          'SELECT c.record FROM commands c JOIN unnest($1::text[], $2::text[]) AS u(device, id) ON c.device = u.device AND c.id = u.id',
          [taken.map((write) => write.record.device), taken.map((write) => write.record.id)],
        )
        for (const row of rows.rows) existing.set(keyOf(row.record), row.record)
      }
      for (const write of inserts) {
        const found = existing.get(keyOf(write.record))
        outcomes.set(write, inserted.has(keyOf(write.record)) ? { written: true } : { written: false, ...(found === undefined ? {} : { existing: found }) })
      }
    }
    if (conditional.length > 0) {
      const records = conditional.map((write) => write.record)
      const expected = new Map(conditional.map((write) => [keyOf(write.record), write.expected]))
      const params = columns(records)
      const sortedKeys = (params[0] as string[]).map((device, i) => `${device}\0${(params[1] as string[])[i]}`)
      const written = await client.query<{ device: string; id: string }>(WRITE_IF, [...params, this.#node, sortedKeys.map((key) => expected.get(key))])
      const done = new Set(written.rows.map((row) => `${row.device}\0${row.id}`))
      for (const write of conditional) outcomes.set(write, { written: done.has(keyOf(write.record)) })
    }
  }
}
