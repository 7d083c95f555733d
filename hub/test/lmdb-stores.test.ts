import { join } from 'node:path'
import { open } from 'lmdb'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from '../../test/support/hub.js'
import { openLmdbStores, type BatchInfo, type HubStores, type SpoolEntry } from '../src/store/index.js'

const dirs: Array<{ cleanup(): void }> = []
const opened: HubStores[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((stores) => stores.close()))
  for (const dir of dirs.splice(0)) dir.cleanup()
})

function dataDir(): string {
  const dir = tempDir('fleetgate-stores-')
  dirs.push(dir)
  return dir.path
}

function openStores(path: string): HubStores {
  const stores = openLmdbStores(path)
  opened.push(stores)
  return stores
}

describe('lmdb stores', () => {
  it("take over what hub 0.1 kept in the shared `meta` database: the spool's byte total and the batches", async () => {
    const path = dataDir()
    const info: BatchInfo = { batch: 'b-1', name: 'reboot', targeted: 3, createdAt: 1_700_000_000_000 }
    // The layout of hub 0.1: one `meta` database holding values of several concerns.
    const legacy = open({ path: join(path, 'store'), maxDbs: 16, compression: false })
    const meta = legacy.openDB<unknown, string>({ name: 'meta' })
    await meta.put('spool.bytes', 1234)
    await meta.put('batch:b-1', info)
    await legacy.close()

    const stores = openStores(path)
    expect(stores.spool.bytes).toBe(1234)
    expect(await stores.batches.get('b-1')).toEqual(info)
    await stores.close()
    opened.pop()

    const reopened = openStores(path)
    expect(reopened.spool.bytes).toBe(1234)
    expect(await reopened.batches.get('b-1')).toEqual(info)
    const root = open({ path: join(path, 'store'), maxDbs: 32, compression: false })
    expect([...root.openDB<unknown, string>({ name: 'meta' }).getKeys()]).toEqual([])
    await root.close()
  })

  it('keep the spool byte total exact across a reopen, apart from other stores', async () => {
    const path = dataDir()
    const stores = openStores(path)
    const first = await stores.spool.append([{ deviceId: 'd1', receivedAt: 1, frame: new Uint8Array(10) }])
    await stores.batches.create({ batch: 'b-2', name: 'x', targeted: 0, createdAt: 2 })
    const held = stores.spool.bytes
    // a group's head (9 bytes), then the entry: id length, id, receivedAt, frame length, frame
    expect(held).toBe(9 + 1 + 2 + 8 + 4 + 10)
    await stores.close()
    opened.pop()
    const reopened = openStores(path)
    expect(reopened.spool.bytes).toBe(held)
    expect(reopened.spool.nextSeq).toBe(first + 1)
    await reopened.spool.trim([{ group: first, entries: 1 }])
    expect(reopened.spool.bytes).toBe(0)
  })

  it('keep the entries of one append as one group: read from any seq, removed once every entry was shipped', async () => {
    const path = dataDir()
    const stores = openStores(path)
    const entry = (deviceId: string, n: number): SpoolEntry => ({ deviceId, receivedAt: n, frame: Uint8Array.from([n, n + 1]) })
    const first = await stores.spool.append([entry('a', 1), entry('bb', 2), entry('a', 3)])
    const second = await stores.spool.append([entry('c', 4)])
    const seen = (after: number, before?: number): Array<[number, number, string, number, number[]]> =>
      [...stores.spool.read(after, before)].map((e) => [e.seq, e.group, e.deviceId, e.receivedAt, [...e.frame]])
    const group = first + 2
    expect(seen(0)).toStrictEqual([
      [first, group, 'a', 1, [1, 2]],
      [first + 1, group, 'bb', 2, [2, 3]],
      [first + 2, group, 'a', 3, [3, 4]],
      [second, second, 'c', 4, [4, 5]],
    ])
    expect(seen(first, second).map(([seq]) => seq)).toStrictEqual([first + 1, first + 2])
    expect(seen(first + 2).map(([seq]) => seq)).toStrictEqual([second])
    expect(seen(first - 1, first + 1).map(([seq]) => seq)).toStrictEqual([first])
    expect(stores.spool.entries).toBe(4)
    const bytes = stores.spool.bytes
    // two of the group's three entries shipped: it stays, whole, and keeps its bytes
    await stores.spool.trim([{ group, entries: 2 }, { group: second, entries: 1 }])
    expect([stores.spool.entries, stores.spool.bytes, seen(0).map(([seq]) => seq)]).toStrictEqual([3, bytes - (9 + 1 + 1 + 8 + 4 + 2), [first, first + 1, first + 2]])
    await stores.spool.trim([{ group, entries: 1 }])
    expect([stores.spool.entries, stores.spool.bytes, seen(0)]).toStrictEqual([0, 0, []])
    await stores.close()
    opened.pop()
    const reopened = openStores(path)
    expect([reopened.spool.entries, reopened.spool.bytes]).toStrictEqual([0, 0])
  })

  it('read and trim a spool that hub 0.3 left, one entry per key, and count its entries', async () => {
    const path = dataDir()
    const root = open({ path: join(path, 'store'), maxDbs: 32, compression: false })
    const legacy = root.openDB<Buffer, number>({ name: 'spool', encoding: 'binary' })
    const value = (id: string, receivedAt: number, frame: number[]): Buffer => {
      const out = Buffer.alloc(1 + id.length + 8 + frame.length)
      out[0] = id.length
      out.write(id, 1, 'latin1')
      out.writeDoubleBE(receivedAt, 1 + id.length)
      out.set(frame, 1 + id.length + 8)
      return out
    }
    await root.transaction(() => {
      legacy.put(7, value('old-1', 70, [0xa0]))
      legacy.put(8, value('old-22', 80, [0xa1, 0x00]))
      root.openDB<number, string>({ name: 'spool-bytes' }).put('total', 1000)
    })
    await root.close()
    const stores = openStores(path)
    expect([stores.spool.entries, stores.spool.nextSeq]).toStrictEqual([2, 9])
    const later = await stores.spool.append([{ deviceId: 'new', receivedAt: 90, frame: Uint8Array.from([0xa2]) }])
    expect(later).toBe(9)
    expect([...stores.spool.read(0)].map((e) => [e.seq, e.group, e.deviceId, e.receivedAt, [...e.frame]])).toStrictEqual([
      [7, 7, 'old-1', 70, [0xa0]],
      [8, 8, 'old-22', 80, [0xa1, 0x00]],
      [9, 9, 'new', 90, [0xa2]],
    ])
    await stores.spool.trim([{ group: 7, entries: 1 }, { group: 8, entries: 1 }, { group: 9, entries: 1 }])
    expect([stores.spool.entries, [...stores.spool.read(0)]]).toStrictEqual([0, []])
  })

  it('give audit entries increasing seqs that continue after a reopen', async () => {
    const path = dataDir()
    const stores = openStores(path)
    const a = await stores.audit.append({ at: 1, actor: 'admin', action: 'device.create', target: 'd1', outcome: 'ok' })
    const b = await stores.audit.append({ at: 2, actor: 'admin', action: 'device.delete', target: 'd1', outcome: 'ok' })
    expect([a.seq, b.seq]).toEqual([1, 2])
    await stores.close()
    opened.pop()
    const reopened = openStores(path)
    const c = await reopened.audit.append({ at: 3, actor: 'ops', action: 'command.create', target: 'd1/c', outcome: 'queued' })
    expect(c.seq).toBe(3)
    expect((await reopened.audit.list(1, 10)).map((entry) => entry.seq)).toEqual([2, 3])
  })
})
