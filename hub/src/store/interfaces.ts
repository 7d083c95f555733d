// What each concern asks of its persistence, with two implementations: lmdb (store/lmdb/, one node)
// and PostgreSQL (store/pg/, cluster mode) for the registry, commands, batches, audit and twins; the spool
// is always lmdb. What a network store can serve only asynchronously returns a promise; the
// per-frame path (the token check's device lookup, ingest's spool append) stays synchronous and local.
// hub/test/store-contract/ runs one suite per interface against both implementations.
import type { AuditEntry, BatchInfo, CommandRecord, CommandStatus, DeviceRecord, SpooledEntry, SpoolEntry, SpoolRun, TwinChange, TwinRecord } from './records.js'

/** A registry listing: devices sorted by id after `after`, each with every tag of `tags`. */
export interface DeviceQuery {
  readonly tags: ReadonlyArray<readonly [string, string]>
  /** The cursor: the last id of the previous page; undefined for the first. */
  readonly after: string | undefined
  readonly limit: number
}

/** A listing page: `next` is the cursor for `after`, or null at the end. */
export interface DevicePage {
  readonly items: DeviceRecord[]
  readonly next: string | null
}

/**
 * The page of `limit` records out of `items`, read one past the page: the extra one, dropped here,
 * tells whether there is a next page without a second read.
 */
export function pageOf(items: DeviceRecord[], limit: number): DevicePage {
  const more = items.length > limit
  if (more) items.pop()
  const last = items[items.length - 1]
  return { items, next: more && last !== undefined ? last.id : null }
}

/**
 * Device records, their last-seen times and the tag index.
 *
 * A second implementation must guarantee:
 * - `get` is synchronous and cheap (the token check calls it on every connect, the shipper on
 *   every commit): a network store serves it from a local cache that its own writes update before
 *   their promise resolves and that drops other nodes' changes within a second. It hands out the
 *   same object for a record until the record changes (the shipper keys its cache on it) and never
 *   changes a handed-out object.
 * - `insert` checks and writes each id atomically: of two concurrent inserts of one id, exactly one
 *   resolves `true`. An inserted device has no last-seen time (a deleted device's is gone with it).
 * - `update` runs `change` on the record as stored and writes the result in one atomic
 *   read-modify-write; `change` is pure, so it may run again on a retried transaction.
 * - `remove` deletes the record, its last-seen time and its tag index entries together.
 * - every promise resolves once its change is durable, and a read that starts after it sees it.
 */
export interface RegistryStore {
  /** The device, or undefined. */
  get(id: string): DeviceRecord | undefined
  /** When the device's last session ended, as `touch` stored it; undefined when it never had one. */
  lastSeenAt(id: string): Promise<number | undefined>
  /** Inserts each record whose id is free; `true` per record inserted, `false` where the id exists. */
  insert(records: readonly DeviceRecord[]): Promise<boolean[]>
  /** Replaces the record with `change(record)`; undefined when there is no such device. */
  update(id: string, change: (before: DeviceRecord) => DeviceRecord): Promise<DeviceRecord | undefined>
  /** Deletes the device; false when there was none. */
  remove(id: string): Promise<boolean>
  /** Records when a device's last session ended. Best effort: a lost write only leaves an older time. */
  touch(id: string, lastSeenAt: number): Promise<void>
  /** One page of devices sorted by id. */
  list(query: DeviceQuery): Promise<DevicePage>
  /**
   * Calls `listener` with each record the store's view takes, new, changed or gone (undefined):
   * this process's writes once committed, other nodes' once they reach this node (within a second).
   * Listeners run synchronously and must not throw.
   */
  watch(listener: (id: string, record: DeviceRecord | undefined) => void): void
}

/**
 * Command records and their indexes: a device's commands in creation order, its queue, queued
 * commands by expiry, sent commands waiting for a result, and the members of each fan-out.
 *
 * A second implementation must guarantee:
 * - `write` changes the record and every index it belongs to as one atomic step, all or nothing,
 *   durable when the promise resolves. The indexes follow the record as stored (read inside the
 *   same transaction), not the caller's idea of it, so a change whose write failed is made good by
 *   the record's next write;
 * - writes of one command apply in the order they were made (`Commands` writes `queued` and then
 *   `sent` without waiting in between);
 * - a read that starts after a write resolved sees it. Reads may miss writes still under way:
 *   `Commands` overlays the changes it has not seen settle;
 * - `insertIfAbsent` and `writeIf` decide inside the write's own transaction, against the record
 *   as stored by any node: of concurrent calls for one command, exactly one stores; and an insert
 *   with a queue bound counts its device's queued commands in that transaction too, so that
 *   creates on several nodes at once never pass the bound together.
 */
export interface CommandStore {
  get(device: string, id: string): Promise<CommandRecord | undefined>
  /** Writes a record, new or changed, with its indexes in step with its status. */
  write(after: CommandRecord): Promise<void>
  /**
   * Stores a new record unless its device already has a command with its id (an idempotent create,
   * across nodes), or, given `maxQueued` for a `queued` record, its device has that many queued.
   */
  insertIfAbsent(record: CommandRecord, options?: InsertOptions): Promise<InsertOutcome>
  /**
   * Writes `after` only if the stored record's status is `expected`: true when written, false when
   * the status was another or there is no such record. A compare-and-set: of several nodes that
   * claim one queued command for delivery (`queued` -> `sent`), or end one sent command
   * (`sent` -> its result or `timeout`), exactly one succeeds.
   */
  writeIf(after: CommandRecord, expected: CommandStatus): Promise<boolean>
  /** A device's queued commands, oldest first. */
  queued(device: string): Promise<CommandRecord[]>
  /** How many commands each device has queued (read once at start). */
  queuedCounts(): Promise<Map<string, number>>
  /** Which of `devices` have queued commands. */
  queuedAmong(devices: readonly string[]): Promise<Set<string>>
  /** Queued commands whose TTL ended at or before `now` (Unix ms), at most `limit`. */
  expiredBy(now: number, limit: number): Promise<CommandRecord[]>
  /**
   * Every sent command waiting for its result that this node wrote as sent (read once at start, to
   * re-arm their timeouts); on one node's lmdb, every sent command.
   */
  sent(): Promise<CommandRecord[]>
  /**
   * Sent commands whose deadline (`sentAt + timeoutMs`) is at or before `now` and whose sending
   * node is dead, at most `limit` (cluster mode: a survivor ends them `timeout`, docs/cluster.md). On
   * one node's lmdb none: that node's own timers end its sent commands.
   */
  orphaned(now: number, limit: number): Promise<CommandRecord[]>
  /** A device's commands, newest first, those `accept` takes (default all), at most `limit`. */
  list(device: string, accept: ((record: CommandRecord) => boolean) | undefined, limit: number): Promise<CommandRecord[]>
  /** The commands of a fan-out counted by status, as stored (on PostgreSQL: every node's changes). */
  batchCounts(batch: string): Promise<Record<CommandStatus, number>>
}

/** How `insertIfAbsent` stores a record. */
export interface InsertOptions {
  /** For a `queued` record: refused when its device has this many queued already; default no bound. */
  readonly maxQueued?: number
  /**
   * The node the record is written for (PostgreSQL's `node` column; `sent()` and `orphaned` go by
   * it): a node that creates a sent command for a device another node holds writes it as that
   * node's. Default this node; one node's lmdb has no other.
   */
  readonly node?: string
}

/** What `insertIfAbsent` did: stored, found the id taken (the record stored under it), or found the device's queue full. */
export type InsertOutcome =
  | { readonly kind: 'stored' }
  | { readonly kind: 'exists'; readonly record: CommandRecord }
  | { readonly kind: 'queue_full' }

/**
 * Fan-outs as recorded when they start (their commands are in the CommandStore).
 * A second implementation must guarantee: `create` is durable when it resolves, and a `get` that
 * starts after it, on any node, finds the batch.
 */
export interface BatchStore {
  create(info: BatchInfo): Promise<void>
  get(batch: string): Promise<BatchInfo | undefined>
}

/**
 * The append-only audit log.
 * A second implementation must guarantee: `append` gives the entry a `seq` greater than that of
 * every entry appended before it (across nodes: a database sequence), durable when it resolves;
 * `list` returns entries in `seq` order; entries are never changed or removed.
 */
export interface AuditStore {
  append(entry: Omit<AuditEntry, 'seq'>): Promise<AuditEntry>
  /** Entries with a seq above `after`, oldest first, at most `limit`. */
  list(after: number, limit: number): Promise<AuditEntry[]>
}

/**
 * Device twins (docs/twins.md), one record per device that ever had a change.
 *
 * A second implementation must guarantee:
 * - `update` runs `change` on the twin as stored (undefined when there is none) and, when it
 *   returns a record to write, writes it in one atomic read-modify-write: of two concurrent updates
 *   of one device (from any node), one sees the other's result. `change` is pure (the merge, the
 *   version and size checks), so it may run again on a retried transaction; the promise resolves
 *   with the outcome of the run that committed, once the write (if any) is durable: that is when
 *   a device gets its `twa` and an operator its 200, which must survive a kill of the process.
 * - `remove` deletes the twin; an update of the device that resolves after it found no twin.
 * - a read that starts after a write resolved sees it. Documents come back exactly as written:
 *   every key, `__proto__` included, stays an own member (no encoding may rename or drop it).
 * Updates of one device come one at a time from one node (Twins chains them), so the store need
 * not order them itself.
 */
export interface TwinStore {
  /** The stored twin, or undefined when the device never had a change. */
  get(device: string): Promise<TwinRecord | undefined>
  /**
   * The desired version of each of `devices` that has a twin (absent: none, version 0): what a
   * session must have got, read for many sessions at once (a connect storm, the cluster's sweep).
   */
  desiredVersions(devices: readonly string[]): Promise<Map<string, number>>
  /** See the guarantees above. */
  update<T>(device: string, change: (before: TwinRecord | undefined) => TwinChange<T>): Promise<T>
  /** Deletes a device's twin; false when there was none. */
  remove(device: string): Promise<boolean>
}

/**
 * The durable telemetry spool: an append-only log of accepted frames, keyed by a sequence number,
 * with its byte total. It is on the per-frame path, so it is always local to the node (lmdb):
 * ingest appends without waiting per frame and reads its size synchronously.
 *
 * An implementation must guarantee:
 * - `append` stores its entries in one atomic step and resolves, with the seq of the first (the
 *   others follow one by one), only once they survive a kill of the process: that is when the
 *   device gets its ack (docs/protocol.md). A failed append stores nothing and leaves its seqs unused.
 * - the byte total is exact after a crash (kept with the data, in the same transactions);
 * - `read` yields entries in seq order; `trim` removes entries for good and frees their bytes.
 */
export interface SpoolStore {
  /** The seq the next appended entry gets. */
  readonly nextSeq: number
  /** Bytes held, committed or in an append under way. */
  readonly bytes: number
  /** Entries held: appended and not yet removed with their group. */
  readonly entries: number
  /**
   * Appends `entries` as one group (seqs `firstSeq` to `firstSeq + entries.length - 1`, group the
   * last) and resolves with `firstSeq`; `alongside` runs inside the same transaction, so that what
   * it writes (the history's blocks) is durable exactly when the entries are. A throw in it stores nothing.
   */
  append(entries: readonly SpoolEntry[], alongside?: () => void): Promise<number>
  /** Entries after seq `after` and, when `before` is given, below it; oldest first, read as the caller walks. */
  read(after: number, before?: number): Iterable<SpooledEntry>
  /**
   * Takes note of entries that have been shipped, and removes each group once all its entries
   * were (until then its bytes count; after a restart a group partly shipped ships again whole).
   */
  trim(shipped: readonly SpoolRun[]): Promise<void>
}

/** A node of the cluster as its row says (docs/cluster.md, `GET /nodes`). */
export interface NodeRecord {
  readonly id: string
  /** When it started, Unix ms (its own clock). */
  readonly startedAt: number
  /** Its last heartbeat, Unix ms (PostgreSQL's clock). */
  readonly lastSeenAt: number
  /** Device sessions it held at its last heartbeat. */
  readonly sessions: number
  /** Its hub version. */
  readonly version: string
  /** Whether its last heartbeat is recent enough (within `deadAfterMs`). */
  readonly alive: boolean
}

/** A device's session owner as stored: the node that holds its live session, and that session's epoch. */
export interface SessionOwner {
  /** The node holding the session, or undefined when none does. */
  readonly node: string | undefined
  /** The epoch of the last session opened for the device, anywhere; epochs only grow. */
  readonly epoch: number
  /** When that session opened, Unix ms (the owner's clock). */
  readonly connectedAt: number | undefined
  /** Whether `node` is alive (a dead node's sessions are gone). */
  readonly alive: boolean
}

/** What claiming a device's session found: its new epoch, and the node that held it before (another node must close its session with 4001). */
export interface Claim {
  readonly epoch: number
  readonly previous: string | undefined
}

/**
 * The cluster's shared view of nodes and session owners (PostgreSQL only: one node on lmdb needs none).
 *
 * An implementation must guarantee:
 * - liveness is judged on one clock for all nodes (the database's): a node is alive while its last
 *   heartbeat is younger than `deadAfterMs`;
 * - `claim` gives each session an epoch greater than every epoch given before, for any device on
 *   any node, and returns the owner it replaced, atomically: of two claims of one device, the later
 *   one sees the earlier one's node;
 * - `release` clears an owner only while it still holds the epoch given, so a session that ended
 *   never clears a newer one's claim; `releaseDead` clears each dead node's owner once, for one caller.
 */
export interface ClusterStore {
  /** Registers this node (or replaces the row of its previous run) and forgets the sessions that run held. */
  join(startedAt: number, version: string): Promise<void>
  /** Renews this node's heartbeat with its session count; resolves with the nodes alive now. */
  beat(sessions: number): Promise<string[]>
  /** Removes this node's row (a clean stop): it reads as gone at once. */
  leave(): Promise<void>
  /** Every node that beat within `retainMs`, alive or not, by id. */
  nodes(retainMs: number): Promise<NodeRecord[]>
  /** Records that this node holds `device`'s newest session, opened at `connectedAt`. */
  claim(device: string, connectedAt: number): Promise<Claim>
  /** The session with `epoch` ended: the owner is cleared if it still is this node at that epoch. */
  release(device: string, epoch: number): Promise<void>
  /** Puts this node back as owner of sessions it still holds at their epoch (after a survivor cleared them, taking this node for dead); resolves with the devices it could. */
  reassert(sessions: ReadonlyArray<readonly [string, number]>): Promise<string[]>
  /** The stored owners of `devices` (those with a row). */
  owners(devices: readonly string[]): Promise<Map<string, SessionOwner>>
  /** Clears up to `limit` owners that are dead nodes; resolves with the devices cleared (by this call only). */
  releaseDead(limit: number): Promise<string[]>
}

/** Readings of one device within one hour, as the history (telemetry/history/) encodes them. */
export interface HistoryBlock {
  readonly deviceId: string
  /** Start of the hour the readings fall in (Unix ms, a multiple of HISTORY_HOUR_MS). */
  readonly hourMs: number
  /** The earliest reading's ts (Unix ms): a device's blocks are kept in (hour, minTs) order. */
  readonly minTs: number
  /** Readings (points) the block holds, for the time index. */
  readonly readings: number
  readonly value: Uint8Array
}

/** A block as stored, with its place among the device's blocks. */
export interface StoredHistoryBlock {
  readonly deviceId: string
  readonly hourMs: number
  readonly minTs: number
  /** Write order: a later commit's blocks have a higher order; a compacted block keeps the highest order it merged. */
  readonly order: number
  /** 0 for a block ingest wrote; a compaction writes one more than the highest part it merged at its order. */
  readonly part: number
  readonly value: Uint8Array
}

/** One device's hour in the history's time index: what its blocks hold. */
export interface HistoryHour {
  readonly hourMs: number
  readonly deviceId: string
  /** Bytes its blocks take, as HistoryStore.bytes counts them. */
  readonly bytes: number
  readonly readings: number
  readonly blocks: number
  /**
   * Blocks at or below this order are settled compacted blocks (or what a crash left of blocks
   * already merged into them); a compaction merges only the blocks above it. -1 before any.
   */
  readonly settledOrder: number
}

/**
 * The embedded telemetry history (docs/telemetry.md): blocks of readings keyed by device, hour, earliest
 * ts and write order, a time index of device-hours oldest first, and the byte total. Local to the
 * node (lmdb), like the spool, since ingest writes it in the commit that makes a frame durable.
 *
 * An implementation must guarantee:
 * - `write` runs inside a transaction already open on the same storage (SpoolStore.append's
 *   `alongside`), `append` in its own; either way the blocks, the time index and the byte total
 *   change together, durable when the transaction commits, and each commit's blocks get orders
 *   above every order given before.
 * - `read` sees one snapshot for its whole walk, however long the caller takes.
 * - `remove` removes the blocks that are still there and counts only those in the index and the total.
 */
export interface HistoryStore {
  /** Bytes held, as committed: each block's value plus a fixed overhead for its key. */
  readonly bytes: number
  /** Writes blocks inside the transaction that is open now (see SpoolStore.append). */
  write(blocks: readonly HistoryBlock[]): void
  /** Writes blocks in a transaction of their own; resolves once they are durable. */
  append(blocks: readonly HistoryBlock[]): Promise<void>
  /**
   * Writes the blocks a compaction of one device-hour made, at `order` and `part`, beside the blocks
   * they replace; with `settle`, records `order` as the device-hour's `settledOrder`.
   */
  writeCompacted(blocks: readonly HistoryBlock[], order: number, part: number, settle: boolean): Promise<void>
  /** A device's blocks with `hourMs` from `fromHourMs` to `toHourMs` (inclusive), in key order, read as the caller walks. */
  read(deviceId: string, fromHourMs: number, toHourMs: number): Iterable<StoredHistoryBlock>
  /** One device-hour's time index entry, or undefined when it holds no block. */
  hour(hourMs: number, deviceId: string): HistoryHour | undefined
  /** Time index entries after `after` (oldest hour first, then device id), at most `limit`. */
  hours(after: Pick<HistoryHour, 'hourMs' | 'deviceId'> | undefined, limit: number): HistoryHour[]
  /** Removes blocks of one device-hour; `readings` counts each block's readings, in the same order. Resolves with the bytes freed. */
  remove(blocks: readonly StoredHistoryBlock[], readings: readonly number[]): Promise<number>
}

/** A storage engine the stores live in, as `/readyz` reports it. */
export interface StorageEngine {
  /** `store` (the node's lmdb) or `postgres`. */
  readonly name: string
  /** Whether it answers now. */
  healthy(): boolean
}

/** Every store the hub uses, opened together from one place: one lmdb environment, or PostgreSQL beside the spool's lmdb. */
export interface HubStores {
  readonly registry: RegistryStore
  readonly commands: CommandStore
  readonly batches: BatchStore
  readonly audit: AuditStore
  readonly twins: TwinStore
  readonly spool: SpoolStore
  /** The node's own telemetry history (lmdb, beside the spool), used or not. */
  readonly history: HistoryStore
  /** Whether other nodes share the registry, commands, batches and audit (PostgreSQL): then only the store knows their counts. */
  readonly shared: boolean
  /** Nodes and session owners, in cluster mode (PostgreSQL); undefined on one node's lmdb. */
  readonly cluster: ClusterStore | undefined
  /** The engines behind the stores, for `/readyz`; REST writes are refused while one does not answer. */
  readonly engines: readonly StorageEngine[]
  /** Closes the storage once every write under way has settled. */
  close(): Promise<void>
}
