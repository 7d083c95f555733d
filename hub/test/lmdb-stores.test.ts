import { join } from 'node:path'
import { open } from 'lmdb'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from '../../test/support/hub.js'
import { openLmdbStores, type BatchInfo, type HubStores } from '../src/store/index.js'

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
    expect(held).toBe(stores.spool.sizeOf({ deviceId: 'd1', receivedAt: 1, frame: new Uint8Array(10) }))
    await stores.close()
    opened.pop()
    const reopened = openStores(path)
    expect(reopened.spool.bytes).toBe(held)
    expect(reopened.spool.nextSeq).toBe(first + 1)
    await reopened.spool.trim([{ seq: first, bytes: held }])
    expect(reopened.spool.bytes).toBe(0)
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
