import type { Database, RootDatabase } from 'lmdb'
import { pageOf, type DevicePage, type DeviceQuery, type RegistryStore } from '../interfaces.js'
import type { DeviceRecord } from '../records.js'
import { database } from './environment.js'

const tagIndexKey = (name: string, value: string, id: string): string => `${name}=${value}\0${id}`
const tagIndexPrefix = (name: string, value: string): string => `${name}=${value}\0`

/**
 * The registry in lmdb: records by id (an O(1) B-tree lookup, no scan) in `devices`, cached (read
 * on every connect and by the shipper on every commit, changed rarely; cached values are shared
 * objects and records are readonly throughout the hub); last-seen times apart in
 * `device-last-seen`, so a disconnect writes one number instead of re-encoding the record; and a
 * tag index in `device-tags` whose keys sort by tag then id, so a tag filter with an `after` cursor
 * is one range read.
 */
export class LmdbRegistryStore implements RegistryStore {
  readonly #root: RootDatabase
  /** device id -> device record */
  readonly #devices: Database<DeviceRecord, string>
  /** device id -> when its last session ended (Unix ms) */
  readonly #lastSeen: Database<number, string>
  /** `tagKey=tagValue\0deviceId` -> null: devices by registry tag, sorted by id */
  readonly #tags: Database<null, string>
  readonly #watchers: Array<(id: string, record: DeviceRecord | undefined) => void> = []

  constructor(root: RootDatabase) {
    this.#root = root
    this.#devices = database<DeviceRecord, string>(root, 'devices', { cache: true })
    this.#lastSeen = database<number, string>(root, 'device-last-seen')
    this.#tags = database<null, string>(root, 'device-tags')
  }

  /** Synchronous: served from lmdb's memory map and its record cache. */
  get(id: string): DeviceRecord | undefined {
    return this.#devices.get(id)
  }

  lastSeenAt(id: string): Promise<number | undefined> {
    return Promise.resolve(this.#lastSeen.get(id))
  }

  async insert(records: readonly DeviceRecord[]): Promise<boolean[]> {
    // The existence check runs inside the write transaction, so two concurrent inserts of one id
    // cannot both win.
    const inserted = await this.#root.transaction(() =>
      records.map((record) => {
        if (this.#devices.get(record.id) !== undefined) return false
        this.#write(undefined, record)
        // A device deleted while online is touched when its session closes, after the delete.
        this.#lastSeen.remove(record.id)
        return true
      }),
    )
    records.forEach((record, i) => {
      if (inserted[i] === true) this.#changed(record.id, record)
    })
    return inserted
  }

  async update(id: string, change: (before: DeviceRecord) => DeviceRecord): Promise<DeviceRecord | undefined> {
    const after = await this.#root.transaction(() => {
      const before = this.#devices.get(id)
      if (before === undefined) return undefined
      const changed = change(before)
      this.#write(before, changed)
      return changed
    })
    if (after !== undefined) this.#changed(id, after)
    return after
  }

  async remove(id: string): Promise<boolean> {
    const removed = await this.#root.transaction(() => {
      const before = this.#devices.get(id)
      if (before === undefined) return false
      this.#write(before, undefined)
      this.#lastSeen.remove(id)
      return true
    })
    if (removed) this.#changed(id, undefined)
    return removed
  }

  watch(listener: (id: string, record: DeviceRecord | undefined) => void): void {
    this.#watchers.push(listener)
  }

  /** One small put, which lmdb batches with the other writes of the tick. */
  async touch(id: string, lastSeenAt: number): Promise<void> {
    await this.#lastSeen.put(id, lastSeenAt)
  }

  list(query: DeviceQuery): Promise<DevicePage> {
    const items: DeviceRecord[] = []
    const [firstTag, ...otherTags] = query.tags
    const matches = (device: DeviceRecord): boolean => otherTags.every(([name, value]) => device.tags[name] === value)
    const take = (device: DeviceRecord | undefined): boolean => {
      if (device === undefined || !matches(device)) return false
      items.push(device)
      return items.length > query.limit
    }
    if (firstTag === undefined) {
      const start = query.after === undefined ? undefined : `${query.after}\0`
      for (const { value } of this.#devices.getRange(start === undefined ? {} : { start })) {
        if (take(value)) break
      }
    } else {
      const prefix = tagIndexPrefix(firstTag[0], firstTag[1])
      const start = query.after === undefined ? prefix : `${prefix}${query.after}\0`
      for (const key of this.#tags.getKeys({ start, end: `${prefix.slice(0, -1)}\x01` })) {
        if (take(this.get(key.slice(prefix.length)))) break
      }
    }
    return Promise.resolve(pageOf(items, query.limit))
  }

  /** One process writes this store: its commits are every change there is. */
  #changed(id: string, record: DeviceRecord | undefined): void {
    for (const listener of this.#watchers) listener(id, record)
  }

  /** Writes `after` in place of `before` (either may be absent), keeping the tag index in step. */
  #write(before: DeviceRecord | undefined, after: DeviceRecord | undefined): void {
    if (before !== undefined) {
      for (const [name, value] of Object.entries(before.tags)) this.#tags.remove(tagIndexKey(name, value, before.id))
    }
    if (after === undefined) {
      if (before !== undefined) this.#devices.remove(before.id)
      return
    }
    this.#devices.put(after.id, after)
    for (const [name, value] of Object.entries(after.tags)) this.#tags.put(tagIndexKey(name, value, after.id), null)
  }
}
