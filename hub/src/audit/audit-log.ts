import type { Clock } from '@fleetgate/device-sdk'
import type { Logger } from '../logger.js'
import type { AuditEntry, AuditStore } from '../store/index.js'

/**
 * The audit trail (docs/rest.md) as the hub writes it: `record` stamps an entry and hands it to the
 * AuditStore without waiting (appends join the store's next group commit); a failed append is
 * logged, since the act it records has already happened.
 */
export class AuditLog {
  readonly #store: AuditStore
  readonly #clock: Clock
  readonly #log: Logger

  constructor(store: AuditStore, clock: Clock, log: Logger) {
    this.#store = store
    this.#clock = clock
    this.#log = log
  }

  /** Appends one entry. */
  record(actor: string, action: string, target: string, outcome: string): void {
    this.#store.append({ at: this.#clock.now(), actor, action, target, outcome }).catch((err: unknown) => {
      this.#log.error({ err, actor, action, target, outcome }, 'audit entry not stored')
    })
  }

  /** Entries after `after` (a seq), oldest first, at most `limit`. */
  list(after: number, limit: number): Promise<AuditEntry[]> {
    return this.#store.list(after, limit)
  }
}
