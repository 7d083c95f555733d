import { generateKeyPairSync } from 'node:crypto'
import type { RootDatabase } from 'lmdb'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type KeyType } from '@fleetgate/device-sdk'
import { signToken } from '@fleetgate/device-sdk/wire'
import { SteppingClock } from '../../test/support/clock.js'
import { tempDir } from '../../test/support/hub.js'
import { DeviceAuthenticator } from '../src/auth/index.js'
import { Registry, type DeviceRecord, type IssuedSecret } from '../src/devices/index.js'
import type { DevicePage, DeviceQuery, RegistryStore } from '../src/store/index.js'
import { openEnvironment } from '../src/store/lmdb/environment.js'
import { LmdbRegistryStore } from '../src/store/lmdb/registry-store.js'

const START_MS = 1_700_000_000_000

/**
 * The lmdb registry store, where the test may change a record at once, as a commit made elsewhere
 * (another request, another node) would, while a token check waits for the thread pool.
 */
class ChangingStore implements RegistryStore {
  readonly changed = new Map<string, DeviceRecord | undefined>()
  constructor(readonly inner: RegistryStore) {}
  get(id: string): DeviceRecord | undefined {
    return this.changed.has(id) ? this.changed.get(id) : this.inner.get(id)
  }
  lastSeenAt(id: string): Promise<number | undefined> {
    return this.inner.lastSeenAt(id)
  }
  insert(records: readonly DeviceRecord[]): Promise<boolean[]> {
    return this.inner.insert(records)
  }
  update(id: string, change: (before: DeviceRecord) => DeviceRecord): Promise<DeviceRecord | undefined> {
    return this.inner.update(id, change)
  }
  remove(id: string): Promise<boolean> {
    return this.inner.remove(id)
  }
  touch(id: string, lastSeenAt: number): Promise<void> {
    return this.inner.touch(id, lastSeenAt)
  }
  list(query: DeviceQuery): Promise<DevicePage> {
    return this.inner.list(query)
  }
  watch(listener: (id: string, record: DeviceRecord | undefined) => void): void {
    this.inner.watch(listener)
  }
}

/** The secret a create or rotation showed, as signToken takes it. */
function secretOf(secret: IssuedSecret): string {
  if ('key' in secret && typeof secret.key === 'string') return secret.key
  if ('privateKey' in secret && typeof secret.privateKey === 'string') return secret.privateKey
  throw new Error('no secret was issued')
}

describe('Registry and DeviceAuthenticator', () => {
  let dir: { path: string; cleanup(): void }
  let root: RootDatabase
  let store: ChangingStore
  let clock: SteppingClock
  let registry: Registry
  let auth: DeviceAuthenticator

  const token = (id: string, keyType: KeyType, key: string): Promise<string> =>
    signToken({ deviceId: id, keyType, key, expSec: Math.floor(clock.nowMs / 1000) + 600 })
  const accepts = async (id: string, keyType: KeyType, key: string): Promise<boolean> => (await auth.verify(await token(id, keyType, key))).ok
  const create = async (id: string, keyType: KeyType = 'ed25519'): Promise<{ material: string; secret: string }> => {
    const created = await registry.create({ id, keyType, tags: {} })
    if (created === undefined) throw new Error(`${id} exists`)
    return { material: created.device.key.material, secret: secretOf(created.secret) }
  }
  const rotate = async (id: string, graceSec: number): Promise<{ material: string; secret: string }> => {
    const rotated = await registry.rotateKey(id, graceSec, false)
    if (rotated === undefined) throw new Error(`${id} is missing`)
    return { material: rotated.device.key.material, secret: secretOf(rotated.secret) }
  }

  beforeEach(() => {
    dir = tempDir('fleetgate-registry-')
    root = openEnvironment(dir.path)
    store = new ChangingStore(new LmdbRegistryStore(root))
    clock = new SteppingClock(START_MS)
    registry = new Registry(store, clock)
    auth = new DeviceAuthenticator(registry, clock)
  })
  afterEach(async () => {
    await root.close()
    dir.cleanup()
  })

  describe('held Ed25519 public keys', () => {
    it('imports a key when the device is created and verifies with that same KeyObject', async () => {
      const generated = await create('gen')
      const pair = generateKeyPairSync('ed25519')
      const raw = pair.publicKey.export({ format: 'jwk' }).x as string
      const brought = await registry.create({ id: 'brought', keyType: 'ed25519', publicKey: raw, tags: {} })
      expect(registry.publicKeys.held('gen')).toEqual([generated.material])
      expect(registry.publicKeys.held('brought')).toEqual([raw])
      expect(brought?.device.key.material).toBe(raw)

      const held = registry.publicKeys.get('gen', generated.material)
      expect(held.equals(registry.publicKeys.get('brought', raw))).toBe(false)
      expect(await accepts('gen', 'ed25519', generated.secret)).toBe(true)
      expect(await accepts('gen', 'ed25519', generated.secret)).toBe(true)
      // Verifying imported nothing: the same KeyObject is still the one held.
      expect(registry.publicKeys.get('gen', generated.material)).toBe(held)
      expect(registry.publicKeys.size).toBe(2)
    })

    it('holds nothing for hmac devices', async () => {
      const device = await create('mac', 'hmac')
      expect(await accepts('mac', 'hmac', device.secret)).toBe(true)
      expect(registry.publicKeys.held('mac')).toEqual([])
      expect(registry.publicKeys.size).toBe(0)
    })

    it('keeps the old key through a rotation grace, and only the new one after a rotation without grace', async () => {
      const first = await create('rot')
      const firstKey = registry.publicKeys.get('rot', first.material)

      const second = await rotate('rot', 60)
      expect(registry.publicKeys.held('rot')).toEqual([second.material, first.material])
      // The previous key moved over as it was, not imported again.
      expect(registry.publicKeys.get('rot', first.material)).toBe(firstKey)
      expect(await accepts('rot', 'ed25519', first.secret)).toBe(true)
      expect(await accepts('rot', 'ed25519', second.secret)).toBe(true)

      clock.nowMs += 61_000
      expect(await accepts('rot', 'ed25519', first.secret)).toBe(false)
      expect(await accepts('rot', 'ed25519', second.secret)).toBe(true)

      const third = await rotate('rot', 0)
      expect(registry.publicKeys.held('rot')).toEqual([third.material])
      expect(await accepts('rot', 'ed25519', second.secret)).toBe(false)
      expect(await accepts('rot', 'ed25519', third.secret)).toBe(true)
      expect(registry.publicKeys.held('rot')).toEqual([third.material])
    })

    it('does not hold a previous key whose grace has ended by the next change', async () => {
      const first = await create('graced')
      const second = await rotate('graced', 10)
      clock.nowMs += 11_000
      await registry.update('graced', { tags: { site: 'lab' } })
      expect(registry.publicKeys.held('graced')).toEqual([second.material])
      expect(await accepts('graced', 'ed25519', first.secret)).toBe(false)
    })

    it('drops the keys of a disabled device and holds them again once it is enabled', async () => {
      const device = await create('off')
      await registry.update('off', { disabled: true })
      expect(registry.publicKeys.held('off')).toEqual([])
      expect(await auth.verify(await token('off', 'ed25519', device.secret))).toMatchObject({ ok: false, reason: 'disabled' })
      expect(registry.publicKeys.held('off')).toEqual([])

      await registry.update('off', { disabled: false })
      expect(registry.publicKeys.held('off')).toEqual([device.material])
      expect(await accepts('off', 'ed25519', device.secret)).toBe(true)
    })

    it('drops the keys of a deleted device, and a device made again under its id holds only its own', async () => {
      const old = await create('gone')
      await create('stays')
      expect(await registry.remove('gone')).toBe(true)
      expect(registry.publicKeys.held('gone')).toEqual([])
      expect(registry.publicKeys.size).toBe(1)
      expect(await auth.verify(await token('gone', 'ed25519', old.secret))).toMatchObject({ ok: false, reason: 'unknown_device' })

      const again = await create('gone')
      expect(registry.publicKeys.held('gone')).toEqual([again.material])
      expect(await accepts('gone', 'ed25519', old.secret)).toBe(false)
      expect(await accepts('gone', 'ed25519', again.secret)).toBe(true)
    })

    it('imports the key of a device loaded from disk on its first use, once', async () => {
      const first = await create('disk')
      const second = await rotate('disk', 60)
      const reopened = new Registry(store, clock)
      auth = new DeviceAuthenticator(reopened, clock)
      expect(reopened.publicKeys.held('disk')).toEqual([])
      expect(await accepts('disk', 'ed25519', second.secret)).toBe(true)
      expect(reopened.publicKeys.held('disk')).toEqual([second.material])
      // A token of the previous key is tried against the current key first, so both are now held.
      expect(await accepts('disk', 'ed25519', first.secret)).toBe(true)
      expect(reopened.publicKeys.held('disk')).toEqual([first.material, second.material])
      const held = reopened.publicKeys.get('disk', first.material)
      expect(await accepts('disk', 'ed25519', first.secret)).toBe(true)
      expect(reopened.publicKeys.get('disk', first.material)).toBe(held)
      expect(reopened.publicKeys.held('disk')).toEqual([first.material, second.material])
    })
  })

  describe('Ed25519 signatures checked off the event loop', () => {
    it('answers hmac tokens and refusals before any signature check at once, Ed25519 signatures later', async () => {
      const mac = await create('sync-mac', 'hmac')
      const ed = await create('async-ed')
      expect(auth.verify(await token('sync-mac', 'hmac', mac.secret))).toMatchObject({ ok: true })
      expect(auth.verify(await token('nobody', 'hmac', mac.secret))).toEqual({ ok: false, reason: 'unknown_device', deviceId: 'nobody' })
      const pending = auth.verify(await token('async-ed', 'ed25519', ed.secret))
      expect(pending).toBeInstanceOf(Promise)
      expect(await pending).toMatchObject({ ok: true, device: { id: 'async-ed' } })
    })

    it('answers every one of a burst of Ed25519 checks, which wait their turn for the thread pool', async () => {
      const good = await create('burst-good')
      const other = await create('burst-other')
      const [valid, forged] = await Promise.all([token('burst-good', 'ed25519', good.secret), token('burst-good', 'ed25519', other.secret)])
      const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => auth.verify(i % 3 === 0 ? forged : valid)))
      expect(answers.map((a) => a.ok)).toEqual(Array.from({ length: 24 }, (_, i) => i % 3 !== 0))
    })

    it.each([
      ['deleted', (record: DeviceRecord) => store.changed.set(record.id, undefined), 'unknown_device'],
      ['disabled', (record: DeviceRecord) => store.changed.set(record.id, { ...record, disabled: true }), 'disabled'],
      ['rotated', (record: DeviceRecord) => store.changed.set(record.id, { ...record, key: { type: 'ed25519', material: 'A'.repeat(43) } }), 'bad_signature'],
    ] as const)('refuses a device %s while its signature was being checked', async (_name, change, reason) => {
      const device = await create('changing')
      const pending = auth.verify(await token('changing', 'ed25519', device.secret))
      // Committed at once, before the thread pool's verdict comes back.
      change(registry.get('changing') as DeviceRecord)
      expect(await pending).toEqual({ ok: false, reason, deviceId: 'changing' })
    })
  })

  describe('last-seen times', () => {
    const lastSeen = (id: string): Promise<number | undefined> => {
      const device = registry.get(id)
      if (device === undefined) throw new Error(`${id} is missing`)
      return registry.lastSeenAt(device)
    }

    it('records a last-seen time apart from the device record, at once and across a reopen', async () => {
      await create('seen', 'hmac')
      const stored = registry.get('seen')
      expect(await lastSeen('seen')).toBeUndefined()
      registry.touch('seen', START_MS + 5000)
      // Before the write commits too: REST shows lastSeenAt as soon as a device is offline.
      expect(await lastSeen('seen')).toBe(START_MS + 5000)
      await root.flushed
      expect(await lastSeen('seen')).toBe(START_MS + 5000)
      // A touch leaves the stored record as it was: the very object lmdb cached.
      expect(registry.get('seen')).toBe(stored)
      expect(registry.get('seen')).not.toHaveProperty('lastSeenAt')

      await registry.update('seen', { tags: { a: 'b' } })
      expect(await lastSeen('seen')).toBe(START_MS + 5000)
      registry.touch('seen', START_MS + 9000)
      await root.flushed
      const reopened = new Registry(new LmdbRegistryStore(root), clock)
      expect(await reopened.lastSeenAt(reopened.get('seen') as DeviceRecord)).toBe(START_MS + 9000)
    })

    it('reads a last-seen time stored inside a record written before, until a newer one', async () => {
      await create('legacy', 'hmac')
      await store.update('legacy', (record) => ({ ...record, lastSeenAt: START_MS + 1 }))
      expect(await lastSeen('legacy')).toBe(START_MS + 1)
      registry.touch('legacy', START_MS + 2)
      await root.flushed
      expect(await lastSeen('legacy')).toBe(START_MS + 2)
    })

    it('forgets the last-seen time of a deleted device, also when its session closed after the delete', async () => {
      await create('flap', 'hmac')
      registry.touch('flap', START_MS + 1000)
      await registry.remove('flap')
      // The session of a device deleted while online closes after the delete.
      registry.touch('flap', START_MS + 2000)
      await root.flushed
      expect(registry.get('flap')).toBeUndefined()
      await create('flap', 'hmac')
      expect(await lastSeen('flap')).toBeUndefined()
    })
  })
})
