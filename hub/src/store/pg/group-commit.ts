import type pg from 'pg'
import { hasCode } from '../../errors.js'
import { transaction, type Db } from './pool.js'

/**
 * Group commit, as lmdb does it for the embedded store: writes submitted while a transaction is
 * under way wait, and the next transaction takes all of them (at most `maxWrites`). One
 * transaction is under way at a time, so writes apply in the order they were submitted, and a
 * fan-out of 10,000 commands costs tens of commits instead of 10,000. A transaction that the
 * server refuses (a value it will not take, rather than an outage) is run again one write per
 * transaction, so that one bad write fails alone.
 */
export class GroupCommit<Write, Result> {
  readonly #db: Db
  readonly #what: string
  readonly #apply: (client: pg.PoolClient, writes: readonly Write[]) => Promise<Result[]>
  readonly #maxWrites: number
  #pending: Array<{ write: Write; resolve: (result: Result) => void; reject: (err: unknown) => void }> = []
  /** The drain under way, if any. */
  #draining: Promise<void> | undefined

  /** `apply` makes the writes in the transaction it is given and returns one result per write, in order. */
  constructor(db: Db, what: string, maxWrites: number, apply: (client: pg.PoolClient, writes: readonly Write[]) => Promise<Result[]>) {
    this.#db = db
    this.#what = what
    this.#maxWrites = maxWrites
    this.#apply = apply
  }

  /** Resolves with the write's result once its transaction has committed. */
  submit(write: Write): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ write, resolve, reject })
      // The writes of this turn of the event loop join the first transaction.
      this.#draining ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#drain())
    })
  }

  /** Resolves once every write submitted so far has settled. */
  async settled(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const group = this.#pending.splice(0, this.#maxWrites)
      try {
        const results = await this.#run(group.map((entry) => entry.write))
        group.forEach((entry, i) => entry.resolve(results[i] as Result))
      } catch (err) {
        if (group.length === 1 || hasCode(err, 'HUB_ERR_STORE_UNAVAILABLE')) {
          for (const entry of group) entry.reject(err)
          continue
        }
        for (const entry of group) {
          await this.#run([entry.write]).then(([result]) => entry.resolve(result as Result), entry.reject)
        }
      }
    }
    this.#draining = undefined
  }

  #run(writes: readonly Write[]): Promise<Result[]> {
    return transaction(this.#db, this.#what, (client) => this.#apply(client, writes))
  }
}
