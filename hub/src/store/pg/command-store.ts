import type pg from 'pg'
import { HubError } from '../../errors.js'
import type { CommandStore, InsertOptions, InsertOutcome } from '../interfaces.js'
import { commandKey, zeroCounts, type CommandRecord, type CommandStatus } from '../records.js'
import { GroupCommit } from './group-commit.js'
import { query, type Db } from './pool.js'

/** A write as the group commit takes it: a plain write, a compare-and-set, or an insert-if-absent. */
type CommandWrite =
  | { readonly kind: 'write'; readonly record: CommandRecord }
  | { readonly kind: 'writeIf'; readonly record: CommandRecord; readonly expected: CommandStatus }
  | { readonly kind: 'insert'; readonly record: CommandRecord; readonly maxQueued: number | undefined; readonly node: string | undefined }

/** What a write did: written or not; for an insert that found its id taken, the record stored; or its device's queue full. */
interface WriteOutcome {
  readonly written: boolean
  readonly existing?: CommandRecord
  readonly queueFull?: boolean
}

const keyOf = (record: CommandRecord): string => commandKey(record.device, record.id)

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

/** Inserts each record whose key is free, for the node given with it (`$8`); a key another transaction is inserting waits for it to end. */
const INSERT_IF_ABSENT = `INSERT INTO commands (device, id, created_at, status, expires_at, batch, node, record)
  SELECT u.device, u.id, u.created_at, u.status, u.expires_at, u.batch, u.node, u.record
  FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::json[], $8::text[])
    AS u(device, id, created_at, status, expires_at, batch, record, node)
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
  readonly #deadAfterMs: number

  /** `deadAfterMs`: a node whose last heartbeat is older is dead (its sent commands are orphaned). */
  constructor(db: Db, node: string, maxWrites: number, deadAfterMs: number) {
    this.#db = db
    this.#node = node
    this.#deadAfterMs = deadAfterMs
    this.#writes = new GroupCommit(db, 'writing commands', maxWrites, (client, writes) => this.#apply(client, writes))
  }

  async get(device: string, id: string): Promise<CommandRecord | undefined> {
    const rows = await query<{ record: CommandRecord }>(this.#db, 'reading a command', 'SELECT record FROM commands WHERE device = $1 AND id = $2', [device, id])
    return rows[0]?.record
  }

  async write(after: CommandRecord): Promise<void> {
    await this.#writes.submit({ kind: 'write', record: after })
  }

  async insertIfAbsent(record: CommandRecord, options: InsertOptions = {}): Promise<InsertOutcome> {
    const outcome = await this.#writes.submit({ kind: 'insert', record, maxQueued: options.maxQueued, node: options.node })
    if (outcome.written) return { kind: 'stored' }
    if (outcome.queueFull === true) return { kind: 'queue_full' }
    // Commands are never deleted, so a taken id has its record.
    if (outcome.existing === undefined) throw new HubError('HUB_ERR_STORE', `command ${record.device}/${record.id}: its id is taken but no record was found`)
    return { kind: 'exists', record: outcome.existing }
  }

  async writeIf(after: CommandRecord, expected: CommandStatus): Promise<boolean> {
    return (await this.#writes.submit({ kind: 'writeIf', record: after, expected })).written
  }

  async queued(device: string): Promise<CommandRecord[]> {
    return this.#records('reading a command queue', "SELECT record FROM commands WHERE device = $1 AND status = 'queued' ORDER BY created_at, id", [device])
  }

  async queuedAmong(devices: readonly string[]): Promise<Set<string>> {
    if (devices.length === 0) return new Set()
    const rows = await query<{ device: string }>(this.#db, 'finding queued commands', "SELECT DISTINCT device FROM commands WHERE status = 'queued' AND device = ANY($1)", [devices])
    return new Set(rows.map((row) => row.device))
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

  async orphaned(now: number, limit: number): Promise<CommandRecord[]> {
    return this.#records(
      'reading the sent commands of dead nodes',
      `SELECT record FROM commands c WHERE status = 'sent'
         AND (record->>'sentAt')::bigint + (record->>'timeoutMs')::bigint <= $1
         AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = c.node AND n.last_seen_at > now_ms() - $2)
       ORDER BY device, id LIMIT $3`,
      [now, this.#deadAfterMs, limit],
    )
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
      const full = await this.#overQueueBound(client, inserts)
      for (const write of full) outcomes.set(write, { written: false, queueFull: true })
      const admitted = inserts.filter((write) => !full.has(write))
      await this.#insert(client, admitted, outcomes)
    }
    if (conditional.length > 0) {

      const records = conditional.map((write) => write.record)
      const expected = new Map(conditional.map((write) => [keyOf(write.record), write.expected]))
      const params = columns(records)
      const sortedKeys = (params[0] as string[]).map((device, i) => commandKey(device, (params[1] as string[])[i] as string))
      const written = await client.query<{ device: string; id: string }>(WRITE_IF, [...params, this.#node, sortedKeys.map((key) => expected.get(key))])
      const done = new Set(written.rows.map((row) => commandKey(row.device, row.id)))
      for (const write of conditional) outcomes.set(write, { written: done.has(keyOf(write.record)) })
    }
  }

  async #insert(client: pg.PoolClient, inserts: ReadonlyArray<Extract<CommandWrite, { kind: 'insert' }>>, outcomes: Map<CommandWrite, WriteOutcome>): Promise<void> {
    if (inserts.length === 0) return
    const params = columns(inserts.map((write) => write.record))
    // columns() sorts by key: the nodes follow the same order.
    const nodeOf = new Map(inserts.map((write) => [keyOf(write.record), write.node ?? this.#node]))
    const nodes = (params[0] as string[]).map((device, i) => nodeOf.get(commandKey(device, (params[1] as string[])[i] as string)) ?? this.#node)
    const stored = await client.query<{ device: string; id: string }>(INSERT_IF_ABSENT, [...params, nodes])
    const inserted = new Set(stored.rows.map((row) => commandKey(row.device, row.id)))
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

  /**
   * The bounded inserts of queued records that their devices' queues have no room for, counted in
   * submission order. Each device's queue is locked for the rest of the transaction first (an
   * advisory lock, taken in device order), so creates on several nodes at once count one after the
   * other; an insert whose id is taken does not count (it will find the record stored).
   */
  async #overQueueBound(client: pg.PoolClient, inserts: ReadonlyArray<Extract<CommandWrite, { kind: 'insert' }>>): Promise<Set<CommandWrite>> {
    const bounded = inserts.filter((write) => write.maxQueued !== undefined && write.record.status === 'queued')
    const full = new Set<CommandWrite>()
    if (bounded.length === 0) return full
    const devices = [...new Set(bounded.map((write) => write.record.device))].sort()
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('fleetgate.queue:' || d, 0)) FROM (SELECT d FROM unnest($1::text[]) AS d ORDER BY d) AS sorted", [devices])
    const counted = await client.query<{ device: string; n: number }>(
      "SELECT device, count(*) AS n FROM commands WHERE status = 'queued' AND device = ANY($1) GROUP BY device",
      [devices],
    )
    const present = await client.query<{ device: string; id: string }>(
      'SELECT c.device, c.id FROM commands c JOIN unnest($1::text[], $2::text[]) AS u(device, id) ON c.device = u.device AND c.id = u.id',
      [bounded.map((write) => write.record.device), bounded.map((write) => write.record.id)],
    )
    const taken = new Set(present.rows.map((row) => commandKey(row.device, row.id)))
    const queued = new Map(counted.rows.map((row) => [row.device, row.n]))
    for (const write of bounded) {
      if (taken.has(keyOf(write.record))) continue
      const n = queued.get(write.record.device) ?? 0
      if (n >= (write.maxQueued ?? Number.POSITIVE_INFINITY)) full.add(write)
      else queued.set(write.record.device, n + 1)
    }
    return full
  }
}
