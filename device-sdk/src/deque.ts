// A FIFO with O(1) shift: an array and a head index, compacted once the dead front outgrows the rest.

/** A first-in first-out queue of `T`. */
export class Deque<T> {
  #items: T[] = []
  #head = 0

  /** Items held. */
  get length(): number {
    return this.#items.length - this.#head
  }

  /** The item `index` places from the front; undefined beyond the end. */
  at(index: number): T | undefined {
    return index < 0 ? undefined : this.#items[this.#head + index]
  }

  /** Adds `item` at the back. */
  push(item: T): void {
    this.#items.push(item)
  }

  /** Puts `items` in front, in their order. */
  prepend(items: readonly T[]): void {
    this.#items = [...items, ...this.#items.slice(this.#head)]
    this.#head = 0
  }

  /** Removes and returns the front item; undefined when empty. */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined
    const item = this.#items[this.#head++]
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }

  /** Removes every item and returns them, front first. */
  drain(): T[] {
    const items = this.#items.slice(this.#head)
    this.#items = []
    this.#head = 0
    return items
  }
}
