/** What a test connection received, queued in order until the test takes it. */
export class Inbox<T> {
  /** Received and not yet taken, oldest first. */
  readonly items: T[] = []
  #waiters: Array<() => void> = []

  /** Queues one item and wakes whoever waits for it. */
  push(item: T): void {
    this.items.push(item)
    this.wake()
  }

  /** Wakes whoever waits, without an item (the connection closed, say). */
  wake(): void {
    for (const wake of this.#waiters.splice(0)) wake()
  }

  /**
   * The oldest item not yet taken, waiting up to `timeoutMs`; throws `no <what> within <timeoutMs> ms`,
   * or `gone` at once when `ended()` says that nothing more will come.
   */
  async next(timeoutMs: number, what: string, ended: () => boolean = () => false, gone = ''): Promise<T> {
    const deadline = Date.now() + timeoutMs
    while (this.items.length === 0) {
      if (ended()) throw new Error(gone)
      if (Date.now() >= deadline) throw new Error(`no ${what} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now())
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.items.shift() as T
  }
}
