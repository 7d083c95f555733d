// RegistryStore's guarantees (hub/src/store/interfaces.ts), the same cases on lmdb and PostgreSQL.
import { describe, expect, it } from 'vitest'
import type { DeviceRecord } from '../../src/store/index.js'
import { BACKENDS, useBackends, within } from './backends.js'

useBackends()

const device = (id: string, tags: Record<string, string> = {}): DeviceRecord => ({
  id,
  key: { type: 'hmac', material: `key-of-${id}` },
  tags,
  disabled: false,
  createdAt: 1_700_000_000_000,
})

describe.each(BACKENDS)('RegistryStore on $name', (backend) => {
  it('serves get synchronously, the same object until the record changes, and never changes a handed-out object', async () => {
    const { stores } = await backend.open()
    const registry = stores.registry
    expect(await registry.insert([device('d1', { site: 'a' })])).toEqual([true])
    const first = registry.get('d1')
    expect(first).toEqual(device('d1', { site: 'a' }))
    expect(registry.get('d1')).toBe(first)
    const snapshot = structuredClone(first)
    const after = await registry.update('d1', (before) => ({ ...before, disabled: true }))
    expect(after).toEqual({ ...device('d1', { site: 'a' }), disabled: true })
    expect(registry.get('d1')).toEqual(after)
    expect(registry.get('d1')).not.toBe(first)
    expect(first).toEqual(snapshot)
    expect(registry.get('nope')).toBeUndefined()
  })

  it('inserts each free id once: an existing id and a repeat within one call are refused', async () => {
    const { stores } = await backend.open()
    const registry = stores.registry
    expect(await registry.insert([device('a'), device('b')])).toEqual([true, true])
    expect(await registry.insert([device('b'), device('c'), { ...device('c'), tags: { x: 'y' } }])).toEqual([false, true, false])
    expect(registry.get('c')).toEqual(device('c'))
    expect((await registry.list({ tags: [['x', 'y']], after: undefined, limit: 10 })).items).toEqual([])
  })

  it('lets exactly one of two nodes inserting one id at once win', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const ids = Array.from({ length: 20 }, (_, i) => `race-${i}`)
    const results = await Promise.all(ids.flatMap((id) => [opened.stores.registry.insert([device(id, { by: 'one' })]), peer.registry.insert([device(id, { by: 'two' })])]))
    for (let i = 0; i < ids.length; i++) {
      const pair = [results[2 * i]?.[0], results[2 * i + 1]?.[0]]
      expect(pair.filter((won) => won === true), ids[i]).toHaveLength(1)
    }
  })

  it('runs update on the record as stored: concurrent changes from two nodes all count', async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    await opened.stores.registry.insert([device('counter', { n: '0' })])
    const bump = (before: DeviceRecord): DeviceRecord => ({ ...before, tags: { n: String(Number(before.tags['n']) + 1) } })
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? opened.stores.registry : peer.registry).update('counter', bump)))
    const stored = (await opened.stores.registry.list({ tags: [], after: undefined, limit: 10 })).items
    expect(stored.map((record) => record.tags)).toEqual([{ n: '20' }])
    // The last change may be the peer's, which reaches this node's cache within a second.
    expect(await within(1000, () => opened.stores.registry.get('counter')?.tags, (tags) => tags?.['n'] === '20')).toEqual({ n: '20' })
    expect(await opened.stores.registry.update('missing', bump)).toBeUndefined()
  })

  it('removes the record, its last-seen time and its tag index entries together; a new device of that id starts clean', async () => {
    const { stores } = await backend.open()
    const registry = stores.registry
    await registry.insert([device('gone', { site: 'x' })])
    await registry.touch('gone', 1234)
    expect(await registry.lastSeenAt('gone')).toBe(1234)
    expect(await registry.remove('gone')).toBe(true)
    expect(await registry.remove('gone')).toBe(false)
    expect(registry.get('gone')).toBeUndefined()
    expect((await registry.list({ tags: [['site', 'x']], after: undefined, limit: 10 })).items).toEqual([])
    // A session that ends after the delete touches the deleted id: the new device still has no last-seen time.
    await registry.touch('gone', 5678)
    expect(await registry.insert([device('gone')])).toEqual([true])
    expect(await registry.lastSeenAt('gone')).toBeUndefined()
    expect((await registry.list({ tags: [['site', 'x']], after: undefined, limit: 10 })).items).toEqual([])
  })

  it('keeps the latest last-seen time', async () => {
    const { stores } = await backend.open()
    await stores.registry.insert([device('t')])
    expect(await stores.registry.lastSeenAt('t')).toBeUndefined()
    await Promise.all([stores.registry.touch('t', 1), stores.registry.touch('t', 2)])
    await stores.registry.touch('t', 3)
    expect(await stores.registry.lastSeenAt('t')).toBe(3)
  })

  it('lists by id in byte order, by every given tag, and pages with the cursor', async () => {
    const { stores } = await backend.open()
    const registry = stores.registry
    // Byte order: '-' < '0' < 'A' < '_' < 'a'; tag values may hold any text.
    const odd = 'n\u0000ul \u00e9\u{1F600}'
    await registry.insert([
      device('a1', { site: 'x', odd }),
      device('_z', { site: 'x' }),
      device('B2', { site: 'y' }),
      device('-0', { site: 'x', odd }),
      device('09', { site: 'x', odd: 'other' }),
    ])
    const ids = async (query: Parameters<typeof registry.list>[0]): Promise<[string[], string | null]> => {
      const page = await registry.list(query)
      return [page.items.map((record) => record.id), page.next]
    }
    expect(await ids({ tags: [], after: undefined, limit: 10 })).toEqual([['-0', '09', 'B2', '_z', 'a1'], null])
    expect(await ids({ tags: [], after: undefined, limit: 2 })).toEqual([['-0', '09'], '09'])
    expect(await ids({ tags: [], after: '09', limit: 2 })).toEqual([['B2', '_z'], '_z'])
    expect(await ids({ tags: [], after: '_z', limit: 2 })).toEqual([['a1'], null])
    expect(await ids({ tags: [['site', 'x']], after: undefined, limit: 10 })).toEqual([['-0', '09', '_z', 'a1'], null])
    expect(await ids({ tags: [['site', 'x'], ['odd', odd]], after: undefined, limit: 10 })).toEqual([['-0', 'a1'], null])
    expect(await ids({ tags: [['odd', odd], ['site', 'x']], after: '-0', limit: 10 })).toEqual([['a1'], null])
    expect(registry.get('a1')?.tags['odd']).toBe(odd)
  })

  it('resolves writes once durable: a reopened store, and another node right after, see every one', async () => {
    const opened = await backend.open()
    await opened.stores.registry.insert([device('kept', { site: 'k' }), device('dropped')])
    await opened.stores.registry.update('kept', (before) => ({ ...before, disabled: true }))
    await opened.stores.registry.remove('dropped')
    await opened.stores.registry.touch('kept', 42)
    const peer = await opened.peer()
    expect(peer.registry.get('kept')?.disabled).toBe(true)
    expect(await peer.registry.lastSeenAt('kept')).toBe(42)
    const reopened = await opened.reopen()
    expect(reopened.registry.get('kept')).toEqual({ ...device('kept', { site: 'k' }), disabled: true })
    expect(reopened.registry.get('dropped')).toBeUndefined()
    expect(await reopened.registry.lastSeenAt('kept')).toBe(42)
    expect((await reopened.registry.list({ tags: [['site', 'k']], after: undefined, limit: 5 })).items.map((r) => r.id)).toEqual(['kept'])
  })

  it("drops another node's changes into get within a second", async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    await opened.stores.registry.insert([device('shared'), device('doomed')])
    expect(await within(1000, () => peer.registry.get('shared'), (record) => record !== undefined)).toEqual(device('shared'))
    expect(await within(1000, () => peer.registry.get('doomed'), (record) => record !== undefined)).toEqual(device('doomed'))
    await opened.stores.registry.update('shared', (before) => ({ ...before, disabled: true }))
    await opened.stores.registry.remove('doomed')
    expect(await within(1000, () => peer.registry.get('shared')?.disabled, (disabled) => disabled === true)).toBe(true)
    expect(await within(1000, () => peer.registry.get('doomed'), (record) => record === undefined)).toBeUndefined()
  })

  it("tells watchers of each change it takes, its own once committed and another node's once they arrive", async () => {
    const opened = await backend.open()
    const peer = await opened.peer()
    const seen: Array<[string, boolean | undefined]> = []
    const theirs: Array<[string, boolean | undefined]> = []
    opened.stores.registry.watch((id, record) => seen.push([id, record?.disabled]))
    if (peer !== opened.stores) peer.registry.watch((id, record) => theirs.push([id, record?.disabled]))
    await opened.stores.registry.insert([device('w1'), device('w2')])
    expect(await opened.stores.registry.insert([device('w1')])).toEqual([false])
    await opened.stores.registry.update('w1', (before) => ({ ...before, disabled: true }))
    await opened.stores.registry.remove('w2')
    // Resolved means told: no waiting for this node's own changes.
    expect(seen).toEqual([['w1', false], ['w2', false], ['w1', true], ['w2', undefined]])
    if (peer === opened.stores) return
    // Another node may take a burst of changes as one (the latest record of each device).
    const last = await within(1000, () => theirs.filter(([id]) => id === 'w2').at(-1), (entry) => entry?.[1] === undefined && theirs.some(([id]) => id === 'w2'))
    expect(last).toEqual(['w2', undefined])
    expect(await within(1000, () => theirs.filter(([id]) => id === 'w1').at(-1), (entry) => entry?.[1] === true)).toEqual(['w1', true])
  })
})
