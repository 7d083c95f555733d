import type { KeyType, Tags } from '@fleetgate/device-sdk'
import { generateDeviceKey, PublicKeyCache, type DeviceKey, type IssuedSecret, type PublicKeyLookup } from './keys.js'
import type { Store } from '../store/lmdb/environment.js'

/** A device as the registry keeps it. Times are Unix milliseconds. */
export interface DeviceRecord {
  readonly id: string
  readonly key: DeviceKey
  /** The key before the last rotation, accepted until `until` (ms) for the rotation's grace period. */
  readonly previousKey?: DeviceKey & { readonly until: number }
  readonly tags: Tags
  readonly disabled: boolean
  readonly createdAt: number
  /**
   * When its last session ended, in records written before last-seen times were kept apart (see
   * Registry.touch); read it through Registry.lastSeenAt. Live sessions are tracked by the session table.
   */
  readonly lastSeenAt?: number
}

/** The key before the last rotation while its grace period lasts at `nowMs`, else undefined. */
export function previousKeyInGrace(device: DeviceRecord, nowMs: number): DeviceKey | undefined {
  const previous = device.previousKey
  return previous !== undefined && nowMs < previous.until ? previous : undefined
}

/** What an operator asks for when creating a device (already validated). */
export interface NewDevice {
  readonly id: string
  readonly keyType: KeyType
  /** A raw Ed25519 public key (base64url) the operator made; the hub then issues no secret. */
  readonly publicKey?: string
  readonly tags: Tags
}

/** A listing page: `next` is the cursor for `after`, or null at the end. */
export interface DevicePage {
  readonly items: DeviceRecord[]
  readonly next: string | null
}

/** Listing filters: every tag must match; `accept` narrows further (e.g. online only). */
export interface ListOptions {
  readonly tags: ReadonlyArray<readonly [string, string]>
  readonly after: string | undefined
  readonly limit: number
  readonly accept?: (id: string) => boolean
}

const tagIndexKey = (name: string, value: string, id: string): string => `${name}=${value}\0${id}`
const tagIndexPrefix = (name: string, value: string): string => `${name}=${value}\0`

/**
 * The device registry: records by id (an O(1) B-tree lookup, no scan) plus a tag index whose keys
 * sort by tag then id, so a tag filter with an `after` cursor is one range read. It also holds the
 * Ed25519 public keys of enabled devices as KeyObjects, kept in step with every key change.
 */
export class Registry {
  readonly #store: Store
  readonly #now: () => number
  /**
   * device id -> when its last session ended (Unix ms). A disconnect writes this one number
   * instead of decoding and re-encoding the whole record in a transaction of its own.
   */
  /** Last-seen times written and not yet committed, so that a read right after a disconnect has one. */
  readonly #lastSeenPending = new Map<string, number>()
  readonly #publicKeys = new PublicKeyCache()

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store
    this.#now = now
  }

  /** The Ed25519 public keys of enabled devices, imported once; a device never used yet is imported on its first lookup. */
  get publicKeys(): PublicKeyLookup {
    return this.#publicKeys
  }

  /** The device, or undefined. Synchronous: served from lmdb's memory map. */
  get(id: string): DeviceRecord | undefined {
    return this.#store.devices.get(id) as DeviceRecord | undefined
  }

  /** When the device's last session ended (Unix ms), or undefined when it never had one. */
  lastSeenAt(device: DeviceRecord): number | undefined {
    return this.#lastSeenPending.get(device.id) ?? this.#store.deviceLastSeen.get(device.id) ?? device.lastSeenAt
  }

  /** Creates the device; resolves undefined when the id exists. */
  async create(input: NewDevice): Promise<{ device: DeviceRecord; secret: IssuedSecret } | undefined> {
    const [result] = await this.createMany([input])
    return result
  }

  /**
   * Creates many devices in one transaction (group commit). Each entry resolves to the new
   * device and its secret, or undefined when its id already exists.
   */
  async createMany(
    inputs: readonly NewDevice[],
  ): Promise<Array<{ device: DeviceRecord; secret: IssuedSecret } | undefined>> {
    const createdAt = this.#now()
    const prepared = inputs.map((input) => {
      const issued =
        input.publicKey === undefined
          ? generateDeviceKey(input.keyType)
          : { key: { type: 'ed25519' as const, material: input.publicKey }, secret: {} }
      const device: DeviceRecord = { id: input.id, key: issued.key, tags: input.tags, disabled: false, createdAt }
      return { device, secret: issued.secret }
    })
    const { devices } = this.#store
    // The existence check runs inside the write transaction, so two concurrent creates of one id
    // cannot both win.
    const results = await this.#store.root.transaction(() =>
      prepared.map((entry) => {
        if (devices.get(entry.device.id) !== undefined) return undefined
        this.#write(undefined, entry.device)
        // A device deleted while online is touched when its session closes, after the delete.
        this.#store.deviceLastSeen.remove(entry.device.id)
        return entry
      }),
    )
    for (const result of results) {
      if (result === undefined) continue
      this.#lastSeenPending.delete(result.device.id)
      this.#holdKeys(result.device.id, result.device)
    }
    return results
  }

  /** Changes tags and/or the disabled flag; resolves undefined when the device does not exist. */
  async update(id: string, change: { tags?: Tags; disabled?: boolean }): Promise<DeviceRecord | undefined> {
    const after = await this.#store.root.transaction(() => {
      const before = this.get(id)
      if (before === undefined) return undefined
      const after: DeviceRecord = { ...before, ...change }
      this.#write(before, after)
      return after
    })
    if (after !== undefined) this.#holdKeys(id, after)
    return after
  }

  /** Deletes the device and its tag index entries; resolves false when it did not exist. */
  async remove(id: string): Promise<boolean> {
    const removed = await this.#store.root.transaction(() => {
      const before = this.get(id)
      if (before === undefined) return false
      this.#write(before, undefined)
      this.#store.deviceLastSeen.remove(id)
      return true
    })
    if (removed) {
      this.#lastSeenPending.delete(id)
      this.#holdKeys(id, undefined)
    }
    return removed
  }

  /**
   * Issues a new key of the device's type. The old one keeps opening sessions for `graceSec`
   * seconds (0: never again). Resolves undefined when the device does not exist.
   */
  async rotateKey(id: string, graceSec: number): Promise<{ device: DeviceRecord; secret: IssuedSecret } | undefined> {
    const current = this.get(id)
    if (current === undefined) return undefined
    const issued = generateDeviceKey(current.key.type)
    const until = this.#now() + graceSec * 1000
    const rotated = await this.#store.root.transaction(() => {
      const before = this.get(id)
      if (before === undefined) return undefined
      const { previousKey: _expired, ...rest } = before
      const after: DeviceRecord =
        graceSec > 0 ? { ...rest, key: issued.key, previousKey: { ...before.key, until } } : { ...rest, key: issued.key }
      this.#write(before, after)
      return after
    })
    if (rotated === undefined) return undefined
    this.#holdKeys(id, rotated)
    return { device: rotated, secret: issued.secret }
  }

  /**
   * Records when a device's session ended (best effort: a lost write only makes `lastSeenAt`
   * older). One small put, which lmdb batches with the other writes of the tick.
   */
  touch(id: string, lastSeenAt: number): void {
    this.#lastSeenPending.set(id, lastSeenAt)
    void this.#store.deviceLastSeen.put(id, lastSeenAt).finally(() => {
      if (this.#lastSeenPending.get(id) === lastSeenAt) this.#lastSeenPending.delete(id)
    })
  }

  /** One page of devices sorted by id, after the cursor, matching every filter. */
  list(options: ListOptions): DevicePage {
    const items: DeviceRecord[] = []
    const [firstTag, ...otherTags] = options.tags
    const matches = (device: DeviceRecord): boolean =>
      otherTags.every(([name, value]) => device.tags[name] === value) && (options.accept?.(device.id) ?? true)
    const take = (device: DeviceRecord | undefined): boolean => {
      if (device === undefined || !matches(device)) return false
      items.push(device)
      return items.length > options.limit
    }
    if (firstTag === undefined) {
      const start = options.after === undefined ? undefined : `${options.after}\0`
      for (const { value } of this.#store.devices.getRange(start === undefined ? {} : { start })) {
        if (take(value as DeviceRecord)) break
      }
    } else {
      const prefix = tagIndexPrefix(firstTag[0], firstTag[1])
      const start = options.after === undefined ? prefix : `${prefix}${options.after}\0`
      for (const key of this.#store.deviceTags.getKeys({ start, end: `${prefix.slice(0, -1)}\x01` })) {
        if (take(this.get(key.slice(prefix.length)))) break
      }
    }
    // One record past the page tells whether there is a next page without a second query.
    const more = items.length > options.limit
    if (more) items.pop()
    const last = items[items.length - 1]
    return { items, next: more && last !== undefined ? last.id : null }
  }

  /** Holds the public keys that a committed record verifies with: none when deleted, disabled or hmac. */
  #holdKeys(id: string, device: DeviceRecord | undefined): void {
    if (device === undefined || device.disabled || device.key.type !== 'ed25519') {
      this.#publicKeys.delete(id)
      return
    }
    const previous = previousKeyInGrace(device, this.#now())
    this.#publicKeys.set(id, previous !== undefined ? [device.key.material, previous.material] : [device.key.material])
  }

  /** Writes `after` in place of `before` (either may be absent), keeping the tag index in step. */
  #write(before: DeviceRecord | undefined, after: DeviceRecord | undefined): void {
    const { devices, deviceTags } = this.#store
    if (before !== undefined) {
      for (const [name, value] of Object.entries(before.tags)) deviceTags.remove(tagIndexKey(name, value, before.id))
    }
    if (after === undefined) {
      if (before !== undefined) devices.remove(before.id)
      return
    }
    devices.put(after.id, after)
    for (const [name, value] of Object.entries(after.tags)) deviceTags.put(tagIndexKey(name, value, after.id), null)
  }
}
