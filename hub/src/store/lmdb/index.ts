import type { HubStores } from '../interfaces.js'
import { LmdbAuditStore } from './audit-store.js'
import { LmdbBatchStore } from './batch-store.js'
import { LmdbCommandStore } from './command-store.js'
import { answers, openEnvironment } from './environment.js'
import { LmdbRegistryStore } from './registry-store.js'
import { LmdbSpoolStore } from './spool-store.js'

/**
 * Opens (creating when missing) every store of the hub in one lmdb environment in
 * `dataDir/store`: one node's embedded storage.
 * @throws HubError `HUB_ERR_STORE` when the environment cannot be opened.
 */
export function openLmdbStores(dataDir: string): HubStores {
  const root = openEnvironment(dataDir)
  return {
    registry: new LmdbRegistryStore(root),
    commands: new LmdbCommandStore(root),
    batches: new LmdbBatchStore(root),
    audit: new LmdbAuditStore(root),
    spool: new LmdbSpoolStore(root),
    healthy: () => answers(root),
    close: () => root.close(),
  }
}
