import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type Key, type RootDatabase } from 'lmdb'
import type { AuditEntry } from './audit.js'
import type { CommandRecord } from './command-record.js'
import { HubError } from './errors.js'

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

/** The lmdb environment's directory in a data dir. */
export const storeDir = (dataDir: string): string => join(dataDir, 'store')

/** Options of the lmdb environment, the same in every process that opens it (hub, start-up check, backup). */
export const ENVIRONMENT_OPTIONS = { maxDbs: 16, compression: false } as const

/** The named databases of the environment. */
export const STORE_DATABASES = [
  'devices',
  'device-last-seen',
  'device-tags',
  'spool',
  'meta',
  'audit',
  'commands',
  'command-order',
  'command-queue',
  'command-expiry',
  'command-sent',
  'command-batches',
] as const

/** Opens (creating when missing) the store in `dataDir/store`. */
export function openStore(dataDir: string): Store {
  const path = storeDir(dataDir)
  let root: RootDatabase
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 })
    root = open({ path, ...ENVIRONMENT_OPTIONS })
  } catch (cause) {
    throw new HubError('HUB_ERR_STORE', `cannot open the store at ${path}: ${(cause as Error).message}`, { cause })
  }
  const db = <V, K extends Key>(name: (typeof STORE_DATABASES)[number], options: { cache?: boolean; encoding?: 'binary' } = {}): Database<V, K> =>
    root.openDB<V, K>({ name, ...options })
  // Cached: device records are read on every connect and by the shipper on every commit, and
  // changed rarely. Cached values are shared objects; records are readonly throughout the hub.
  const devices = db<unknown, string>('devices', { cache: true })
  const deviceLastSeen = db<number, string>('device-last-seen')
  const deviceTags = db<null, string>('device-tags')
  const spool = db<Buffer, number>('spool', { encoding: 'binary' })
  const meta = db<unknown, string>('meta')
  const audit = db<AuditEntry, number>('audit')
  const commands = db<CommandRecord, [string, string]>('commands')
  const commandOrder = db<null, [string, number, string]>('command-order')
  const commandQueue = db<null, [string, number, string]>('command-queue')
  const commandExpiry = db<null, [number, string, string]>('command-expiry')
  const commandSent = db<number, [string, string]>('command-sent')
  const commandBatches = db<string, [string, string]>('command-batches')
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
