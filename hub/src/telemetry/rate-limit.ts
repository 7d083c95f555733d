import { TokenBucket } from '@fleetgate/device-sdk/wire'

/** How a frame fared against its session's budget: taken, refused, or refused once too often (close 1008). */
export type RateVerdict = 'ok' | 'refused' | 'abuse'

/**
 * One session's budget for one kind of frame (docs/configuration.md: FLEETGATE_DEVICE_RATE frames per second,
 * burst 2x), full when the session opens, and the refusals that turn a burst into abuse: more in
 * 5 s than the device may send in 5 s, i.e. sending at twice its rate or more for the whole window.
 */
export class RateLimit {
  readonly #bucket: TokenBucket
  readonly #abuseWindowMs: number
  readonly #maxRefusals: number
  #refusals = 0
  #windowStart: number

  /** `ratePerSec` > 0; the bucket holds twice that. Times are Unix ms; abuse is judged over `abuseWindowMs` (Ingest's tuning). */
  constructor(ratePerSec: number, nowMs: number, abuseWindowMs: number) {
    this.#bucket = new TokenBucket(ratePerSec, 2 * ratePerSec, nowMs)
    this.#abuseWindowMs = abuseWindowMs
    this.#maxRefusals = (ratePerSec * abuseWindowMs) / 1000
    this.#windowStart = nowMs
  }

  /** Takes one token at `nowMs`, or counts a refusal. */
  take(nowMs: number): RateVerdict {
    if (this.#bucket.take(nowMs)) return 'ok'
    if (nowMs - this.#windowStart >= this.#abuseWindowMs) {
      this.#windowStart = nowMs
      this.#refusals = 0
    }
    return ++this.#refusals > this.#maxRefusals ? 'abuse' : 'refused'
  }
}
