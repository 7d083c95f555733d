import { createHmac, timingSafeEqual, verify } from 'node:crypto'
import { parseToken, type ParsedToken } from '@fleetgate/device-sdk'
import type { DeviceKey } from './keys.js'
import type { DeviceRecord, Registry } from './registry.js'

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

/** Verifies device tokens against the registry (HMAC-SHA256 or Ed25519, current or grace key). */
export class DeviceAuthenticator {
  readonly #registry: Registry
  readonly #now: () => number

  constructor(registry: Registry, now: () => number = Date.now) {
    this.#registry = registry
    this.#now = now
  }

  /** Checks a token; synchronous, so the upgrade handler answers without leaving the callback. */
  verify(token: string): DeviceAuthResult {
    const parsed = parseToken(token)
    if (parsed === undefined) return { ok: false, reason: 'malformed' }
    const deviceId = parsed.deviceId
    const device = this.#registry.get(deviceId)
    if (device === undefined) return { ok: false, reason: 'unknown_device', deviceId }
    if (device.disabled) return { ok: false, reason: 'disabled', deviceId }
    const nowMs = this.#now()
    const nowSec = nowMs / 1000
    if (parsed.expSec + SKEW_SEC < nowSec) return { ok: false, reason: 'expired', deviceId }
    if (parsed.expSec > nowSec + MAX_AHEAD_SEC) return { ok: false, reason: 'too_far_ahead', deviceId }
    if (this.#signedBy(deviceId, device.key, parsed)) return { ok: true, device }
    const previous = device.previousKey
    if (previous !== undefined && nowMs < previous.until && this.#signedBy(deviceId, previous, parsed)) return { ok: true, device }
    return { ok: false, reason: 'bad_signature', deviceId }
  }

  #signedBy(deviceId: string, key: DeviceKey, token: ParsedToken): boolean {
    if (key.type === 'hmac') {
      // Decoding the key here costs well under 1 µs of a connect; keeping decoded keys would cost
      // memory for every hmac device.
      const expected = createHmac('sha256', Buffer.from(key.material, 'base64url')).update(token.signed).digest()
      // Equal lengths are a precondition of timingSafeEqual, and an HMAC-SHA256 is always 32 bytes.
      return token.sig.length === expected.length && timingSafeEqual(token.sig, expected)
    }
    return token.sig.length === 64 && verify(null, Buffer.from(token.signed), this.#registry.publicKeys.get(deviceId, key.material), token.sig)
  }
}

/** How many failures from one address, within one window, before it is answered 429. */
export interface FailureLimitOptions {
  /** Failures allowed per window; default 20. */
  readonly maxFailures: number
  /** Window length in ms; default 60,000. */
  readonly windowMs: number
}

/**
 * Counts authentication failures per remote address in fixed windows (CONTRACT §3: repeated
 * failures from one address are answered 429). Memory stays bounded: stale windows are swept.
 */
export class FailureLimiter {
  readonly #options: FailureLimitOptions
  readonly #now: () => number
  readonly #byAddress = new Map<string, { count: number; windowStart: number }>()
  #lastSweep = 0

  constructor(options: FailureLimitOptions = { maxFailures: 20, windowMs: 60_000 }, now: () => number = Date.now) {
    this.#options = options
    this.#now = now
  }

  /** Whether the address has used up its failures for the current window. */
  blocked(address: string): boolean {
    const entry = this.#byAddress.get(address)
    return entry !== undefined && this.#now() - entry.windowStart < this.#options.windowMs && entry.count >= this.#options.maxFailures
  }

  /** Records one failure from the address. */
  fail(address: string): void {
    const now = this.#now()
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
