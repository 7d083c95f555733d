import type { Clock } from '@fleetgate/device-sdk'
import { commandKey, type CommandRecord } from '../store/index.js'

/** One wait: until `until` holds for the record, at most until its timer (if any) fires. */
interface Waiter {
  readonly until: (record: CommandRecord) => boolean
  readonly resolve: (record: CommandRecord) => void
  /** The record last learnt of, handed back when the wait is bounded and its time is up. */
  latest: CommandRecord
  timer: unknown
}

/**
 * Calls that wait for a command to reach a state (a REST call with `wait: true` for its end; in
 * cluster mode a create for another node's `sent`), woken by whatever change of the record this
 * node learns of: its own, one another node told it of over the bus, or a read of the store.
 */
export class CommandWaiters {
  readonly #clock: Clock
  readonly #waiting = new Map<string, Set<Waiter>>()

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** Commands waited for now: device and id of each. */
  keys(): Array<readonly [string, string]> {
    return [...this.#waiting.values()].flatMap((waiters) => {
      const first = waiters.values().next().value
      return first === undefined ? [] : [[first.latest.device, first.latest.id] as const]
    })
  }

  /**
   * Resolves with the record once `until` holds for a change of it, or after `boundMs` (when given)
   * with the latest record learnt of. `record` is the record as the caller has it.
   */
  wait(record: CommandRecord, until: (record: CommandRecord) => boolean, boundMs?: number): Promise<CommandRecord> {
    const key = commandKey(record.device, record.id)
    return new Promise((resolve) => {
      const waiter: Waiter = { until, resolve, latest: record, timer: undefined }
      if (boundMs !== undefined) waiter.timer = this.#clock.setTimeout(() => this.#done(key, waiter, waiter.latest), boundMs)
      const waiters = this.#waiting.get(key) ?? new Set()
      waiters.add(waiter)
      this.#waiting.set(key, waiters)
    })
  }

  /** A change of the record: wakes each wait it satisfies. */
  changed(record: CommandRecord): void {
    const key = commandKey(record.device, record.id)
    for (const waiter of this.#waiting.get(key) ?? []) {
      waiter.latest = record
      if (waiter.until(record)) this.#done(key, waiter, record)
    }
  }

  #done(key: string, waiter: Waiter, record: CommandRecord): void {
    const waiters = this.#waiting.get(key)
    if (waiters?.delete(waiter) !== true) return
    if (waiters.size === 0) this.#waiting.delete(key)
    if (waiter.timer !== undefined) this.#clock.clearTimeout(waiter.timer)
    waiter.resolve(record)
  }
}
