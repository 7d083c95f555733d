import type { Database, RootDatabase } from 'lmdb'
import type { AuditStore } from '../interfaces.js'
import type { AuditEntry } from '../records.js'
import { database } from './environment.js'

/**
 * The audit log in lmdb's `audit` database, keyed by seq. Seqs are handed out here, in memory, in
 * call order: appends of one tick join the store's next group commit in that order.
 */
export class LmdbAuditStore implements AuditStore {
  readonly #audit: Database<AuditEntry, number>
  #nextSeq: number

  constructor(root: RootDatabase) {
    this.#audit = database<AuditEntry, number>(root, 'audit')
    let last = 0
    for (const key of this.#audit.getKeys({ reverse: true, limit: 1 })) last = key
    this.#nextSeq = last + 1
  }

  async append(entry: Omit<AuditEntry, 'seq'>): Promise<AuditEntry> {
    const stored: AuditEntry = { seq: this.#nextSeq++, ...entry }
    await this.#audit.put(stored.seq, stored)
    return stored
  }

  list(after: number, limit: number): Promise<AuditEntry[]> {
    const entries: AuditEntry[] = []
    for (const { value } of this.#audit.getRange({ start: after + 1, limit })) entries.push(value)
    return Promise.resolve(entries)
  }
}
