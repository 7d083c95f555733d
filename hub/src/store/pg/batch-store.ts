import type { BatchStore } from '../interfaces.js'
import type { BatchInfo } from '../records.js'
import { query, type Db } from './pool.js'

/** Fan-outs in PostgreSQL's `command_batches`, by batch id; their counts are the command store's (`command_batch_counts`). */
export class PgBatchStore implements BatchStore {
  readonly #db: Db

  constructor(db: Db) {
    this.#db = db
  }

  async create(info: BatchInfo): Promise<void> {
    await query(this.#db, 'recording a fan-out', 'INSERT INTO command_batches (batch, info) VALUES ($1, $2)', [info.batch, JSON.stringify(info)])
  }

  async get(batch: string): Promise<BatchInfo | undefined> {
    const rows = await query<{ info: BatchInfo }>(this.#db, 'reading a fan-out', 'SELECT info FROM command_batches WHERE batch = $1', [batch])
    return rows[0]?.info
  }
}
