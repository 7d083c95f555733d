// AuditStore's guarantees (hub/src/store/interfaces.ts), the same cases on lmdb and PostgreSQL.
import { describe, expect, it } from 'vitest'
import type { AuditEntry } from '../../src/store/index.js'
import { BACKENDS, useBackends } from './backends.js'

useBackends()

const entry = (i: number, actor = 'admin'): Omit<AuditEntry, 'seq'> => ({ at: 1000 + i, actor, action: 'device.create', target: `d${i}`, outcome: 'ok' })

describe.each(BACKENDS)('AuditStore on $name', (backend) => {
  it('gives each entry a seq above every entry appended before it and lists in seq order after a cursor', async () => {
    const { stores } = await backend.open()
    const first = await stores.audit.append(entry(0))
    const second = await stores.audit.append(entry(1))
    expect(second.seq).toBeGreaterThan(first.seq)
    expect(first).toEqual({ seq: first.seq, ...entry(0) })
    const together = await Promise.all(Array.from({ length: 5 }, (_, i) => stores.audit.append(entry(2 + i))))
    expect(together.map((stored) => stored.seq)).toEqual(Array.from({ length: 5 }, (_, i) => second.seq + 1 + i))
    const all = await stores.audit.list(0, 100)
    expect(all.map((stored) => stored.target)).toEqual(Array.from({ length: 7 }, (_, i) => `d${i}`))
    expect(await stores.audit.list(second.seq, 2)).toEqual(together.slice(0, 2))
    expect(await stores.audit.list(all[all.length - 1]?.seq ?? 0, 10)).toEqual([])
  })

  it('keeps text exactly, control characters included', async () => {
    const { stores } = await backend.open()
    const odd = { ...entry(0), outcome: 'invalid: n\u0000ul \u{1F600} "quoted"' }
    const stored = await stores.audit.append(odd)
    expect(await stores.audit.list(stored.seq - 1, 1)).toEqual([{ seq: stored.seq, ...odd }])
  })

  it('numbers the appends of two nodes into one log: seqs unique and in the order they committed, none lost', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const appended = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? opened.stores.audit : peer.audit).append(entry(i, i % 2 === 0 ? 'one' : 'two'))))
    const seqs = appended.map((stored) => stored.seq)
    expect(new Set(seqs).size).toBe(40)
    const listed = await opened.stores.audit.list(0, 100)
    expect(listed.map((stored) => stored.seq)).toEqual([...seqs].sort((a, b) => a - b))
    expect([...listed].sort((a, b) => a.at - b.at)).toEqual([...appended].sort((a, b) => a.at - b.at))
  })

  it('resolves appends once durable: a reopened store continues after them', async () => {
    const opened = await backend.open()
    const kept = await opened.stores.audit.append(entry(0))
    const reopened = await opened.reopen()
    expect(await reopened.audit.list(0, 10)).toEqual([kept])
    expect((await reopened.audit.append(entry(1))).seq).toBeGreaterThan(kept.seq)
  })
})
