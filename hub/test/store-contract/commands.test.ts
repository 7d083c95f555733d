// CommandStore's guarantees (hub/src/store/interfaces.ts), the same cases on lmdb and PostgreSQL.
import { describe, expect, it } from 'vitest'
import { zeroCounts, type CommandRecord } from '../../src/store/index.js'
import { BACKENDS, useBackends } from './backends.js'

useBackends()

const command = (device: string, id: string, createdAt: number, change: Partial<CommandRecord> = {}): CommandRecord => ({
  id,
  device,
  name: 'reboot',
  status: 'queued',
  createdAt,
  expiresAt: createdAt + 60_000,
  timeoutMs: 5000,
  actor: 'admin',
  ...change,
})

const sentOf = (record: CommandRecord, sentAt: number): CommandRecord => {
  const { expiresAt: _expires, ...rest } = record
  return { ...rest, status: 'sent', sentAt }
}

const ids = (records: readonly CommandRecord[]): string[] => records.map((record) => record.id)

describe.each(BACKENDS)('CommandStore on $name', (backend) => {
  it('keeps a record exactly as written: params and results as JSON, key order and escapes included', async () => {
    const { stores } = await backend.open()
    const params = { z: 1, a: [true, null, 'n\u0000ul', '\u{1F600}'], nested: { b: 2.5, a: -0.125 }, big: 9_007_199_254_740_991 }
    const record = command('d1', 'c1', 1000, { params, batch: 'b1' })
    await stores.commands.write(record)
    const stored = await stores.commands.get('d1', 'c1')
    expect(stored).toEqual(record)
    expect(JSON.stringify(stored)).toBe(JSON.stringify(record))
    expect(await stores.commands.get('d1', 'nope')).toBeUndefined()
  })

  it('keeps the queue, expiry, sent and fan-out indexes in step with each status change', async () => {
    const { stores } = await backend.open()
    const { commands } = stores
    // A fan-out sends one command to each device.
    const a = command('d1', 'a', 1000, { batch: 'b1' })
    const b = command('d1', 'b', 2000)
    const c = command('d2', 'c', 1500, { batch: 'b1' })
    await Promise.all([commands.write(a), commands.write(b), commands.write(c)])
    expect(ids(await commands.queued('d1'))).toEqual(['a', 'b'])
    expect(Object.fromEntries(await commands.queuedCounts())).toEqual({ d1: 2, d2: 1 })
    expect(ids(await commands.expiredBy(62_000, 10))).toEqual(['a', 'c', 'b'])
    expect(ids(await commands.expiredBy(61_600, 10))).toEqual(['a', 'c'])
    expect(ids(await commands.expiredBy(62_000, 1))).toEqual(['a'])
    expect(await commands.batchCounts('b1')).toEqual({ ...zeroCounts(), queued: 2 })

    const sent = sentOf(a, 3000)
    await commands.write(sent)
    expect(ids(await commands.queued('d1'))).toEqual(['b'])
    expect(ids(await commands.expiredBy(62_000, 10))).toEqual(['c', 'b'])
    expect(await commands.sent()).toEqual([sent])
    expect(await commands.batchCounts('b1')).toEqual({ ...zeroCounts(), queued: 1, sent: 1 })

    await commands.write({ ...sent, status: 'succeeded', completedAt: 3500, result: { ok: 1 } })
    await commands.write({ ...b, status: 'expired', completedAt: 62_000, error: 'not delivered before its TTL ended' })
    expect(await commands.queued('d1')).toEqual([])
    expect(await commands.sent()).toEqual([])
    expect(Object.fromEntries(await commands.queuedCounts())).toEqual({ d2: 1 })
    expect(await commands.batchCounts('b1')).toEqual({ ...zeroCounts(), succeeded: 1, queued: 1 })
    await commands.write({ ...c, status: 'expired', completedAt: 62_000, error: 'not delivered before its TTL ended' })
    expect(await commands.batchCounts('b1')).toEqual({ ...zeroCounts(), succeeded: 1, expired: 1 })
    expect(await commands.batchCounts('unknown')).toEqual(zeroCounts())
  })

  it("applies one command's writes in the order they were made, without waiting in between", async () => {
    const { stores } = await backend.open()
    const queued = command('d1', 'fast', 1000, { batch: 'b2' })
    const sent = sentOf(queued, 1001)
    const done: CommandRecord = { ...sent, status: 'failed', completedAt: 1002, error: 'no' }
    await Promise.all([stores.commands.write(queued), stores.commands.write(sent), stores.commands.write(done)])
    expect(await stores.commands.get('d1', 'fast')).toEqual(done)
    expect(await stores.commands.queued('d1')).toEqual([])
    expect(await stores.commands.sent()).toEqual([])
    expect(await stores.commands.batchCounts('b2')).toEqual({ ...zeroCounts(), failed: 1 })
  })

  it('lists a device’s commands newest first, filtered before the limit', async () => {
    const { stores } = await backend.open()
    const records = Array.from({ length: 12 }, (_, i) => command('d1', `c${String(i).padStart(2, '0')}`, 1000 + Math.floor(i / 2)))
    for (const record of records) await stores.commands.write(record)
    await stores.commands.write(command('d2', 'other', 5000))
    const newestFirst = [...records].reverse().map((record) => record.id)
    expect(ids(await stores.commands.list('d1', undefined, 100))).toEqual(newestFirst)
    expect(ids(await stores.commands.list('d1', undefined, 3))).toEqual(newestFirst.slice(0, 3))
    expect(ids(await stores.commands.list('d1', (record) => Number(record.id.slice(1)) % 5 === 0, 2))).toEqual(['c10', 'c05'])
    expect(await stores.commands.list('nobody', undefined, 10)).toEqual([])
  })

  it('inserts a command id once across nodes: of concurrent inserts exactly one stores, the others get its record', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const tries = Array.from({ length: 10 }, (_, i) => i)
    const outcomes = await Promise.all(
      tries.flatMap((i) => [
        opened.stores.commands.insertIfAbsent(command('d1', `k${i}`, 1000, { actor: 'one' })),
        peer.commands.insertIfAbsent(command('d1', `k${i}`, 1000, { actor: 'two' })),
      ]),
    )
    for (const i of tries) {
      const pair = [outcomes[2 * i], outcomes[2 * i + 1]]
      const stored = await opened.stores.commands.get('d1', `k${i}`)
      expect(pair.filter((outcome) => outcome?.kind === 'stored'), `k${i}`).toHaveLength(1)
      expect(pair.find((outcome) => outcome?.kind !== 'stored'), `k${i}`).toEqual({ kind: 'exists', record: stored })
    }
    expect(await opened.stores.commands.insertIfAbsent(command('d1', 'k0', 1))).toEqual({ kind: 'exists', record: await opened.stores.commands.get('d1', 'k0') })
    expect(await opened.stores.commands.queued('d1')).toHaveLength(10)
  })

  it('keeps the queue bound across nodes: of concurrent inserts past it, exactly the bound store, in any order', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    await opened.stores.commands.write(command('full', 'before', 900))
    await opened.stores.commands.write({ ...command('full', 'done', 901), status: 'expired', completedAt: 902 })
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? opened.stores : peer).commands.insertIfAbsent(command('full', `n${i}`, 1000 + i), { maxQueued: 5 })),
    )
    expect(outcomes.filter((outcome) => outcome.kind === 'stored')).toHaveLength(4)
    expect(outcomes.filter((outcome) => outcome.kind === 'queue_full')).toHaveLength(8)
    expect(await opened.stores.commands.queued('full')).toHaveLength(5)
    // A taken id is found whatever the queue holds; a record that is not queued takes no slot.
    expect(await peer.commands.insertIfAbsent(command('full', 'before', 1), { maxQueued: 5 })).toMatchObject({ kind: 'exists', record: { id: 'before' } })
    expect(await peer.commands.insertIfAbsent({ ...command('full', 'refused', 2000), status: 'expired', completedAt: 2000 }, { maxQueued: 5 })).toEqual({ kind: 'stored' })
    expect(await peer.commands.queuedAmong(['full', 'nobody', 'd1'])).toEqual(new Set(['full']))
  })

  it('lets exactly one node claim a queued command, and exactly one end a sent one', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const queued = Array.from({ length: 10 }, (_, i) => command(`d${i}`, `q${i}`, 1000 + i, { batch: 'b3' }))
    for (const record of queued) await opened.stores.commands.write(record)
    const claims = await Promise.all(
      queued.flatMap((record) => [opened.stores.commands.writeIf(sentOf(record, 2000), 'queued'), peer.commands.writeIf(sentOf(record, 2001), 'queued')]),
    )
    for (let i = 0; i < queued.length; i++) expect([claims[2 * i], claims[2 * i + 1]].filter(Boolean), `q${i}`).toHaveLength(1)
    for (const record of queued) expect(await opened.stores.commands.queued(record.device)).toEqual([])
    // On PostgreSQL each node re-arms only the commands it sent.
    const mine = ids(await opened.stores.commands.sent()).sort()
    const theirs = ids(await peer.commands.sent()).sort()
    const claimedHere = queued.filter((_, i) => claims[2 * i] === true).map((record) => record.id).sort()
    if (opened.stores === peer) expect(mine).toEqual(queued.map((record) => record.id).sort())
    else {
      expect(mine).toEqual(claimedHere)
      expect(theirs).toEqual(queued.map((record) => record.id).filter((id) => !claimedHere.includes(id)).sort())
    }
    const ends = await Promise.all(
      queued.flatMap((record) => {
        const sent = sentOf(record, 2000)
        return [
          opened.stores.commands.writeIf({ ...sent, status: 'succeeded', completedAt: 3000 }, 'sent'),
          peer.commands.writeIf({ ...sent, status: 'timeout', completedAt: 3000, error: 'late' }, 'sent'),
        ]
      }),
    )
    for (let i = 0; i < queued.length; i++) expect([ends[2 * i], ends[2 * i + 1]].filter(Boolean), `q${i}`).toHaveLength(1)
    const counts = await opened.stores.commands.batchCounts('b3')
    expect(counts.succeeded + counts.timeout).toBe(10)
    expect(counts).toEqual({ ...zeroCounts(), succeeded: ends.filter((ok, i) => ok && i % 2 === 0).length, timeout: ends.filter((ok, i) => ok && i % 2 === 1).length })
    expect(await opened.stores.commands.writeIf(command('d1', 'missing', 1), 'queued')).toBe(false)
    expect(await opened.stores.commands.get('d1', 'missing')).toBeUndefined()
    expect(await opened.stores.commands.writeIf(sentOf(queued[0] as CommandRecord, 9), 'queued')).toBe(false)
  })

  it('lists as orphaned only the sent commands of nodes that are gone, once their deadline passed', async () => {
    const opened = await backend.open()
    const live = sentOf(command('d1', 'live', 1000), 2000)
    await opened.stores.commands.write(live)
    // A node that left (its row is gone) wrote this one.
    const gone = sentOf(command('d2', 'gone', 1000), 2000)
    const late = sentOf(command('d3', 'late', 1000), 9000)
    if (opened.url !== undefined) {
      const peer = await opened.peer()
      await peer.commands.write(gone)
      await peer.commands.write(late)
      await opened.stores.cluster?.join(1, 'test')
      await peer.cluster?.join(1, 'test')
      await peer.cluster?.leave()
      expect(ids(await opened.stores.commands.orphaned(2000 + 5000, 10))).toEqual(['gone'])
      expect(ids(await opened.stores.commands.orphaned(9000 + 5000, 10))).toEqual(['gone', 'late'])
      expect(ids(await opened.stores.commands.orphaned(9000 + 5000, 1))).toEqual(['gone'])
      // Written for another node: it is that node's to send (not in this node's sent()), and orphaned once that node is gone.
      const delegated = sentOf(command('d4', 'delegated', 1000), 2000)
      expect(await opened.stores.commands.insertIfAbsent(delegated, { node: 'elsewhere' })).toEqual({ kind: 'stored' })
      expect(ids(await opened.stores.commands.sent())).toEqual(['live'])
      expect(ids(await opened.stores.commands.orphaned(2000 + 5000, 10))).toEqual(['gone', 'delegated'])
    } else {
      // One node: its own timers end what it sent.
      await opened.stores.commands.write(gone)
      expect(await opened.stores.commands.orphaned(Number.MAX_SAFE_INTEGER, 10)).toEqual([])
    }
  })

  it('resolves writes once durable: a reopened store and another node see them', async () => {
    const opened = await backend.open()
    const record = command('d9', 'durable', 1000, { batch: 'b9' })
    await opened.stores.commands.write(record)
    await opened.stores.commands.write(sentOf(record, 1100))
    const peer = await opened.peer()
    expect(await peer.commands.get('d9', 'durable')).toEqual(sentOf(record, 1100))
    const reopened = await opened.reopen()
    expect(await reopened.commands.get('d9', 'durable')).toEqual(sentOf(record, 1100))
    expect(await reopened.commands.batchCounts('b9')).toEqual({ ...zeroCounts(), sent: 1 })
  })
})

