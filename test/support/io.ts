// Unit tests of the hub's cores wait for their I/O (lmdb commits) instead of for time: every call
// of a store goes through a recorder that keeps its promise until it settles.
import { settle, type SteppingClock } from './clock.js'

/** The promises of a store's calls still under way, so that a test can wait for exactly them. */
export class IoLog {
  readonly #pending = new Set<Promise<unknown>>()

  /**
   * `target` with every method call recorded: a call that returns a promise is pending until it
   * settles. Methods run on `target` itself (lmdb stores keep private fields).
   */
  wrap<T extends object>(target: T): T {
    return new Proxy(target, {
      get: (object, key) => {
        const value: unknown = Reflect.get(object, key, object)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          const result: unknown = Reflect.apply(value, object, args)
          if (result instanceof Promise) this.track(result)
          return result
        }
      },
    })
  }

  /** Keeps `promise` pending until it settles. */
  track(promise: Promise<unknown>): void {
    this.#pending.add(promise)
    const done = (): void => void this.#pending.delete(promise)
    promise.then(done, done)
  }

  /** Waits until no recorded call is under way, also those that settling ones started. */
  async settled(): Promise<void> {
    await settle()
    while (this.#pending.size > 0) {
      await Promise.allSettled([...this.#pending])
      await settle()
    }
  }

  /**
   * Moves `clock` by `ms` one due timer at a time, letting the I/O each timer starts settle before
   * the next: a sweep whose next run is scheduled when its read ends runs as often as it would.
   */
  async advance(clock: SteppingClock, ms: number): Promise<void> {
    const end = clock.nowMs + ms
    await this.settled()
    for (;;) {
      const next = Math.min(...clock.pending())
      if (!Number.isFinite(next) || clock.nowMs + next > end) break
      await clock.advance(Math.max(0, next))
      await this.settled()
    }
    await clock.advance(end - clock.nowMs)
    await this.settled()
  }
}
