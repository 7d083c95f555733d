import type { Clock, KeyType, Tags } from '@fleetgate/device-sdk'
import type { DeviceKey, DevicePage, DeviceQuery, DeviceRecord, RegistryStore } from '../store/index.js'
import { generateDeviceKey, PublicKeyCache, type IssuedSecret, type PublicKeyLookup } from './keys.js'

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

/**
 * The device registry: devices and their keys over a RegistryStore. It issues keys, keeps the
 * Ed25519 public keys of enabled devices as KeyObjects in step with every key change, and holds
 * last-seen times until their write settles.
 */
export class Registry {
  readonly #store: RegistryStore
  readonly #clock: Clock
  /** Last-seen times written and not yet committed, so that a read right after a disconnect has one. */
  readonly #lastSeenPending = new Map<string, number>()
  readonly #publicKeys = new PublicKeyCache()

  constructor(store: RegistryStore, clock: Clock) {
    this.#store = store
    this.#clock = clock
  }

  /** The Ed25519 public keys of enabled devices, imported once; a device never used yet is imported on its first lookup. */
  get publicKeys(): PublicKeyLookup {
    return this.#publicKeys
  }

  /** The device, or undefined. Synchronous: the token check calls it on every connect. */
  get(id: string): DeviceRecord | undefined {
    return this.#store.get(id)
  }

  /** When the device's last session ended (Unix ms), or undefined when it never had one. */
  async lastSeenAt(device: DeviceRecord): Promise<number | undefined> {
    return this.#lastSeenPending.get(device.id) ?? (await this.#store.lastSeenAt(device.id)) ?? device.lastSeenAt
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
    const createdAt = this.#clock.now()
    const prepared = inputs.map((input) => {
      const issued =
        input.publicKey === undefined
          ? generateDeviceKey(input.keyType)
          : { key: { type: 'ed25519' as const, material: input.publicKey }, secret: {} }
      const device: DeviceRecord = { id: input.id, key: issued.key, tags: input.tags, disabled: false, createdAt }
      return { device, secret: issued.secret }
    })
    const inserted = await this.#store.insert(prepared.map((entry) => entry.device))
    return prepared.map((entry, i) => {
      if (inserted[i] !== true) return undefined
      this.#lastSeenPending.delete(entry.device.id)
      this.#holdKeys(entry.device.id, entry.device)
      return entry
    })
  }

  /** Changes tags and/or the disabled flag; resolves undefined when the device does not exist. */
  async update(id: string, change: { tags?: Tags; disabled?: boolean }): Promise<DeviceRecord | undefined> {
    const after = await this.#store.update(id, (before) => ({ ...before, ...change }))
    if (after !== undefined) this.#holdKeys(id, after)
    return after
  }

  /** Deletes the device and its tag index entries; resolves false when it did not exist. */
  async remove(id: string): Promise<boolean> {
    const removed = await this.#store.remove(id)
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
    const until = this.#clock.now() + graceSec * 1000
    const rotated = await this.#store.update(id, (before) => {
      const { previousKey: _expired, ...rest } = before
      return graceSec > 0 ? { ...rest, key: issued.key, previousKey: { ...before.key, until } } : { ...rest, key: issued.key }
    })
    if (rotated === undefined) return undefined
    this.#holdKeys(id, rotated)
    return { device: rotated, secret: issued.secret }
  }

  /**
   * Records when a device's session ended (best effort: a lost write only makes `lastSeenAt`
   * older).
   */
  touch(id: string, lastSeenAt: number): void {
    this.#lastSeenPending.set(id, lastSeenAt)
    void this.#store.touch(id, lastSeenAt).finally(() => {
      if (this.#lastSeenPending.get(id) === lastSeenAt) this.#lastSeenPending.delete(id)
    })
  }

  /** One page of devices sorted by id, after the cursor, matching every filter. */
  list(query: DeviceQuery): Promise<DevicePage> {
    return this.#store.list(query)
  }

  /** Holds the public keys that a committed record verifies with: none when deleted, disabled or hmac. */
  #holdKeys(id: string, device: DeviceRecord | undefined): void {
    if (device === undefined || device.disabled || device.key.type !== 'ed25519') {
      this.#publicKeys.delete(id)
      return
    }
    const previous = previousKeyInGrace(device, this.#clock.now())
    this.#publicKeys.set(id, previous !== undefined ? [device.key.material, previous.material] : [device.key.material])
  }
}
