import { createHmac, generateKeyPairSync, randomBytes, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import type { Clock, KeyType } from '@fleetgate/device-sdk'
import { parseToken, type ParsedToken } from '@fleetgate/device-sdk/wire'
import { previousKeyInGrace, type DeviceKey, type DeviceRecord, type Registry } from '../devices/index.js'
import { tune } from '../tuning.js'

/** Why a device token was refused: for the hub's log only, never for the client (docs/protocol.md). */
export type DeviceAuthFailure =
  | 'malformed'
  | 'unknown_device'
  | 'disabled'
  | 'expired'
  | 'too_far_ahead'
  | 'bad_signature'

/** The outcome of checking one device token. */
export type DeviceAuthResult =
  | { readonly ok: true; readonly device: DeviceRecord }
  | { readonly ok: false; readonly reason: DeviceAuthFailure; readonly deviceId?: string }

/** docs/protocol.md: 30 s of clock skew are allowed on `exp`. */
const SKEW_SEC = 30
/** docs/protocol.md: `exp` may lie at most 24 h ahead. */
const MAX_AHEAD_SEC = 24 * 3600
/** An Ed25519 signature's length; every other token signature (parseToken: 32 bytes) is an HMAC-SHA256. */
const ED25519_SIG_BYTES = 64

/** The signature primitives a token check runs, given to the authenticator so a test can count them. */
export interface SignatureChecks {
  /** HMAC-SHA256 of `signed` under `key`. */
  hmacSha256(key: Buffer, signed: string): Buffer
  /** Whether `sig` is `publicKey`'s Ed25519 signature of `signed`; on libuv's thread pool. */
  ed25519Verify(signed: Buffer, publicKey: KeyObject, sig: Uint8Array): Promise<boolean>
}

/** node:crypto's primitives: the production {@link SignatureChecks}. */
export const nodeSignatureChecks: SignatureChecks = {
  hmacSha256: (key, signed) => createHmac('sha256', key).update(signed).digest(),
  // With a callback, node:crypto verifies on libuv's thread pool.
  ed25519Verify: (signed, publicKey, sig) =>
    new Promise((resolve, reject) => {
      verify(null, signed, publicKey, sig, (err, ok) => (err === null ? resolve(ok) : reject(err)))
    }),
}

/**
 * Verifies device tokens against the registry (HMAC-SHA256 or Ed25519, current or grace key).
 * An HMAC (~10 µs) is checked at once; an Ed25519 signature (~150-300 µs here) on libuv's thread
 * pool, so that in a connect storm the event loop accepts and upgrades while the pool verifies.
 *
 * No answer tells which device ids exist (docs/protocol.md says the body never says which check
 * failed; timing must not either). `exp` is judged before the id is looked up, and the signature
 * work follows the token's shape alone: a 64-byte signature costs Ed25519 verifications (an
 * answer after the pool), a 32-byte one HMACs (an answer at once), whether the device exists, is
 * disabled or holds a key of the other type; fixed dummy keys stand in for a key it lacks.
 * A refused signature always costs two checks, the current key's and the grace key's (or the
 * dummy's), so that a rotation in grace does not show either.
 */
export class DeviceAuthenticator {
  readonly #registry: Registry
  readonly #clock: Clock
  readonly #checks: SignatureChecks
  /** Stand in for a key the token's device lacks (see #signer); made once, so each check costs what a real one does. */
  readonly #dummyHmac: DeviceKey = { type: 'hmac', material: randomBytes(32).toString('base64url') }
  readonly #dummyEd25519: KeyObject = generateKeyPairSync('ed25519').publicKey

  constructor(registry: Registry, clock: Clock, checks: SignatureChecks = nodeSignatureChecks) {
    this.#registry = registry
    this.#clock = clock
    this.#checks = checks
  }

  /**
   * Checks a token. The answer is synchronous for a malformed or stale token and for an HMAC-shaped
   * one, a promise for an Ed25519-shaped one (see the class). It rejects only when node:crypto
   * fails, which is no verdict on the token.
   */
  verify(token: string): DeviceAuthResult | Promise<DeviceAuthResult> {
    const parsed = parseToken(token)
    if (parsed === undefined) return { ok: false, reason: 'malformed' }
    const stale = this.#stale(parsed)
    if (stale !== undefined) return stale
    const device = this.#registry.get(parsed.deviceId)
    return parsed.sig.length === ED25519_SIG_BYTES ? this.#verifyEd25519(device, parsed) : this.#verifyHmac(device, parsed)
  }

  /** The refusal of a token whose `exp` is past (beyond the skew) or too far ahead, or undefined. */
  #stale(token: ParsedToken): DeviceAuthResult | undefined {
    const { deviceId, expSec } = token
    const nowSec = this.#clock.now() / 1000
    if (expSec + SKEW_SEC < nowSec) return { ok: false, reason: 'expired', deviceId }
    if (expSec > nowSec + MAX_AHEAD_SEC) return { ok: false, reason: 'too_far_ahead', deviceId }
    return undefined
  }

  /**
   * The device whose key the token's signature is checked against: an existing, enabled device
   * with a key of the signature's type. For any other, dummy keys stand in (and a disabled
   * device's public key is not imported again, see PublicKeyLookup).
   */
  #signer(device: DeviceRecord | undefined, type: KeyType): DeviceRecord | undefined {
    return device !== undefined && !device.disabled && device.key.type === type ? device : undefined
  }

  /** The verdict once the signature is judged (`signed` against the {@link #signer}'s keys). */
  #verdict(device: DeviceRecord | undefined, token: ParsedToken, signed: boolean): DeviceAuthResult {
    const deviceId = token.deviceId
    if (device === undefined) return { ok: false, reason: 'unknown_device', deviceId }
    if (device.disabled) return { ok: false, reason: 'disabled', deviceId }
    if (!signed) return { ok: false, reason: 'bad_signature', deviceId }
    return this.#stale(token) ?? { ok: true, device }
  }

  #verifyHmac(device: DeviceRecord | undefined, token: ParsedToken): DeviceAuthResult {
    const own = this.#signer(device, 'hmac')
    // The current key's HMAC, or the dummy's: one HMAC either way.
    if (this.#hmacSigned(own?.key ?? this.#dummyHmac, token) && own !== undefined) return this.#verdict(own, token, true)
    // A refusal costs a second one either way: the grace key's, or the dummy's.
    const previous = own === undefined ? undefined : previousKeyInGrace(own, this.#clock.now())
    const signed = this.#hmacSigned(previous ?? this.#dummyHmac, token) && previous !== undefined
    return this.#verdict(device, token, signed)
  }

  async #verifyEd25519(device: DeviceRecord | undefined, token: ParsedToken): Promise<DeviceAuthResult> {
    const deviceId = token.deviceId
    const own = this.#signer(device, 'ed25519')
    const signed = Buffer.from(token.signed)
    /** One verification against `material` of this device, or against the dummy key when there is none. */
    const check = async (material: string | undefined): Promise<string | undefined> => {
      const publicKey = material === undefined ? this.#dummyEd25519 : this.#registry.publicKeys.get(deviceId, material)
      return (await this.#checks.ed25519Verify(signed, publicKey, token.sig)) ? material : undefined
    }
    // As for HMAC: the current key's check (or the dummy's), then on a refusal the grace key's (or the dummy's).
    const previous = own === undefined ? undefined : previousKeyInGrace(own, this.#clock.now())?.material
    const material = (await check(own?.key.material)) ?? (await check(previous))
    if (material === undefined) return this.#verdict(device, token, false)
    // The device may have been deleted, disabled or rotated while the pool verified: sessions.disconnect
    // found no session then, so the check is made again on the record as it is now.
    const current = this.#registry.get(deviceId)
    const held = current?.key.material === material || (current !== undefined && previousKeyInGrace(current, this.#clock.now())?.material === material)
    return this.#verdict(current, token, held)
  }

  /** Whether `token` carries the HMAC-SHA256 of `key` (docs/protocol.md), compared in constant time. */
  #hmacSigned(key: DeviceKey, token: ParsedToken): boolean {
    // Decoding the key here costs well under 1 µs of a connect; keeping decoded keys would cost
    // memory for every hmac device.
    const expected = this.#checks.hmacSha256(Buffer.from(key.material, 'base64url'), token.signed)
    // Equal lengths are a precondition of timingSafeEqual; #verifyHmac sees 32-byte signatures only.
    return token.sig.length === expected.length && timingSafeEqual(token.sig, expected)
  }
}

/** How many failures from one address, within one window, before it is answered 429. */
export interface FailureLimitOptions {
  /** Failures allowed per window; default 20. */
  readonly maxFailures: number
  /** Window length in ms; default 60,000. */
  readonly windowMs: number
}

/** The defaults of FailureLimitOptions (see docs/decisions.md, Device connections). */
export const FAILURE_LIMIT_DEFAULTS: FailureLimitOptions = Object.freeze({ maxFailures: 20, windowMs: 60_000 })

/**
 * Counts authentication failures per remote address in fixed windows (docs/protocol.md: repeated
 * failures from one address are answered 429). Memory stays bounded: stale windows are swept.
 */
export class FailureLimiter {
  readonly #options: FailureLimitOptions
  readonly #clock: Clock
  readonly #byAddress = new Map<string, { count: number; windowStart: number }>()
  #lastSweep = 0

  constructor(options: Partial<FailureLimitOptions> | undefined, clock: Clock) {
    this.#options = tune('FailureLimiter', FAILURE_LIMIT_DEFAULTS, options)
    this.#clock = clock
  }

  /** Whether the address has used up its failures for the current window. */
  blocked(address: string): boolean {
    const entry = this.#byAddress.get(address)
    return entry !== undefined && this.#clock.now() - entry.windowStart < this.#options.windowMs && entry.count >= this.#options.maxFailures
  }

  /** Records one failure from the address. */
  fail(address: string): void {
    const now = this.#clock.now()
    this.#sweep(now)
    const entry = this.#byAddress.get(address)
    if (entry === undefined || now - entry.windowStart >= this.#options.windowMs) {
      this.#byAddress.set(address, { count: 1, windowStart: now })
    } else {
      entry.count++
    }
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < this.#options.windowMs) return
    this.#lastSweep = now
    for (const [address, entry] of this.#byAddress) {
      if (now - entry.windowStart >= this.#options.windowMs) this.#byAddress.delete(address)
    }
  }
}
