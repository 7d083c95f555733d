/**
 * A first-in first-out queue of at most `capacity` items that drops its oldest item to make room:
 * a fixed ring, so a push and a shift cost O(1) and memory never grows past the capacity.
 */
export class BoundedQueue<T> {
  readonly #ring: Array<T | undefined>
  #head = 0
  #size = 0

  /** `capacity`: items kept, at least 1. */
  constructor(readonly capacity: number) {
    this.#ring = new Array<T | undefined>(capacity)
  }

  /** Items queued now. */
  get size(): number {
    return this.#size
  }

  /** Appends `item`; returns true when the oldest item was dropped to make room. */
  push(item: T): boolean {
    const tail = (this.#head + this.#size) % this.capacity
    this.#ring[tail] = item
    if (this.#size < this.capacity) {
      this.#size++
      return false
    }
    this.#head = (this.#head + 1) % this.capacity
    return true
  }

  /** Removes and returns the oldest item, or undefined when empty. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined
    const item = this.#ring[this.#head]
    this.#ring[this.#head] = undefined
    this.#head = (this.#head + 1) % this.capacity
    this.#size--
    return item
  }

  /** Drops every item. */
  clear(): void {
    this.#ring.fill(undefined)
    this.#head = 0
    this.#size = 0
  }
}
