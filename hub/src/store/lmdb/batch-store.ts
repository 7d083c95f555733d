import type { Database, RootDatabase } from 'lmdb'
import type { BatchStore } from '../interfaces.js'
import type { BatchInfo } from '../records.js'
import { database, moveLegacyMeta } from './environment.js'

/** Hub 0.1 kept each batch in `meta` under this prefix. */
const LEGACY_PREFIX = 'batch:'

/** Fan-outs in lmdb's `command-batch-info` database, by batch id. */
export class LmdbBatchStore implements BatchStore {
  readonly #batches: Database<BatchInfo, string>

  constructor(root: RootDatabase) {
    this.#batches = database<BatchInfo, string>(root, 'command-batch-info')
    moveLegacyMeta(root, (key) => key.startsWith(LEGACY_PREFIX), (key, value) => this.#batches.put(key.slice(LEGACY_PREFIX.length), value as BatchInfo))
  }

  async create(info: BatchInfo): Promise<void> {
    await this.#batches.put(info.batch, info)
  }

  get(batch: string): Promise<BatchInfo | undefined> {
    return Promise.resolve(this.#batches.get(batch))
  }
}
