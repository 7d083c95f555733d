import { createHmac, timingSafeEqual, verify } from 'node:crypto'
import type { Clock } from '@fleetgate/device-sdk'
import { parseToken, type ParsedToken } from '@fleetgate/device-sdk/wire'
import { previousKeyInGrace, type DeviceKey, type DeviceRecord, type Registry } from '../devices/index.js'
import { tune } from '../tuning.js'

/** Why a device token was refused: for the hub's log only, never for the client (CONTRACT §3). */
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

/** CONTRACT §3: 30 s of clock skew are allowed on `exp`. */
const SKEW_SEC = 30
/** CONTRACT §3: `exp` may lie at most 24 h ahead. */
const MAX_AHEAD_SEC = 24 * 3600

/**
 * Verifies device tokens against the registry (HMAC-SHA256 or Ed25519, current or grace key).
 * An HMAC (~10 µs) is checked at once; an Ed25519 signature (~150-300 µs here) on libuv's thread
 * pool, so that in a connect storm the event loop accepts and upgrades while the pool verifies.
 */
export class DeviceAuthenticator {
  readonly #registry: Registry
  readonly #clock: Clock

  constructor(registry: Registry, clock: Clock) {
    this.#registry = registry
    this.#clock = clock
  }

  /**
   * Checks a token. The answer is synchronous for every refusal made before a signature check and
   * for HMAC devices, so most answers leave the upgrade callback at once; a promise for an Ed25519
   * signature. It rejects only when node:crypto fails, which is no verdict on the token.
   */
  verify(token: string): DeviceAuthResult | Promise<DeviceAuthResult> {
    const parsed = parseToken(token)
    if (parsed === undefined) return { ok: false, reason: 'malformed' }
    const deviceId = parsed.deviceId
    const device = this.#registry.get(deviceId)
    if (device === undefined) return { ok: false, reason: 'unknown_device', deviceId }
    const refusal = this.#refusal(device, parsed.expSec)
    if (refusal !== undefined) return refusal
    if (device.key.type === 'ed25519') return this.#verifyEd25519(device, parsed)
    if (hmacSigned(device.key, parsed)) return { ok: true, device }
    const previous = previousKeyInGrace(device, this.#clock.now())
    if (previous !== undefined && hmacSigned(previous, parsed)) return { ok: true, device }
    return { ok: false, reason: 'bad_signature', deviceId }
  }

  /** Why a token of `device` that expires at `expSec` is refused before its signature is checked, or undefined. */
  #refusal(device: DeviceRecord, expSec: number): DeviceAuthResult | undefined {
    const deviceId = device.id
    if (device.disabled) return { ok: false, reason: 'disabled', deviceId }
    const nowSec = this.#clock.now() / 1000
    if (expSec + SKEW_SEC < nowSec) return { ok: false, reason: 'expired', deviceId }
    if (expSec > nowSec + MAX_AHEAD_SEC) return { ok: false, reason: 'too_far_ahead', deviceId }
    return undefined
  }

  async #verifyEd25519(device: DeviceRecord, token: ParsedToken): Promise<DeviceAuthResult> {
    const deviceId = device.id
    if (token.sig.length !== 64) return { ok: false, reason: 'bad_signature', deviceId }
    const signed = Buffer.from(token.signed)
    let material: string | undefined = device.key.material
    if (!(await this.#ed25519Signed(deviceId, material, signed, token.sig))) {
      material = previousKeyInGrace(device, this.#clock.now())?.material
      if (material !== undefined && !(await this.#ed25519Signed(deviceId, material, signed, token.sig))) material = undefined
    }
    if (material === undefined) return { ok: false, reason: 'bad_signature', deviceId }
    // The device may have been deleted, disabled or rotated while the pool verified: sessions.disconnect
    // found no session then, so the check is made again on the record as it is now.
    const current = this.#registry.get(deviceId)
    if (current === undefined) return { ok: false, reason: 'unknown_device', deviceId }
    const refusal = this.#refusal(current, token.expSec)
    if (refusal !== undefined) return refusal
    if (current.key.material === material || previousKeyInGrace(current, this.#clock.now())?.material === material) return { ok: true, device: current }
    return { ok: false, reason: 'bad_signature', deviceId }
  }

  #ed25519Signed(deviceId: string, material: string, signed: Buffer, sig: Uint8Array): Promise<boolean> {
    const publicKey = this.#registry.publicKeys.get(deviceId, material)
    // With a callback, node:crypto verifies on libuv's thread pool.
    return new Promise((resolve, reject) => {
      verify(null, signed, publicKey, sig, (err, ok) => (err === null ? resolve(ok) : reject(err)))
    })
  }
}

/** Whether `token` carries the HMAC-SHA256 of `key` (CONTRACT §3), compared in constant time. */
function hmacSigned(key: DeviceKey, token: ParsedToken): boolean {
  // Decoding the key here costs well under 1 µs of a connect; keeping decoded keys would cost
  // memory for every hmac device.
  const expected = createHmac('sha256', Buffer.from(key.material, 'base64url')).update(token.signed).digest()
  // Equal lengths are a precondition of timingSafeEqual, and an HMAC-SHA256 is always 32 bytes.
  return token.sig.length === expected.length && timingSafeEqual(token.sig, expected)
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
 * Counts authentication failures per remote address in fixed windows (CONTRACT §3: repeated
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
