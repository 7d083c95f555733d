import type { Clock, KeyType, Tags } from '@fleetgate/device-sdk'
import { pageOf, type DeviceKey, type DevicePage, type DeviceQuery, type DeviceRecord, type RegistryStore } from '../store/index.js'
import { generateDeviceKey, PublicKeyCache, type IssuedSecret, type PublicKeyLookup } from './keys.js'

/** The key before the last rotation while its grace period lasts at `nowMs`, else undefined. */
export function previousKeyInGrace(device: DeviceRecord, nowMs: number): DeviceKey | undefined {
  const previous = device.previousKey
  return previous !== undefined && nowMs < previous.until ? previous : undefined
}

/** What a session was admitted under: its device's record as it stood (creation time, forced disconnects counted). */
export interface SessionGrant {
  readonly createdAt: number
  readonly revocations: number
}

/** The grant of a session that `device` admits now. */
export const grantOf = (device: DeviceRecord): SessionGrant => ({ createdAt: device.createdAt, revocations: device.revocations ?? 0 })

/**
 * Why `device` as it is now (undefined: deleted) no longer admits a session granted `grant`, or
 * undefined while it does (docs/protocol.md: disabled, deleted, or its key rotated with `disconnect`).
 * A device deleted and created again under its id is another device.
 */
export function revokedReason(device: DeviceRecord | undefined, grant: SessionGrant): string | undefined {
  if (device === undefined || device.createdAt !== grant.createdAt) return 'device deleted'
  if (device.disabled) return 'device disabled'
  if ((device.revocations ?? 0) > grant.revocations) return 'device key rotated'
  return undefined
}

/** A narrowing of a listing that only the caller can judge (where sessions are): which of `ids` to keep. */
export type ListFilter = (ids: readonly string[]) => Promise<ReadonlySet<string>>

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
    // Keys follow every committed record, this node's changes and other nodes' alike.
    store.watch((id, record) => this.#holdKeys(id, record))
  }

  /** Calls `listener` with every change of a device's record, here or on another node (see RegistryStore.watch). */
  watch(listener: (id: string, record: DeviceRecord | undefined) => void): void {
    this.#store.watch(listener)
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
      return entry
    })
  }

  /**
   * Changes tags and/or the disabled flag; resolves undefined when the device does not exist.
   * Disabling counts a forced disconnect: the device's session ends wherever it is (revokedReason).
   */
  async update(id: string, change: { tags?: Tags; disabled?: boolean }): Promise<DeviceRecord | undefined> {
    return this.#store.update(id, (before) => ({
      ...before,
      ...change,
      ...(change.disabled === true && !before.disabled ? { revocations: (before.revocations ?? 0) + 1 } : {}),
    }))
  }

  /** Deletes the device and its tag index entries; resolves false when it did not exist. */
  async remove(id: string): Promise<boolean> {
    const removed = await this.#store.remove(id)
    if (removed) this.#lastSeenPending.delete(id)
    return removed
  }

  /**
   * Issues a new key of the device's type. The old one keeps opening sessions for `graceSec`
   * seconds (0: never again); `disconnect` counts a forced disconnect, which ends the live session
   * wherever it is (revokedReason). Resolves undefined when the device does not exist.
   */
  async rotateKey(id: string, graceSec: number, disconnect: boolean): Promise<{ device: DeviceRecord; secret: IssuedSecret } | undefined> {
    const current = this.get(id)
    if (current === undefined) return undefined
    const issued = generateDeviceKey(current.key.type)
    const until = this.#clock.now() + graceSec * 1000
    const rotated = await this.#store.update(id, (before) => {
      const { previousKey: _expired, ...rest } = before
      const revoked = disconnect ? { revocations: (before.revocations ?? 0) + 1 } : {}
      return graceSec > 0 ? { ...rest, ...revoked, key: issued.key, previousKey: { ...before.key, until } } : { ...rest, ...revoked, key: issued.key }
    })
    return rotated === undefined ? undefined : { device: rotated, secret: issued.secret }
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

  /**
   * One page of devices sorted by id, after the cursor, with every tag of the query and, given
   * `keep`, only those it keeps: pages are read from the store until the page is full or the
   * store has no more.
   */
  async list(query: DeviceQuery, keep?: ListFilter): Promise<DevicePage> {
    if (keep === undefined) return this.#store.list(query)
    const items: DeviceRecord[] = []
    // One past the page tells whether there is a next one.
    const want = query.limit + 1
    let after = query.after
    for (;;) {
      const page = await this.#store.list({ tags: query.tags, after, limit: want })
      const kept = await keep(page.items.map((device) => device.id))
      for (const device of page.items) {
        if (!kept.has(device.id)) continue
        items.push(device)
        if (items.length === want) break
      }
      if (items.length === want || page.next === null) break
      after = page.next
    }
    return pageOf(items, query.limit)
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
