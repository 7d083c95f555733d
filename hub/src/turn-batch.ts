/**
 * Reads asked for within one turn of the event loop, made as one: each `get` waits for the end of
 * the turn, then one `load` call answers every key asked for meanwhile (at most `maxKeys` a call).
 * A connect storm of 5,000 devices then costs a few queries a turn, not 5,000.
 */
export class TurnBatch<K, V> {
  readonly #load: (keys: K[]) => Promise<ReadonlyMap<K, V>>
  readonly #maxKeys: number
  #pending = new Map<K, Array<{ resolve: (value: V | undefined) => void; reject: (err: unknown) => void }>>()
  #scheduled = false

  /** `load` answers a set of keys (a key it leaves out reads as undefined); `maxKeys` per call, default 10,000. */
  constructor(load: (keys: K[]) => Promise<ReadonlyMap<K, V>>, maxKeys = 10_000) {
    this.#load = load
    this.#maxKeys = maxKeys
  }

  /** The value of `key`, read with the other keys of this turn. */
  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.#pending.get(key)
      if (waiting === undefined) this.#pending.set(key, [{ resolve, reject }])
      else waiting.push({ resolve, reject })
      if (this.#scheduled) return
      this.#scheduled = true
      setImmediate(() => this.#run())
    })
  }

  #run(): void {
    this.#scheduled = false
    const pending = this.#pending
    this.#pending = new Map()
    const keys = [...pending.keys()]
    for (let start = 0; start < keys.length; start += this.#maxKeys) {
      const chunk = keys.slice(start, start + this.#maxKeys)
      this.#load(chunk).then(
        (values) => {
          for (const key of chunk) for (const waiter of pending.get(key) ?? []) waiter.resolve(values.get(key))
        },
        (err: unknown) => {
          for (const key of chunk) for (const waiter of pending.get(key) ?? []) waiter.reject(err)
        },
      )
    }
  }
}
