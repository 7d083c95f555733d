import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type Database, type Key, type RootDatabase } from 'lmdb'
import { HubError } from '../../errors.js'

/** The lmdb environment's directory in a data dir. */
export const storeDir = (dataDir: string): string => join(dataDir, 'store')

/**
 * Options of the lmdb environment, the same in every process that opens it (hub, start-up check,
 * backup). Named databases: 3 of the registry, 7 of commands, 2 of the spool, 3 of the history,
 * 1 each of batches, audit and twins, and the legacy `meta`.
 */
export const ENVIRONMENT_OPTIONS = { maxDbs: 32, compression: false } as const

/** Every named database of the environment, by the store that owns it (the start-up check walks them all). */
export const STORE_DATABASES = [
  'devices',
  'device-last-seen',
  'device-tags',
  'spool',
  'spool-bytes',
  'history',
  'history-hours',
  'history-meta',
  'audit',
  'commands',
  'command-order',
  'command-queue',
  'command-expiry',
  'command-sent',
  'command-batches',
  'command-batch-info',
  'twins',
  'meta',
] as const

/** One of STORE_DATABASES. */
export type StoreDatabase = (typeof STORE_DATABASES)[number]

/**
 * Opens (creating when missing) a named database of the environment: only those STORE_DATABASES
 * lists. Values are msgpack unless `encoding` says otherwise; `json` keeps every object key as
 * written (msgpack renames `__proto__`).
 */
export function database<V, K extends Key>(root: RootDatabase, name: StoreDatabase, options: { cache?: boolean; encoding?: 'binary' | 'json' } = {}): Database<V, K> {
  return root.openDB<V, K>({ name, ...options })
}

/**
 * The lmdb environment under the data dir; each store opens its own named databases in it. lmdb is
 * ACID and its async writes are batched into one transaction per tick (group commit); a write's
 * promise resolves once the transaction is committed, which survives a kill of the process. With
 * lmdb's `overlappingSync` (its default on Linux) the flush to disk runs beside later transactions
 * (see docs/decisions.md, Telemetry, on what "durably stored" means).
 */
export function openEnvironment(dataDir: string): RootDatabase {
  const path = storeDir(dataDir)
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 })
    return open({ path, ...ENVIRONMENT_OPTIONS })
  } catch (cause) {
    throw new HubError('HUB_ERR_STORE', `cannot open the store at ${path}: ${(cause as Error).message}`, { cause })
  }
}

/** Whether the environment answers a read (for `/readyz`). */
export function answers(root: RootDatabase): boolean {
  try {
    root.getStats()
    return true
  } catch {
    return false
  }
}

/**
 * Moves the entries of the `meta` database that `match` selects, where hub 0.1 kept values of
 * several concerns side by side, into the store that owns them now (`put`), in one transaction.
 * Runs when a store opens; from then on there is nothing left to move.
 */
export function moveLegacyMeta(root: RootDatabase, match: (key: string) => boolean, put: (key: string, value: unknown) => void): void {
  const meta = database<unknown, string>(root, 'meta')
  const keys: string[] = []
  for (const key of meta.getKeys()) if (typeof key === 'string' && match(key)) keys.push(key)
  if (keys.length === 0) return
  root.transactionSync(() => {
    for (const key of keys) {
      put(key, meta.get(key))
      meta.remove(key)
    }
  })
}
