// A small typed event emitter: no EventEmitter dependency, so the SDK bundles for browsers.

/** Event names mapped to the argument tuples their listeners receive. */
export type EventMap = Record<string, unknown[]>

/** A listener for event `K` of map `E`. */
export type Listener<E extends EventMap, K extends keyof E> = (...args: E[K]) => void

interface Entry<E extends EventMap, K extends keyof E> {
  listener: Listener<E, K>
  once: boolean
}

/**
 * on/off/once over a typed event map. A listener that throws does not break the emitter or the
 * state of its owner: the error is rethrown in a microtask, where it surfaces as an uncaught
 * exception like any other bug, after the remaining listeners have run.
 */
export class TypedEmitter<E extends EventMap> {
  // copy-on-write arrays: emit() iterates the array it started with, whatever listeners do meanwhile
  #listeners: { [K in keyof E]?: ReadonlyArray<Entry<E, K>> } = {}

  /** Calls `listener` on every `event` until off(). */
  on<K extends keyof E>(event: K, listener: Listener<E, K>): this {
    return this.#add(event, listener, false)
  }

  /** Calls `listener` on the next `event` only. */
  once<K extends keyof E>(event: K, listener: Listener<E, K>): this {
    return this.#add(event, listener, true)
  }

  /** Removes one registration of `listener` for `event` (from on() or once()). */
  off<K extends keyof E>(event: K, listener: Listener<E, K>): this {
    const entries = this.#listeners[event]
    if (entries === undefined) return this
    const index = entries.findIndex((entry) => entry.listener === listener)
    if (index >= 0) this.#listeners[event] = [...entries.slice(0, index), ...entries.slice(index + 1)]
    return this
  }

  /** Number of listeners registered for `event`. */
  listenerCount(event: keyof E): number {
    return this.#listeners[event]?.length ?? 0
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const entries = this.#listeners[event]
    if (entries === undefined) return
    for (const entry of entries) {
      if (entry.once) this.#remove(event, entry)
      try {
        entry.listener(...args)
      } catch (error) {
        queueMicrotask(() => {
          throw error
        })
      }
    }
  }

  #add<K extends keyof E>(event: K, listener: Listener<E, K>, once: boolean): this {
    this.#listeners[event] = [...(this.#listeners[event] ?? []), { listener, once }]
    return this
  }

  #remove<K extends keyof E>(event: K, entry: Entry<E, K>): void {
    const entries = this.#listeners[event]
    if (entries !== undefined) this.#listeners[event] = entries.filter((candidate) => candidate !== entry)
  }
}
