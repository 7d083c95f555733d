// Calls at a steady rate on the simulator's clock (--command-rate, --twin-rate).
import type { Clock } from './clock.js'

/** Shortest wait between two ticks, in ms: higher rates fire several calls per tick. */
const TICK_MS = 10

/** Calls `fire` `ratePerSec` times a second (fractions allowed), evenly, from start() until stop(). */
export class PacedCalls {
  readonly #clock: Clock
  readonly #ratePerSec: number
  readonly #fire: () => void
  #timer: unknown
  #due = 0
  #last = 0
  #running = false

  /** Nothing fires before start(); a rate of 0 or less never fires. */
  constructor(clock: Clock, ratePerSec: number, fire: () => void) {
    this.#clock = clock
    this.#ratePerSec = ratePerSec
    this.#fire = fire
  }

  start(): void {
    if (this.#running || this.#ratePerSec <= 0) return
    this.#running = true
    this.#last = this.#clock.now()
    this.#tick()
  }

  stop(): void {
    this.#running = false
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #tick(): void {
    const now = this.#clock.now()
    this.#due += ((now - this.#last) * this.#ratePerSec) / 1000
    this.#last = now
    while (this.#due >= 1) {
      this.#due--
      this.#fire()
    }
    if (this.#running) this.#timer = this.#clock.setTimeout(() => this.#tick(), Math.max(TICK_MS, Math.min(1000, (1 - this.#due) * (1000 / this.#ratePerSec))))
  }
}
