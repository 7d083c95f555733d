// A clock the test drives: advance() walks time from one due timer to the next, so a timer that
// sets another (pacing, retries) fires at its own time within one advance().
import type { Clock } from '@fleetgate/device-sdk'

interface Timer {
  id: number
  at: number
  fn: () => void
}

/** The one fake Clock of the repository's tests (every workspace's): time moves only when a test says. */
export class SteppingClock implements Clock {
  nowMs: number
  /** The delay of every timer set, in the order they were set, in ms. */
  readonly scheduled: number[] = []
  #timers: Timer[] = []
  #nextId = 1

  constructor(startMs = 1_700_000_000_000) {
    this.nowMs = startMs
  }

  now(): number {
    return this.nowMs
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { id: this.#nextId++, at: this.nowMs + ms, fn }
    this.#timers.push(timer)
    this.scheduled.push(ms)
    return timer.id
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((timer) => timer.id !== handle)
  }

  /** Timers pending, as ms from now. */
  pending(): number[] {
    return this.#timers.map((timer) => timer.at - this.nowMs)
  }

  /** Moves time by `ms`, running each due timer at its time, then the microtasks it queued. */
  async advance(ms: number): Promise<void> {
    const end = this.nowMs + ms
    for (;;) {
      await settle()
      const due = this.#timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (due === undefined) break
      this.clearTimeout(due.id)
      this.nowMs = Math.max(this.nowMs, due.at)
      due.fn()
    }
    this.nowMs = end
    await settle()
  }
}

/** Lets queued microtasks (and the promise reactions they start) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}
