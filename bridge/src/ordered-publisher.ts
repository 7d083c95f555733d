interface Pending {
  readonly topic: string
  readonly payload: Buffer
  readonly retain: boolean
}

/**
 * Orders the hub's publishes for aedes so that none is silently lost.
 *
 * aedes numbers each publish (`brokerCounter`) when it starts, and a client drops any delivery
 * whose number is lower than the last one it received (`dedupe` in aedes lib/client.js, meant for
 * overlapping subscriptions; moscajs/aedes#994). A retained publish takes one more asynchronous
 * step than a plain one (it is stored first), so a plain publish started after it in the same tick
 * is delivered first, and a subscriber of both then drops the retained one: a status or a result
 * would vanish. With aedes's in-memory persistence every step is a microtask, so by the next
 * macrotask a started publish has been delivered or queued in order. Hence the rule: after a
 * retained publish, anything not retained waits for `setImmediate`; retained after plain, and
 * retained after retained, keep their order by themselves. Status changes are rare, so the
 * deferral is too.
 */
export class OrderedPublisher {
  readonly #issue: (topic: string, payload: Buffer, retain: boolean) => void
  #deferred: Pending[] = []
  #retainedThisTick = false
  #scheduled = false

  /** `issue` hands one message to aedes. */
  constructor(issue: (topic: string, payload: Buffer, retain: boolean) => void) {
    this.#issue = issue
  }

  /** Messages waiting for the next macrotask. */
  get deferred(): number {
    return this.#deferred.length
  }

  /** Publishes now when that keeps the order, else at the next macrotask; never waits. */
  publish(topic: string, payload: Buffer, retain: boolean): void {
    if (this.#deferred.length > 0 || (this.#retainedThisTick && !retain)) {
      this.#deferred.push({ topic, payload, retain })
      this.#schedule()
      return
    }
    this.#now(topic, payload, retain)
  }

  /** Drops what waits (on close). */
  clear(): void {
    this.#deferred = []
  }

  #now(topic: string, payload: Buffer, retain: boolean): void {
    if (retain && !this.#retainedThisTick) {
      this.#retainedThisTick = true
      this.#schedule()
    }
    this.#issue(topic, payload, retain)
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    this.#scheduled = false
    this.#retainedThisTick = false
    const queue = this.#deferred
    let issued = 0
    while (issued < queue.length) {
      const next = queue[issued]
      if (next === undefined || (this.#retainedThisTick && !next.retain)) break
      this.#now(next.topic, next.payload, next.retain)
      issued++
    }
    // `clear()` may have replaced the queue while issuing; only trim the one we walked.
    if (this.#deferred === queue) queue.splice(0, issued)
    if (this.#deferred.length > 0) this.#schedule()
  }
}
