import type pg from 'pg'
import type { Claim, ClusterStore, NodeRecord, SessionOwner } from '../interfaces.js'
import { GroupCommit } from './group-commit.js'
import { query, type Db } from './pool.js'

/** A change of a session owner as the group commit takes it. */
type OwnerWrite =
  | { readonly kind: 'claim'; readonly device: string; readonly connectedAt: number }
  | { readonly kind: 'release'; readonly device: string; readonly epoch: number }

/** The condition of a node row that is alive, on the database's clock; `$1` is the bound in ms. */
const ALIVE = 'last_seen_at > now_ms() - $1'

/** Writes this node's row: `$1` id, `$2` started, `$3` version, `$4` sessions; a beat on the database's clock. */
const UPSERT_NODE = `INSERT INTO nodes (id, started_at, last_seen_at, sessions, version) VALUES ($1, $2, now_ms(), $4, $3)
  ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at, sessions = EXCLUDED.sessions, version = EXCLUDED.version`

/**
 * Nodes and session owners in PostgreSQL (`nodes`, `device_sessions`, hub/sql/0002_cluster.sql).
 * Claims and releases are grouped (group commit), so a connect storm costs a few transactions a
 * turn rather than one per device: a claim draws its epoch from one sequence while the owner row is
 * locked, and reads the owner it replaces under that lock, so of two claims of one device the later
 * sees the earlier.
 */
export class PgClusterStore implements ClusterStore {
  readonly #db: Db
  readonly #node: string
  readonly #deadAfterMs: number
  readonly #writes: GroupCommit<OwnerWrite, Claim | undefined>
  /** This run's start and version, as `join` registered them (a beat that finds no row writes it again). */
  #registration: readonly [number, string] = [0, '']

  constructor(db: Db, node: string, deadAfterMs: number, maxWrites: number) {
    this.#db = db
    this.#node = node
    this.#deadAfterMs = deadAfterMs
    this.#writes = new GroupCommit(db, 'recording session owners', maxWrites, (client, writes) => this.#apply(client, writes))
  }

  async join(startedAt: number, version: string): Promise<void> {
    this.#registration = [startedAt, version]
    await this.#query('registering the node', `${UPSERT_NODE} RETURNING id`, [this.#node, startedAt, version, 0])
    // The sessions of this node's previous run ended with it.
    await this.#query('forgetting the sessions of a previous run', 'UPDATE device_sessions SET node = NULL WHERE node = $1', [this.#node])
  }

  async beat(sessions: number): Promise<string[]> {
    const rows = await this.#query<{ id: string }>(
      'renewing the heartbeat',
      // The row is written again if it is gone (a survivor pruned it while this node could not beat).
      `WITH beat AS (${UPSERT_NODE} RETURNING id) SELECT id FROM nodes WHERE last_seen_at > now_ms() - $5 AND id <> $1 UNION ALL SELECT id FROM beat`,
      [this.#node, ...this.#registration, sessions, this.#deadAfterMs],
    )
    return rows.map((row) => row.id).sort()
  }

  async leave(): Promise<void> {
    await this.#writes.settled()
    await this.#query('removing the node', 'DELETE FROM nodes WHERE id = $1', [this.#node])
  }

  async nodes(retainMs: number): Promise<NodeRecord[]> {
    const rows = await this.#query<{ id: string; started_at: number; last_seen_at: number; sessions: number; version: string; alive: boolean }>(
      'listing nodes',
      `SELECT id, started_at, last_seen_at, sessions, version, ${ALIVE} AS alive FROM nodes WHERE last_seen_at > now_ms() - $2 ORDER BY id`,
      [this.#deadAfterMs, retainMs],
    )
    return rows.map((row) => ({ id: row.id, startedAt: row.started_at, lastSeenAt: row.last_seen_at, sessions: row.sessions, version: row.version, alive: row.alive }))
  }

  async claim(device: string, connectedAt: number): Promise<Claim> {
    const claimed = await this.#writes.submit({ kind: 'claim', device, connectedAt })
    if (claimed === undefined) throw new Error(`no claim result for ${device}`)
    return claimed
  }

  async release(device: string, epoch: number): Promise<void> {
    await this.#writes.submit({ kind: 'release', device, epoch })
  }

  async reassert(sessions: ReadonlyArray<readonly [string, number]>): Promise<string[]> {
    if (sessions.length === 0) return []
    const rows = await this.#query<{ device: string }>(
      'reasserting session owners',
      `UPDATE device_sessions s SET node = $3 FROM unnest($1::text[], $2::int8[]) AS u(device, epoch)
       WHERE s.device = u.device AND s.epoch = u.epoch AND s.node IS DISTINCT FROM $3 RETURNING s.device`,
      [sessions.map(([device]) => device), sessions.map(([, epoch]) => epoch), this.#node],
    )
    return rows.map((row) => row.device)
  }

  async owners(devices: readonly string[]): Promise<Map<string, SessionOwner>> {
    if (devices.length === 0) return new Map()
    const rows = await this.#query<{ device: string; node: string | null; epoch: number; connected_at: number | null; alive: boolean | null }>(
      'reading session owners',
      `SELECT s.device, s.node, s.epoch, s.connected_at, n.last_seen_at > now_ms() - $1 AS alive
       FROM device_sessions s LEFT JOIN nodes n ON n.id = s.node WHERE s.device = ANY($2)`,
      [this.#deadAfterMs, devices],
    )
    return new Map(
      rows.map((row) => [row.device, { node: row.node ?? undefined, epoch: row.epoch, connectedAt: row.connected_at ?? undefined, alive: row.alive === true }]),
    )
  }

  async releaseDead(limit: number): Promise<string[]> {
    // SKIP LOCKED: nodes sweeping at once each take other rows, and a claim under way keeps its own.
    const rows = await this.#query<{ device: string }>(
      'releasing the sessions of dead nodes',
      `UPDATE device_sessions s SET node = NULL FROM (
         SELECT device FROM device_sessions d WHERE d.node IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = d.node AND n.${ALIVE})
         ORDER BY device LIMIT $2 FOR UPDATE SKIP LOCKED) AS dead
       WHERE s.device = dead.device RETURNING s.device`,
      [this.#deadAfterMs, limit],
    )
    return rows.map((row) => row.device)
  }

  /** Resolves once every claim and release submitted so far has settled. */
  settled(): Promise<void> {
    return this.#writes.settled()
  }

  #query<Row extends pg.QueryResultRow>(what: string, sql: string, params: unknown[]): Promise<Row[]> {
    return query<Row>(this.#db, what, sql, params)
  }

  /** A group's claims and releases in submission order: runs of distinct devices go together, a device seen again starts the next run. */
  async #apply(client: pg.PoolClient, writes: readonly OwnerWrite[]): Promise<Array<Claim | undefined>> {
    const results = new Map<OwnerWrite, Claim>()
    let run: OwnerWrite[] = []
    const devices = new Set<string>()
    for (const write of writes) {
      if (devices.has(write.device)) {
        await this.#applyRun(client, run, results)
        run = []
        devices.clear()
      }
      devices.add(write.device)
      run.push(write)
    }
    await this.#applyRun(client, run, results)
    return writes.map((write) => results.get(write))
  }

  async #applyRun(client: pg.PoolClient, run: readonly OwnerWrite[], results: Map<OwnerWrite, Claim>): Promise<void> {
    const claims = run.flatMap((write) => (write.kind === 'claim' ? [write] : [])).sort((a, b) => (a.device < b.device ? -1 : 1))
    const releases = run.flatMap((write) => (write.kind === 'release' ? [write] : []))
    if (claims.length > 0) {
      const devices = claims.map((claim) => claim.device)
      // A first session makes the row, so that the claim below can lock it and read who held it.
      await client.query('INSERT INTO device_sessions (device, node, epoch) SELECT d, NULL, 0 FROM unnest($1::text[]) AS d ORDER BY d ON CONFLICT (device) DO NOTHING', [devices])
      const claimed = await client.query<{ device: string; epoch: number; previous: string | null }>(
        `UPDATE device_sessions s SET node = $3, epoch = nextval('session_epochs'), connected_at = old.at
         FROM (SELECT p.device, p.node, u.at FROM device_sessions p JOIN unnest($1::text[], $2::int8[]) AS u(device, at) ON p.device = u.device
               ORDER BY p.device FOR UPDATE OF p) AS old
         WHERE s.device = old.device RETURNING s.device, s.epoch, old.node AS previous`,
        [devices, claims.map((claim) => claim.connectedAt), this.#node],
      )
      const byDevice = new Map(claimed.rows.map((row) => [row.device, row]))
      for (const claim of claims) {
        const row = byDevice.get(claim.device)
        if (row !== undefined) results.set(claim, { epoch: row.epoch, previous: row.previous ?? undefined })
      }
    }
    if (releases.length > 0) {
      await client.query(
        `UPDATE device_sessions s SET node = NULL FROM unnest($1::text[], $2::int8[]) AS u(device, epoch)
         WHERE s.device = u.device AND s.epoch = u.epoch AND s.node = $3`,
        [releases.map((release) => release.device), releases.map((release) => release.epoch), this.#node],
      )
    }
  }
}
