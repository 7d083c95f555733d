// A token bucket on an injected time source, the shape of the hub's per-session rate limit
// (docs/configuration.md: FLEETGATE_DEVICE_RATE frames per second, burst 2x).

/** A token bucket: `ratePerSec` tokens per second, at most `capacity`, full at first. Times are Unix ms. */
export class TokenBucket {
  readonly #ratePerSec: number
  readonly #capacity: number
  #tokens: number
  #refilledAt: number

  /** `ratePerSec` > 0; `capacity` >= 1 (whole frames must fit); starts full at `nowMs`. */
  constructor(ratePerSec: number, capacity: number, nowMs: number) {
    this.#ratePerSec = ratePerSec
    this.#capacity = Math.max(1, capacity)
    this.#tokens = this.#capacity
    this.#refilledAt = nowMs
  }

  /** Tokens available at `nowMs` (fractional). */
  tokens(nowMs: number): number {
    this.#refill(nowMs)
    return this.#tokens
  }

  /** Takes one token if there is one at `nowMs`; false otherwise. */
  take(nowMs: number): boolean {
    this.#refill(nowMs)
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }

  /** Ms from `nowMs` until `count` tokens (default 1, at most the capacity) are available (0 when they are), rounded up. */
  waitMs(nowMs: number, count = 1): number {
    this.#refill(nowMs)
    const wanted = Math.min(count, this.#capacity)
    return this.#tokens >= wanted ? 0 : Math.ceil(((wanted - this.#tokens) * 1000) / this.#ratePerSec)
  }

  #refill(nowMs: number): void {
    // a clock that steps back refills nothing rather than draining the bucket
    const elapsedMs = Math.max(0, nowMs - this.#refilledAt)
    this.#tokens = Math.min(this.#capacity, this.#tokens + (elapsedMs * this.#ratePerSec) / 1000)
    this.#refilledAt = Math.max(this.#refilledAt, nowMs)
  }
}

/**
 * The hub measures its token bucket on arrival times, which network jitter bunches together; the
 * SDK keeps this many seconds of the hub's rate in reserve (burst 1.5x instead of 2x), so frames
 * sent at a conforming pace still conform after up to 500 ms of jitter.
 */
export const PACING_JITTER_RESERVE_SEC = 0.5

/** A bucket for sending to a hub that allows `ratePerSec` frames/s with a burst of 2x (docs/configuration.md), less the jitter reserve. */
export function hubPacer(ratePerSec: number, nowMs: number): TokenBucket {
  return new TokenBucket(ratePerSec, 2 * ratePerSec - ratePerSec * PACING_JITTER_RESERVE_SEC, nowMs)
}
