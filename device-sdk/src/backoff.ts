// Exponential backoff with full jitter ("Exponential Backoff and Jitter", AWS Architecture Blog):
// delay n (from 0) = random() * min(maxDelayMs, initialDelayMs * factor^n). Full jitter spreads a
// fleet that lost its hub at the same instant over the whole window instead of in waves.
import { SdkError } from './errors.js'

/** Backoff schedule: first ceiling `initialDelayMs` (default 500 ms), growing by `factor` (default 2) up to `maxDelayMs` (default 30000 ms). */
export interface BackoffOptions {
  /** Ceiling of the first delay, in ms; default 500. */
  initialDelayMs?: number
  /** Largest ceiling, in ms; default 30000. */
  maxDelayMs?: number
  /** Growth of the ceiling per attempt, at least 1; default 2. */
  factor?: number
  /** Uniform random number in [0, 1); default Math.random. Tests inject their own. */
  random?: () => number
}

/** Default backoff schedule: 500 ms first ceiling, doubling, capped at 30 s. */
export const DEFAULT_BACKOFF = Object.freeze({ initialDelayMs: 500, maxDelayMs: 30_000, factor: 2 })

const BACKOFF_KEYS = new Set(['initialDelayMs', 'maxDelayMs', 'factor', 'random'])

/** Delays between reconnect attempts: `next()` gives the next delay in ms, `reset()` starts over. */
export class Backoff {
  readonly #initialDelayMs: number
  readonly #maxDelayMs: number
  readonly #factor: number
  readonly #random: () => number
  #attempt = 0
  #ceilingMs: number

  /** Throws SdkError SDK_ERR_INVALID_OPTION for an unknown key or a value out of range. */
  constructor(options: BackoffOptions = {}) {
    const checked = checkBackoffOptions(options, 'backoff')
    this.#initialDelayMs = checked.initialDelayMs
    this.#maxDelayMs = checked.maxDelayMs
    this.#factor = checked.factor
    this.#random = options.random ?? Math.random
    if (typeof this.#random !== 'function') throw new SdkError('SDK_ERR_INVALID_OPTION', 'backoff.random: expected a function')
    this.#ceilingMs = this.#initialDelayMs
  }

  /** Attempts counted since the last reset(), starting at 0. */
  get attempt(): number {
    return this.#attempt
  }

  /** The next delay in ms: random() * min(maxDelayMs, initialDelayMs * factor^attempt); counts one attempt. */
  next(): number {
    const delayMs = this.#random() * this.#ceilingMs
    this.#attempt++
    // grown step by step rather than with factor ** attempt, which overflows to Infinity
    this.#ceilingMs = Math.min(this.#maxDelayMs, this.#ceilingMs * this.#factor)
    return delayMs
  }

  /** Starts the schedule over at initialDelayMs. */
  reset(): void {
    this.#attempt = 0
    this.#ceilingMs = this.#initialDelayMs
  }
}

/**
 * Validates a backoff schedule (without `random` unless `allowRandom`), filling defaults.
 * `path` names the option in error messages.
 */
export function checkBackoffOptions(
  options: unknown,
  path: string,
  allowRandom = true,
): { initialDelayMs: number; maxDelayMs: number; factor: number } {
  if (typeof options !== 'object' || options === null) throw new SdkError('SDK_ERR_INVALID_OPTION', `${path}: expected an object`)
  for (const key of Object.keys(options)) {
    if (!BACKOFF_KEYS.has(key) || (key === 'random' && !allowRandom)) {
      throw new SdkError('SDK_ERR_INVALID_OPTION', `${path}.${key}: unknown option`)
    }
  }
  const given = options as BackoffOptions
  const initialDelayMs = given.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs
  const maxDelayMs = given.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs
  const factor = given.factor ?? DEFAULT_BACKOFF.factor
  if (typeof initialDelayMs !== 'number' || !Number.isFinite(initialDelayMs) || initialDelayMs < 0) {
    throw new SdkError('SDK_ERR_INVALID_OPTION', `${path}.initialDelayMs: expected a finite number of ms >= 0`)
  }
  if (typeof maxDelayMs !== 'number' || !Number.isFinite(maxDelayMs) || maxDelayMs < initialDelayMs) {
    throw new SdkError('SDK_ERR_INVALID_OPTION', `${path}.maxDelayMs: expected a finite number of ms >= initialDelayMs`)
  }
  if (typeof factor !== 'number' || !Number.isFinite(factor) || factor < 1) {
    throw new SdkError('SDK_ERR_INVALID_OPTION', `${path}.factor: expected a finite number >= 1`)
  }
  return { initialDelayMs, maxDelayMs, factor }
}
