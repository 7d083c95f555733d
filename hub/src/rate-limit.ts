import { TokenBucket } from '@fleetgate/device-sdk'

/** Rate abuse is judged over this window, in ms: more refusals in it than `ratePerSec` allows in it close the session (1008). */
export const ABUSE_WINDOW_MS = 5000

/** How a frame fared against its session's budget: taken, refused, or refused once too often (close 1008). */
export type RateVerdict = 'ok' | 'refused' | 'abuse'

/**
 * One session's budget for one kind of frame (CONTRACT §1: FLEETGATE_DEVICE_RATE frames per second,
 * burst 2x), full when the session opens, and the refusals that turn a burst into abuse: more in
 * 5 s than the device may send in 5 s, i.e. sending at twice its rate or more for the whole window.
 */
export class RateLimit {
  readonly #bucket: TokenBucket
  readonly #maxRefusals: number
  #refusals = 0
  #windowStart: number

  /** `ratePerSec` > 0; the bucket holds twice that. Times are Unix ms. */
  constructor(ratePerSec: number, nowMs: number) {
    this.#bucket = new TokenBucket(ratePerSec, 2 * ratePerSec, nowMs)
    this.#maxRefusals = (ratePerSec * ABUSE_WINDOW_MS) / 1000
    this.#windowStart = nowMs
  }

  /** Takes one token at `nowMs`, or counts a refusal. */
  take(nowMs: number): RateVerdict {
    if (this.#bucket.take(nowMs)) return 'ok'
    if (nowMs - this.#windowStart >= ABUSE_WINDOW_MS) {
      this.#windowStart = nowMs
      this.#refusals = 0
    }
    return ++this.#refusals > this.#maxRefusals ? 'abuse' : 'refused'
  }
}
