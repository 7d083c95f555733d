import { createHmac, randomBytes, verify } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { realClock, type Clock, type KeyType } from '@fleetgate/device-sdk'
import { base64urlEncode, signToken } from '@fleetgate/device-sdk/wire'
import { tempDir } from '../../test/support/hub.js'
import { DeviceAuthenticator, type SignatureChecks } from '../src/auth/device-auth.js'
import { Registry } from '../src/devices/index.js'
import { openLmdbStores, type HubStores } from '../src/store/index.js'

const START_MS = 1_700_000_000_000

/** node:crypto's primitives, counted. */
class CountingChecks implements SignatureChecks {
  hmacs = 0
  ed25519s = 0

  hmacSha256(key: Buffer, signed: string): Buffer {
    this.hmacs++
    return createHmac('sha256', key).update(signed).digest()
  }

  ed25519Verify(...[signed, publicKey, sig]: Parameters<SignatureChecks['ed25519Verify']>): Promise<boolean> {
    this.ed25519s++
    return new Promise((resolve, reject) => verify(null, signed, publicKey, sig, (err, ok) => (err === null ? resolve(ok) : reject(err))))
  }
}

/** The work one verification did, and the shape of its answer. */
interface Work {
  readonly hmacs: number
  readonly ed25519s: number
  readonly async: boolean
  readonly reason: string | undefined
}

describe('DeviceAuthenticator: the same work whether a device id exists or not (docs/protocol.md)', () => {
  let dir: { path: string; cleanup(): void }
  let store: HubStores
  let registry: Registry
  let nowMs = START_MS
  const expSec = (): number => Math.floor(nowMs / 1000) + 600
  /** The real timers, the test's time. */
  const clock: Clock = { ...realClock, now: () => nowMs }

  /** A token for `id` with a signature of `bytes` random bytes: 32 is HMAC-shaped, 64 Ed25519-shaped. */
  const forged = (id: string, bytes: 32 | 64, exp = expSec()): string => `v1.${id}.${exp}.${base64urlEncode(randomBytes(bytes))}`

  const work = async (token: string): Promise<Work> => {
    const checks = new CountingChecks()
    const answer = new DeviceAuthenticator(registry, clock, checks).verify(token)
    const result = await answer
    return { hmacs: checks.hmacs, ed25519s: checks.ed25519s, async: answer instanceof Promise, reason: result.ok ? undefined : result.reason }
  }

  const create = async (id: string, keyType: KeyType): Promise<string> => {
    const created = await registry.create({ id, keyType, tags: {} })
    if (created === undefined) throw new Error(`${id} exists`)
    const secret = created.secret as Record<string, string>
    return secret['key'] ?? secret['privateKey'] ?? ''
  }

  beforeEach(async () => {
    dir = tempDir('fleetgate-device-auth-')
    store = openLmdbStores(dir.path)
    nowMs = START_MS
    registry = new Registry(store.registry, clock)
    await create('hmac-1', 'hmac')
    await create('ed-1', 'ed25519')
    await create('hmac-off', 'hmac')
    await create('ed-off', 'ed25519')
    await registry.update('hmac-off', { disabled: true })
    await registry.update('ed-off', { disabled: true })
    await create('hmac-grace', 'hmac')
    await create('ed-grace', 'ed25519')
    await registry.rotateKey('hmac-grace', 600, false)
    await registry.rotateKey('ed-grace', 600, false)
  })
  afterEach(async () => {
    await store.close()
    dir.cleanup()
  })

  const ids = ['nobody', 'hmac-1', 'ed-1', 'hmac-off', 'ed-off', 'hmac-grace', 'ed-grace']

  it('refuses an HMAC-shaped signature after two HMACs and no Ed25519, at once, for every id', async () => {
    for (const id of ids) {
      const done = await work(forged(id, 32))
      expect({ hmacs: done.hmacs, ed25519s: done.ed25519s, async: done.async }, id).toEqual({ hmacs: 2, ed25519s: 0, async: false })
    }
  })

  it('refuses an Ed25519-shaped signature after two Ed25519 verifications and no HMAC, on the pool, for every id', async () => {
    for (const id of ids) {
      const done = await work(forged(id, 64))
      expect({ hmacs: done.hmacs, ed25519s: done.ed25519s, async: done.async }, id).toEqual({ hmacs: 0, ed25519s: 2, async: true })
    }
  })

  it('judges exp before looking the id up, so a stale token costs nothing whether its id exists or not', async () => {
    const past = Math.floor(nowMs / 1000) - 31
    const ahead = Math.floor(nowMs / 1000) + 24 * 3600 + 60
    for (const id of ['nobody', 'hmac-1', 'ed-1']) {
      expect(await work(forged(id, 32, past)), id).toEqual({ hmacs: 0, ed25519s: 0, async: false, reason: 'expired' })
      expect(await work(forged(id, 64, ahead)), id).toEqual({ hmacs: 0, ed25519s: 0, async: false, reason: 'too_far_ahead' })
    }
  })

  it('still tells the log why, and accepts a good token after one check', async () => {
    expect((await work(forged('nobody', 32))).reason).toBe('unknown_device')
    expect((await work(forged('hmac-1', 64))).reason).toBe('bad_signature')
    expect((await work(forged('hmac-off', 32))).reason).toBe('disabled')
    const key = await create('good', 'hmac')
    const good = await work(await signToken({ deviceId: 'good', keyType: 'hmac', key, expSec: expSec() }))
    expect(good).toEqual({ hmacs: 1, ed25519s: 0, async: false, reason: undefined })
    const privateKey = await create('good-ed', 'ed25519')
    const goodEd = await work(await signToken({ deviceId: 'good-ed', keyType: 'ed25519', key: privateKey, expSec: expSec() }))
    expect(goodEd).toEqual({ hmacs: 0, ed25519s: 1, async: true, reason: undefined })
  })
})
