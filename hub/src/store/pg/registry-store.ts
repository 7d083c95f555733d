import type pg from 'pg'
import type { Logger } from '../../logger.js'
import { pageOf, type DevicePage, type DeviceQuery, type RegistryStore } from '../interfaces.js'
import type { DeviceRecord } from '../records.js'
import { GroupCommit } from './group-commit.js'
import type { PgListener } from './listener.js'
import { query, transaction, type Db, type PostgresTuning } from './pool.js'

/** The channel every registry change notifies, in its own transaction: payload `version:id,version:id,...`. */
export const REGISTRY_CHANNEL = 'fleetgate_registry'
/** PostgreSQL takes notification payloads below 8,000 bytes. */
const MAX_PAYLOAD_BYTES = 7900
/** Ids read back in one query by the cache. */
const READ_CHUNK = 10_000

/** A cached device, or the memory of a deleted one (`record` undefined) while a late, older answer may still arrive. */
interface Entry {
  readonly record: DeviceRecord | undefined
  readonly version: number
  /** When the cache took it, counted in changes taken: a full check started after it saw what it holds. */
  readonly stamp: number
  /** For a deleted device: when (ms, this process's clock), to forget it after `tombstoneMs`. */
  readonly deletedAt?: number
}

/** Notification payloads for `changes` (version, id), each under PostgreSQL's limit. */
function payloads(changes: ReadonlyArray<readonly [number, string]>): string[] {
  const out: string[] = []
  let current = ''
  for (const [version, id] of changes) {
    const item = `${version}:${id}`
    if (current !== '' && current.length + 1 + item.length > MAX_PAYLOAD_BYTES) {
      out.push(current)
      current = ''
    }
    current = current === '' ? item : `${current},${item}`
  }
  if (current !== '') out.push(current)
  return out
}

const NOTIFY = `SELECT pg_notify('${REGISTRY_CHANNEL}', p) FROM unnest($1::text[]) AS p`

/** The tag index rows of `records`, as parallel arrays: name, value (UTF-8 bytes), device. */
function tagRows(records: readonly DeviceRecord[]): [string[], Buffer[], string[]] {
  const rows: [string[], Buffer[], string[]] = [[], [], []]
  for (const record of records) {
    for (const [name, value] of Object.entries(record.tags)) {
      rows[0].push(name)
      rows[1].push(Buffer.from(value, 'utf8'))
      rows[2].push(record.id)
    }
  }
  return rows
}

/** The records of `records` whose id is in `ids`, the first of each id only: of one id given twice, the first is the one stored. */
function firstOf(records: readonly DeviceRecord[], ids: ReadonlySet<string>): DeviceRecord[] {
  const seen = new Set<string>()
  return records.filter((record) => {
    if (!ids.has(record.id) || seen.has(record.id)) return false
    seen.add(record.id)
    return true
  })
}

const INSERT_TAGS = 'INSERT INTO device_tags (name, value, device) SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[])'

/**
 * The registry in PostgreSQL (`devices`, `device_tags`, `device_last_seen`), with every device
 * record cached in this process so that `get` stays synchronous on the connect path.
 *
 * The cache holds every device, loaded when the store opens, so a miss means "no such device"
 * and never waits: about 380 bytes of heap per device, 36 MiB at 100,000
 * (hub/test/bench/postgres-stores.ts measures it). Each record carries a version drawn while its row
 * is locked, so a device's versions rise in commit order, and the cache only ever takes a higher
 * version than it holds:
 * - this node's writes put their result in the cache after they commit, before they resolve;
 * - every write notifies `fleetgate_registry` in its transaction; the listener reads the notified
 *   devices back (one query per burst, on its own connection, so answers come in order) and
 *   takes what is newer, or forgets a device that is gone;
 * - after the listener reconnects (notifications sent meanwhile are lost), a full check compares
 *   every version with the table and reads what differs, before the store counts as healthy.
 * A deleted device's version is remembered for a minute, so that an older answer still on its way
 * cannot bring it back.
 */
export class PgRegistryStore implements RegistryStore {
  readonly #db: Db
  readonly #listener: PgListener
  readonly #tuning: PostgresTuning
  readonly #log: Pick<Logger, 'warn'>
  readonly #entries = new Map<string, Entry>()
  #stamp = 0
  /** Devices notified and not yet read back: id -> the highest version notified. */
  #notified = new Map<string, number>()
  #readScheduled = false
  readonly #touches: GroupCommit<readonly [string, number], void>
  readonly #sweep: ReturnType<typeof setInterval>
  readonly #watchers: Array<(id: string, record: DeviceRecord | undefined) => void> = []

  /** Registers with `listener` (start it afterwards: its first connect loads the cache). */
  constructor(db: Db, listener: PgListener, tuning: PostgresTuning, log: Pick<Logger, 'warn'>) {
    this.#db = db
    this.#listener = listener
    this.#tuning = tuning
    this.#log = log
    this.#touches = new GroupCommit(db, 'recording last-seen times', tuning.groupMaxWrites, (client, touches) => this.#writeTouches(client, touches))
    listener.listen(REGISTRY_CHANNEL, (payload) => this.#notifiedOf(payload))
    listener.onConnect(() => this.#fullCheck())
    this.#sweep = setInterval(() => this.#forgetDeleted(), tuning.tombstoneMs)
    this.#sweep.unref()
  }

  /** Synchronous: every device is in the cache. */
  get(id: string): DeviceRecord | undefined {
    return this.#entries.get(id)?.record
  }

  async lastSeenAt(id: string): Promise<number | undefined> {
    const rows = await query<{ at: number }>(this.#db, 'reading a last-seen time', 'SELECT at FROM device_last_seen WHERE device = $1', [id])
    return rows[0]?.at
  }

  async insert(records: readonly DeviceRecord[]): Promise<boolean[]> {
    const stored = await transaction(this.#db, 'creating devices', async (client) => {
      const inserted = await client.query<{ id: string }>(
        'INSERT INTO devices (id, record, version) SELECT u.id, u.record, 0 FROM unnest($1::text[], $2::json[]) AS u(id, record) ON CONFLICT (id) DO NOTHING RETURNING id',
        [records.map((r) => r.id), records.map((r) => JSON.stringify(r))],
      )
      const ids = inserted.rows.map((row) => row.id)
      if (ids.length === 0) return new Map<string, number>()
      // Versions are drawn once the rows are ours: after any delete of the same id has committed.
      const versions = await client.query<{ id: string; version: number }>(
        "UPDATE devices SET version = nextval('device_versions') WHERE id = ANY($1) RETURNING id, version",
        [ids],
      )
      await client.query(INSERT_TAGS, tagRows(firstOf(records, new Set(ids))))
      // A device deleted while online is touched when its session closes, after the delete.
      await client.query('DELETE FROM device_last_seen WHERE device = ANY($1)', [ids])
      await client.query(NOTIFY, [payloads(versions.rows.map((row) => [row.version, row.id] as const))])
      return new Map(versions.rows.map((row) => [row.id, row.version]))
    })
    const inserted = new Set(firstOf(records, new Set(stored.keys())))
    return records.map((record) => {
      if (!inserted.has(record)) return false
      this.#take(record.id, record, stored.get(record.id) ?? 0)
      return true
    })
  }

  async update(id: string, change: (before: DeviceRecord) => DeviceRecord): Promise<DeviceRecord | undefined> {
    const changed = await transaction(this.#db, 'changing a device', async (client) => {
      const rows = await client.query<{ record: DeviceRecord }>('SELECT record FROM devices WHERE id = $1 FOR UPDATE', [id])
      const before = rows.rows[0]?.record
      if (before === undefined) return undefined
      const after = change(before)
      const updated = await client.query<{ version: number }>(
        "UPDATE devices SET record = $2, version = nextval('device_versions') WHERE id = $1 RETURNING version",
        [id, JSON.stringify(after)],
      )
      const version = updated.rows[0]?.version ?? 0
      await client.query('DELETE FROM device_tags WHERE device = $1', [id])
      await client.query(INSERT_TAGS, tagRows([after]))
      await client.query(NOTIFY, [payloads([[version, id]])])
      return { after, version }
    })
    if (changed === undefined) return undefined
    this.#take(id, changed.after, changed.version)
    return changed.after
  }

  async remove(id: string): Promise<boolean> {
    const version = await transaction(this.#db, 'deleting a device', async (client) => {
      const deleted = await client.query('DELETE FROM devices WHERE id = $1', [id])
      if (deleted.rowCount !== 1) return undefined
      const drawn = await client.query<{ version: number }>("SELECT nextval('device_versions') AS version")
      const version = drawn.rows[0]?.version ?? 0
      await client.query('DELETE FROM device_last_seen WHERE device = $1', [id])
      await client.query(NOTIFY, [payloads([[version, id]])])
      return version
    })
    if (version === undefined) return false
    this.#take(id, undefined, version)
    return true
  }

  /**
   * Grouped with the other touches of the moment into one upsert. Best effort, as the interface
   * allows: a failure (PostgreSQL unreachable) is logged and resolves, leaving an older time.
   */
  async touch(id: string, lastSeenAt: number): Promise<void> {
    await this.#touches.submit([id, lastSeenAt]).catch((err: unknown) => {
      this.#log.warn({ err, deviceId: id }, 'last-seen time not stored')
    })
  }

  async list(query: DeviceQuery): Promise<DevicePage> {
    const items: DeviceRecord[] = []
    const [first, ...others] = query.tags
    const params: unknown[] = []
    const param = (value: unknown): string => {
      params.push(value)
      return `$${params.length}`
    }
    const from = first === undefined ? 'devices d' : `device_tags t JOIN devices d ON d.id = t.device`
    const where: string[] = first === undefined ? [] : [`t.name = ${param(first[0])}`, `t.value = ${param(Buffer.from(first[1], 'utf8'))}`]
    for (const [name, value] of others) {
      where.push(`EXISTS (SELECT 1 FROM device_tags o WHERE o.device = d.id AND o.name = ${param(name)} AND o.value = ${param(Buffer.from(value, 'utf8'))})`)
    }
    const cursorParam = param(query.after ?? null)
    where.push(`(${cursorParam}::text IS NULL OR d.id > ${cursorParam})`)
    // One record past the page tells whether there is a next page.
    const want = query.limit + 1
    const sql = `SELECT d.id, d.record FROM ${from} WHERE ${where.join(' AND ')} ORDER BY d.id LIMIT ${param(want)}`
    const rows = await this.#read('listing devices', sql, params)
    for (const row of rows) items.push(row.record)
    return pageOf(items, query.limit)
  }

  watch(listener: (id: string, record: DeviceRecord | undefined) => void): void {
    this.#watchers.push(listener)
  }

  /** Resolves once every write submitted so far has settled. */
  settled(): Promise<void> {
    return this.#touches.settled()
  }

  /** Stops the cache's timer (the listener and pool are closed by their owner). */
  close(): void {
    clearInterval(this.#sweep)
  }

  #read(what: string, sql: string, params: unknown[]): Promise<Array<{ id: string; record: DeviceRecord }>> {
    return query<{ id: string; record: DeviceRecord }>(this.#db, what, sql, params)
  }

  /** Takes `record` (undefined: deleted) at `version` into the cache unless it holds that version or a later one. */
  #take(id: string, record: DeviceRecord | undefined, version: number): void {
    const known = this.#entries.get(id)
    if (known !== undefined && known.version >= version) return
    this.#stamp++
    this.#entries.set(id, record === undefined ? { record, version, stamp: this.#stamp, deletedAt: Date.now() } : { record, version, stamp: this.#stamp })
    if (known?.record !== record) this.#changed(id, record)
  }

  #changed(id: string, record: DeviceRecord | undefined): void {
    for (const listener of this.#watchers) listener(id, record)
  }

  #notifiedOf(payload: string): void {
    for (const item of payload.split(',')) {
      const colon = item.indexOf(':')
      const version = Number(item.slice(0, colon))
      const id = item.slice(colon + 1)
      if (colon < 1 || !Number.isSafeInteger(version)) continue
      if ((this.#entries.get(id)?.version ?? 0) >= version) continue // this node's own write, already taken
      this.#notified.set(id, Math.max(version, this.#notified.get(id) ?? 0))
    }
    if (this.#notified.size === 0 || this.#readScheduled) return
    this.#readScheduled = true
    // The notifications of this turn are read back together.
    setImmediate(() => {
      this.#readScheduled = false
      void this.#readNotified()
    })
  }

  /** Reads the notified devices back on the listener's connection; a device not found was deleted at the version notified. */
  async #readNotified(): Promise<void> {
    const notified = this.#notified
    this.#notified = new Map()
    const ids = [...notified.keys()]
    try {
      for (let start = 0; start < ids.length; start += READ_CHUNK) {
        const chunk = ids.slice(start, start + READ_CHUNK)
        const rows = await this.#listener.run('reading changed devices', (client) =>
          client.query<{ id: string; record: DeviceRecord; version: number }>('SELECT id, record, version FROM devices WHERE id = ANY($1)', [chunk]),
        )
        const found = new Set<string>()
        for (const row of rows.rows) {
          found.add(row.id)
          this.#take(row.id, row.record, row.version)
        }
        for (const id of chunk) if (!found.has(id)) this.#take(id, undefined, notified.get(id) ?? 0)
      }
    } catch (err) {
      // The connection is gone: the full check after the reconnect reads everything that changed.
      this.#log.warn({ err }, 'registry cache: changed devices not read back; the full check after reconnecting will')
    }
  }

  /**
   * Compares every cached version with the table in one snapshot and reads what differs; a cached
   * device the table no longer has is dropped, unless the cache took it after the check began.
   */
  async #fullCheck(): Promise<void> {
    const startedAt = this.#stamp
    await this.#listener.run('checking the registry cache', async (client) => {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      try {
        const versions = await client.query<{ id: string; version: number }>('SELECT id, version FROM devices')
        const present = new Set<string>()
        const stale: string[] = []
        for (const row of versions.rows) {
          present.add(row.id)
          if ((this.#entries.get(row.id)?.version ?? 0) < row.version) stale.push(row.id)
        }
        for (let start = 0; start < stale.length; start += READ_CHUNK) {
          const rows = await client.query<{ id: string; record: DeviceRecord; version: number }>(
            'SELECT id, record, version FROM devices WHERE id = ANY($1)',
            [stale.slice(start, start + READ_CHUNK)],
          )
          for (const row of rows.rows) this.#take(row.id, row.record, row.version)
        }
        for (const [id, entry] of this.#entries) {
          if (entry.record !== undefined && !present.has(id) && entry.stamp <= startedAt) {
            this.#entries.delete(id)
            this.#changed(id, undefined)
          }
        }
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw err
      }
    })
  }

  #forgetDeleted(): void {
    const before = Date.now() - this.#tuning.tombstoneMs
    for (const [id, entry] of this.#entries) if (entry.deletedAt !== undefined && entry.deletedAt < before) this.#entries.delete(id)
  }

  async #writeTouches(client: pg.PoolClient, touches: ReadonlyArray<readonly [string, number]>): Promise<void[]> {
    // The last time given for a device wins; a device that is gone is skipped.
    const latest = new Map(touches)
    await client.query(
      `INSERT INTO device_last_seen (device, at)
       SELECT u.device, u.at FROM unnest($1::text[], $2::int8[]) AS u(device, at)
       WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = u.device) ORDER BY u.device
       ON CONFLICT (device) DO UPDATE SET at = EXCLUDED.at`,
      [[...latest.keys()], [...latest.values()]],
    )
    return touches.map(() => undefined)
  }
}
