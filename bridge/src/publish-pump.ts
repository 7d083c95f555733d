/** One message the hub hands to aedes. */
export interface Outgoing {
  readonly topic: string
  /** The payload, or undefined when `value` is to be encoded once the message starts. */
  readonly payload: Buffer | undefined
  readonly value: unknown
  readonly retain: boolean
}

/**
 * Feeds the hub's publishes to aedes in order, a bounded number at a time.
 *
 * Bounded, because aedes's emitter (mqemitter) runs at most 100 messages at once and queues the
 * rest in an array it drains with `shift()`: a burst of N publishes then costs O(N²). Below that
 * bound the emitter never queues, and the backlog here is a FIFO with O(1) steps.
 *
 * In order, because aedes numbers each publish when it starts and a client drops a delivery
 * numbered below the last it received (`dedupe` in aedes lib/client.js; moscajs/aedes#994). A
 * retained publish takes one more asynchronous step than a plain one (it is stored first), so a
 * plain publish started after it could overtake it and the retained one (a status, say) would be
 * dropped. So a retained publish is a barrier: nothing starts behind it until it is delivered.
 * Retained after plain keeps its order by itself. Status changes are rare, so barriers are too.
 */
export class PublishPump {
  readonly #start: (message: Outgoing, done: () => void) => void
  readonly #concurrency: number
  #backlog: Array<Outgoing | undefined> = []
  #head = 0
  #running = 0
  #barrier = false

  /** `start` hands one message to aedes and calls `done` once it was delivered; `concurrency` ≥ 1. */
  constructor(start: (message: Outgoing, done: () => void) => void, concurrency: number) {
    this.#start = start
    this.#concurrency = concurrency
  }

  /** Messages handed over and not delivered yet, plus those waiting their turn. */
  get pending(): number {
    return this.#running + this.#backlog.length - this.#head
  }

  /** Queues one message; it starts at once when the bound and the order allow. */
  publish(message: Outgoing): void {
    this.#backlog.push(message)
    this.#pump()
  }

  /** Drops what waits (on close); what runs finishes. */
  clear(): void {
    this.#backlog = []
    this.#head = 0
  }

  #pump(): void {
    while (this.#head < this.#backlog.length && this.#running < this.#concurrency && !this.#barrier) {
      const message = this.#backlog[this.#head] as Outgoing
      this.#backlog[this.#head++] = undefined
      if (this.#head > 1024 && this.#head * 2 > this.#backlog.length) {
        this.#backlog = this.#backlog.slice(this.#head)
        this.#head = 0
      }
      this.#running++
      if (message.retain) this.#barrier = true
      this.#start(message, () => {
        this.#running--
        if (message.retain) this.#barrier = false
        this.#pump()
      })
    }
  }
}
