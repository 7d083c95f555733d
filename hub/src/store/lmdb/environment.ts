import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type RootDatabase } from 'lmdb'
import { HubError } from '../../errors.js'

/**
 * The lmdb environment under the data dir; each store opens its own named databases in it. lmdb is
 * ACID and its async writes are batched into one transaction per tick (group commit); a write's
 * promise resolves once the transaction is committed, which survives a kill of the process. With
 * lmdb's `overlappingSync` (its default on Linux) the flush to disk runs beside later transactions
 * (see docs/decisions.md, Telemetry, on what "durably stored" means).
 */
export function openEnvironment(dataDir: string): RootDatabase {
  const path = join(dataDir, 'store')
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 })
    // Named databases: 3 of the registry, 7 of commands, 2 of the spool, 1 each of batches and
    // audit, and the legacy `meta`; room for the concerns still to come (twins, history).
    return open({ path, maxDbs: 32, compression: false })
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
  const meta = root.openDB<unknown, string>({ name: 'meta' })
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
