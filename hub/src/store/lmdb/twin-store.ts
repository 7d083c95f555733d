import type { Database, RootDatabase } from 'lmdb'
import type { TwinStore } from '../interfaces.js'
import type { TwinChange, TwinRecord } from '../records.js'
import { database } from './environment.js'

/**
 * Twins in lmdb's `twins` database, one record per device id, encoded as JSON: documents hold
 * whatever keys operators and devices chose, and msgpack would rename a `__proto__` key. Each
 * update is one transaction, read and write together; lmdb runs a device's updates in the order
 * they were asked for and resolves each once committed (group commit with the other writes of
 * the tick), which survives a kill of the process.
 */
export class LmdbTwinStore implements TwinStore {
  readonly #root: RootDatabase
  /** device id -> twin record */
  readonly #twins: Database<TwinRecord, string>

  constructor(root: RootDatabase) {
    this.#root = root
    this.#twins = database<TwinRecord, string>(root, 'twins', { encoding: 'json' })
  }

  get(device: string): Promise<TwinRecord | undefined> {
    return Promise.resolve(this.#twins.get(device))
  }

  desiredVersions(devices: readonly string[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>()
    for (const device of devices) {
      const twin = this.#twins.get(device)
      if (twin !== undefined) versions.set(device, twin.desiredVersion)
    }
    return Promise.resolve(versions)
  }

  update<T>(device: string, change: (before: TwinRecord | undefined) => TwinChange<T>): Promise<T> {
    return this.#root.transaction(() => {
      const { write, outcome } = change(this.#twins.get(device))
      if (write !== undefined) this.#twins.put(device, write)
      return outcome
    })
  }

  remove(device: string): Promise<boolean> {
    return this.#root.transaction(() => {
      if (this.#twins.get(device) === undefined) return false
      this.#twins.remove(device)
      return true
    })
  }
}
