import type { TwinStore } from '../interfaces.js'
import type { TwinChange, TwinRecord } from '../records.js'
import { query, transaction, type Db } from './pool.js'

/**
 * Serializes the changes of one device's twin across nodes: a 64-bit hash of the id, in a namespace
 * of its own so that no other lock of the hub shares its keys, held until the transaction ends.
 */
const LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('fleetgate.twin:' || $1, 0))"

/**
 * Twins in PostgreSQL's `twins`, one row per device. An update locks the device (see LOCK), reads
 * the row, runs `change` and writes what it decided in the same transaction; a transaction run
 * again after a deadlock runs `change` again, which is pure.
 */
export class PgTwinStore implements TwinStore {
  readonly #db: Db

  constructor(db: Db) {
    this.#db = db
  }

  async get(device: string): Promise<TwinRecord | undefined> {
    const rows = await query<{ record: TwinRecord }>(this.#db, 'reading a twin', 'SELECT record FROM twins WHERE device = $1', [device])
    return rows[0]?.record
  }

  async desiredVersions(devices: readonly string[]): Promise<Map<string, number>> {
    if (devices.length === 0) return new Map()
    const rows = await query<{ device: string; version: number }>(
      this.#db,
      'reading desired versions',
      "SELECT device, (record->>'desiredVersion')::int8 AS version FROM twins WHERE device = ANY($1)",
      [devices],
    )
    return new Map(rows.map((row) => [row.device, row.version]))
  }

  update<T>(device: string, change: (before: TwinRecord | undefined) => TwinChange<T>): Promise<T> {
    return transaction(this.#db, 'changing a twin', async (client) => {
      await client.query(LOCK, [device])
      const rows = await client.query<{ record: TwinRecord }>('SELECT record FROM twins WHERE device = $1', [device])
      const { write, outcome } = change(rows.rows[0]?.record)
      if (write !== undefined) {
        await client.query('INSERT INTO twins (device, record) VALUES ($1, $2) ON CONFLICT (device) DO UPDATE SET record = EXCLUDED.record', [device, JSON.stringify(write)])
      }
      return outcome
    })
  }

  remove(device: string): Promise<boolean> {
    return transaction(this.#db, 'deleting a twin', async (client) => {
      await client.query(LOCK, [device])
      const deleted = await client.query('DELETE FROM twins WHERE device = $1', [device])
      return (deleted.rowCount ?? 0) > 0
    })
  }
}
