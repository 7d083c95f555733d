import type pg from 'pg'
import type { AuditStore } from '../interfaces.js'
import type { AuditEntry } from '../records.js'
import { GroupCommit } from './group-commit.js'
import { query, type Db } from './pool.js'

type NewEntry = Omit<AuditEntry, 'seq'>

/**
 * The audit log in PostgreSQL's `audit`. Appends are grouped (group commit); each group takes its
 * seqs from the row of `audit_next`, whose lock it holds until it commits, so that entries commit
 * in seq order across nodes and a reader following `after` never passes one that commits later.
 */
export class PgAuditStore implements AuditStore {
  readonly #db: Db
  readonly #appends: GroupCommit<NewEntry, AuditEntry>

  constructor(db: Db, maxWrites: number) {
    this.#db = db
    this.#appends = new GroupCommit(db, 'appending to the audit log', maxWrites, (client, entries) => this.#append(client, entries))
  }

  append(entry: NewEntry): Promise<AuditEntry> {
    return this.#appends.submit(entry)
  }

  async list(after: number, limit: number): Promise<AuditEntry[]> {
    const rows = await query<{ seq: number; entry: NewEntry }>(this.#db, 'reading the audit log', 'SELECT seq, entry FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit])
    return rows.map((row) => ({ seq: row.seq, ...row.entry }))
  }

  /** Resolves once every write submitted so far has settled. */
  settled(): Promise<void> {
    return this.#appends.settled()
  }

  async #append(client: pg.PoolClient, entries: readonly NewEntry[]): Promise<AuditEntry[]> {
    const next = await client.query<{ first: number }>('UPDATE audit_next SET seq = seq + $1 RETURNING seq - $1 AS first', [entries.length])
    const first = next.rows[0]?.first ?? 1
    const stored = entries.map((entry, i): AuditEntry => ({ seq: first + i, ...entry }))
    await client.query('INSERT INTO audit (seq, entry) SELECT * FROM unnest($1::int8[], $2::json[])', [
      stored.map((entry) => entry.seq),
      entries.map((entry) => JSON.stringify(entry)),
    ])
    return stored
  }
}
