import type { Store } from './store.js'

/** One audit entry (CONTRACT §4): who did what to which target, when, and how it ended. */
export interface AuditEntry {
  readonly seq: number
  /** Unix ms. */
  readonly at: number
  /** The operator token's name (`admin`, a tokens-file name, `uplink`). */
  readonly actor: string
  /** e.g. `device.create`, `device.key_rotate`, `device.disconnect`, `command.create`. */
  readonly action: string
  /** The device id, `deviceId/commandId`, or a batch id. */
  readonly target: string
  /** `ok`, or what happened instead (`exists`, `device_offline`, `queued`, ...). */
  readonly outcome: string
}

/**
 * The append-only audit log, in the store, keyed by a sequence number. Appends join the store's
 * next group commit; the caller does not wait for them.
 */
export class AuditLog {
  readonly #store: Store
  readonly #now: () => number
  readonly #failed: (err: unknown, entry: AuditEntry) => void
  #nextSeq: number

  /** `failed` hears of an append the store refused: nobody awaits an append, so it reports it there. */
  constructor(store: Store, now: () => number, failed: (err: unknown, entry: AuditEntry) => void) {
    this.#store = store
    this.#now = now
    this.#failed = failed
    let last = 0
    for (const key of store.audit.getKeys({ reverse: true, limit: 1 })) last = key
    this.#nextSeq = last + 1
  }

  /** Appends one entry. */
  record(actor: string, action: string, target: string, outcome: string): void {
    const entry: AuditEntry = { seq: this.#nextSeq++, at: this.#now(), actor, action, target, outcome }
    this.#store.audit.put(entry.seq, entry).catch((err: unknown) => this.#failed(err, entry))
  }

  /** Entries after `after` (a seq), oldest first, at most `limit`. */
  list(after: number, limit: number): AuditEntry[] {
    const entries: AuditEntry[] = []
    for (const { value } of this.#store.audit.getRange({ start: after + 1, limit })) entries.push(value)
    return entries
  }
}
