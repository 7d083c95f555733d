import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import type { AuditEntry } from '../../audit/audit-log.js'
import type { CommandRecord } from '../../commands/command-record.js'
import { HubError } from '../../errors.js'

/**
 * The embedded store: one lmdb environment under the data dir, one named database per concern.
 * lmdb is ACID and its async writes are batched into one transaction per tick (group commit); a
 * write's promise resolves once the transaction is committed, which survives a kill of the process.
 * With lmdb's `overlappingSync` (its default on Linux) the flush to disk runs beside later
 * transactions (see docs/decisions.md, Telemetry, on what "durably stored" means).
 */
export interface Store {
  readonly root: RootDatabase
  /** device id -> device record */
  readonly devices: Database<unknown, string>
  /** device id -> when its last session ended (Unix ms), apart from the record so a disconnect rewrites nothing else */
  readonly deviceLastSeen: Database<number, string>
  /** `tagKey=tagValue\0deviceId` -> null: devices by registry tag, sorted by id */
  readonly deviceTags: Database<null, string>
  /** spool sequence -> one accepted telemetry frame as stored (see spool.ts) */
  readonly spool: Database<Buffer, number>
  /** audit seq -> audit entry */
  readonly audit: Database<AuditEntry, number>
  /** [device, command id] -> command record */
  readonly commands: Database<CommandRecord, [string, string]>
  /** [device, createdAt, command id] -> null: a device's commands in creation order */
  readonly commandOrder: Database<null, [string, number, string]>
  /** [device, createdAt, command id] -> null: the commands waiting for their device */
  readonly commandQueue: Database<null, [string, number, string]>
  /** [expiresAt, device, command id] -> null: queued commands by when they expire */
  readonly commandExpiry: Database<null, [number, string, string]>
  /** [device, command id] -> deadline (Unix ms): sent commands waiting for their result */
  readonly commandSent: Database<number, [string, string]>
  /** [batch, device] -> command id: the members of a fan-out */
  readonly commandBatches: Database<string, [string, string]>
  /** small named values kept transactionally with the data they describe (e.g. spool byte total) */
  readonly meta: Database<unknown, string>
  /** Whether the environment answers a read (for `/readyz`). */
  healthy(): boolean
  close(): Promise<void>
}

/** Opens (creating when missing) the store in `dataDir/store`. */
export function openStore(dataDir: string): Store {
  const path = join(dataDir, 'store')
  let root: RootDatabase
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 })
    root = open({ path, maxDbs: 16, compression: false })
  } catch (cause) {
    throw new HubError('HUB_ERR_STORE', `cannot open the store at ${path}: ${(cause as Error).message}`, { cause })
  }
  // Cached: device records are read on every connect and by the shipper on every commit, and
  // changed rarely. Cached values are shared objects; records are readonly throughout the hub.
  const devices = root.openDB<unknown, string>({ name: 'devices', cache: true })
  const deviceLastSeen = root.openDB<number, string>({ name: 'device-last-seen' })
  const deviceTags = root.openDB<null, string>({ name: 'device-tags' })
  const spool = root.openDB<Buffer, number>({ name: 'spool', encoding: 'binary' })
  const meta = root.openDB<unknown, string>({ name: 'meta' })
  const audit = root.openDB<AuditEntry, number>({ name: 'audit' })
  const commands = root.openDB<CommandRecord, [string, string]>({ name: 'commands' })
  const commandOrder = root.openDB<null, [string, number, string]>({ name: 'command-order' })
  const commandQueue = root.openDB<null, [string, number, string]>({ name: 'command-queue' })
  const commandExpiry = root.openDB<null, [number, string, string]>({ name: 'command-expiry' })
  const commandSent = root.openDB<number, [string, string]>({ name: 'command-sent' })
  const commandBatches = root.openDB<string, [string, string]>({ name: 'command-batches' })
  return {
    root,
    devices,
    deviceLastSeen,
    deviceTags,
    spool,
    meta,
    audit,
    commands,
    commandOrder,
    commandQueue,
    commandExpiry,
    commandSent,
    commandBatches,
    healthy() {
      try {
        root.getStats()
        return true
      } catch {
        return false
      }
    },
    close: () => root.close(),
  }
}
