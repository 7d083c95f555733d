import type { HistoryStore, HubStores, SpoolStore, StorageEngine } from '../interfaces.js'
import { LmdbAuditStore } from './audit-store.js'
import { LmdbBatchStore } from './batch-store.js'
import { LmdbCommandStore } from './command-store.js'
import { LmdbHistoryStore } from './history-store.js'
import { answers, openEnvironment } from './environment.js'
import { LmdbRegistryStore } from './registry-store.js'
import { LmdbSpoolStore } from './spool-store.js'
import { LmdbTwinStore } from './twin-store.js'
import { readAtStart } from './store-check.js'

/** A node's own lmdb environment with its spool and history: all that cluster mode keeps locally. */
export interface LocalStore {
  readonly spool: SpoolStore
  readonly history: HistoryStore
  /** `store`: whether the environment answers a read. */
  readonly engine: StorageEngine
  close(): Promise<void>
}

/**
 * Opens (creating when missing) the lmdb environment in `dataDir/store` with only the telemetry
 * spool and history in use: a cluster node's local storage.
 * @throws HubError `HUB_ERR_STORE` when the environment cannot be opened.
 */
export function openLmdbSpool(dataDir: string): LocalStore {
  const root = openEnvironment(dataDir)
  return {
    spool: readAtStart(dataDir, 'the telemetry spool', () => new LmdbSpoolStore(root)),
    history: readAtStart(dataDir, 'the telemetry history', () => new LmdbHistoryStore(root)),
    engine: { name: 'store', healthy: () => answers(root) },
    close: () => root.close(),
  }
}

/**
 * Opens (creating when missing) every store of the hub in one lmdb environment in
 * `dataDir/store`: one node's embedded storage.
 * @throws HubError `HUB_ERR_STORE` when the environment cannot be opened.
 */
export function openLmdbStores(dataDir: string): HubStores {
  const root = openEnvironment(dataDir)
  // Stores that read stored state when they open: a value that does not decode is damage, said as such.
  const loaded = <T>(what: string, read: () => T): T => readAtStart(dataDir, what, read)
  return {
    registry: new LmdbRegistryStore(root),
    commands: new LmdbCommandStore(root),
    batches: loaded('the fan-out batches', () => new LmdbBatchStore(root)),
    audit: loaded('the audit log', () => new LmdbAuditStore(root)),
    twins: new LmdbTwinStore(root),
    spool: loaded('the telemetry spool', () => new LmdbSpoolStore(root)),
    history: loaded('the telemetry history', () => new LmdbHistoryStore(root)),
    shared: false,
    cluster: undefined,
    engines: [{ name: 'store', healthy: () => answers(root) }],
    close: () => root.close(),
  }
}
