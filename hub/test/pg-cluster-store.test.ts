// ClusterStore's guarantees (hub/src/store/interfaces.ts) on PostgreSQL, the only engine with a
// cluster: nodes and their liveness on the database's clock, session claims with growing epochs
// that name the owner they replace, releases that never clear a newer claim, and dead nodes'
// sessions cleared once.
import { describe, expect, it } from 'vitest'
import type { ClusterStore, HubStores } from '../src/store/index.js'
import { BACKENDS, postgres, useBackends } from './store-contract/backends.js'

useBackends()
const found = BACKENDS.find((b) => b.name === 'postgres')
if (found === undefined) throw new Error('no postgres backend')
const backend = found

const clusterOf = (stores: HubStores): ClusterStore => {
  if (stores.cluster === undefined) throw new Error('no cluster store')
  return stores.cluster
}

/** Two nodes on one fresh database, registered; `age` makes a node's last heartbeat older by `ms`. */
async function twoNodes(): Promise<{ a: ClusterStore; b: ClusterStore; idOf(store: ClusterStore): Promise<string>; age(id: string, ms: number): Promise<void> }> {
  const opened = await backend.open()
  const peer = await opened.peer()
  const a = clusterOf(opened.stores)
  const b = clusterOf(peer)
  await a.join(1000, 'v-a')
  await b.join(2000, 'v-b')
  const url = opened.url ?? ''
  const database = url.slice(url.lastIndexOf('/') + 1)
  return {
    a,
    b,
    // The node ids are the backend's; a node's first claim names it.
    async idOf(store) {
      const probe = `probe-${Math.random().toString(36).slice(2)}`
      await store.claim(probe, 1)
      const owner = (await store.owners([probe])).get(probe)
      if (owner?.node === undefined) throw new Error('no owner')
      return owner.node
    },
    async age(id, ms) {
      await postgres().query('UPDATE fleetgate.nodes SET last_seen_at = last_seen_at - $2 WHERE id = $1', [id, ms], database)
    },
  }
}

describe('ClusterStore on postgres', () => {
  it('lists nodes with their liveness on the database clock; a node that leaves is gone, one that stops beating is dead', async () => {
    const { a, b, idOf, age } = await twoNodes()
    const [idA, idB] = [await idOf(a), await idOf(b)]
    expect(await a.beat(3)).toEqual([idA, idB].sort())
    const listed = await a.nodes(86_400_000)
    expect(listed.map((node) => [node.id, node.startedAt, node.sessions, node.version, node.alive])).toEqual(
      [
        [idA, 1000, 3, 'v-a', true],
        [idB, 2000, 0, 'v-b', true],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    )
    await age(idB, 11_000)
    expect(await a.beat(3)).toEqual([idA])
    expect((await a.nodes(86_400_000)).find((node) => node.id === idB)?.alive).toBe(false)
    // Kept in the list only within `retainMs` of its last beat.
    expect((await a.nodes(5000)).map((node) => node.id)).toEqual([idA])
    // Its next beat brings it back.
    expect(await b.beat(0)).toEqual([idA, idB].sort())
    await b.leave()
    expect((await a.nodes(86_400_000)).map((node) => node.id)).toEqual([idA])
    // A beat after the row is gone writes it again.
    expect(await b.beat(1)).toEqual([idA, idB].sort())
  })

  it('gives each claim a higher epoch and the owner it replaced; a release never clears a newer claim', async () => {
    const { a, b, idOf } = await twoNodes()
    const [idA, idB] = [await idOf(a), await idOf(b)]
    const first = await a.claim('dev', 100)
    expect(first.previous).toBeUndefined()
    const second = await b.claim('dev', 200)
    expect(second).toEqual({ epoch: expect.any(Number), previous: idA })
    expect(second.epoch).toBeGreaterThan(first.epoch)
    // A's session ends after B's opened: the owner stays B.
    await a.release('dev', first.epoch)
    expect((await a.owners(['dev'])).get('dev')).toEqual({ node: idB, epoch: second.epoch, connectedAt: 200, alive: true })
    // A newer session on A, while B's ended: B's late release leaves A's claim.
    const third = await a.claim('dev', 300)
    expect(third.previous).toBe(idB)
    await b.release('dev', second.epoch)
    expect((await b.owners(['dev'])).get('dev')?.node).toBe(idA)
    await a.release('dev', third.epoch)
    expect((await b.owners(['dev', 'never'])).get('dev')).toEqual({ node: undefined, epoch: third.epoch, connectedAt: 300, alive: false })
    expect((await b.owners(['never'])).size).toBe(0)
  })

  it('orders concurrent claims of one device from two nodes: the later one names the earlier', async () => {
    const { a, b, idOf } = await twoNodes()
    const [idA, idB] = [await idOf(a), await idOf(b)]
    const devices = Array.from({ length: 40 }, (_, i) => `race-${i}`)
    const claims = await Promise.all(devices.flatMap((device) => [a.claim(device, 1), b.claim(device, 2)]))
    const owners = await a.owners(devices)
    devices.forEach((device, i) => {
      const [onA, onB] = [claims[2 * i], claims[2 * i + 1]]
      if (onA === undefined || onB === undefined) throw new Error('a claim is missing')
      const [earlier, later, laterNode, earlierNode] = onA.epoch < onB.epoch ? [onA, onB, idB, idA] : [onB, onA, idA, idB]
      expect(earlier.previous, device).toBeUndefined()
      expect(later.previous, device).toBe(earlierNode)
      expect(owners.get(device)?.node, device).toBe(laterNode)
    })
    // Claims of one node for one device in one turn go in submission order.
    const [x, y] = await Promise.all([a.claim('twice', 1), a.claim('twice', 2)])
    expect(y?.previous).toBe(idA)
    expect((y?.epoch ?? 0) > (x?.epoch ?? 0)).toBe(true)
  })

  it("clears a dead node's owners once, whichever node sweeps, and lets a node put back the claims it still holds", async () => {
    const { a, b, idOf, age } = await twoNodes()
    const idB = await idOf(b)
    const devices = Array.from({ length: 30 }, (_, i) => `dead-${i}`)
    const epochs = await Promise.all(devices.map((device) => b.claim(device, 5)))
    const mine = await a.claim('alive-one', 5)
    expect(await a.releaseDead(100)).toEqual([])
    await age(idB, 11_000)
    const [one, two] = await Promise.all([a.releaseDead(100), a.releaseDead(100)])
    const cleared = [...(one ?? []), ...(two ?? [])]
    // The probe claim of idOf is B's too.
    expect(cleared.filter((device) => device.startsWith('dead-')).sort()).toEqual([...devices].sort())
    expect(new Set(cleared).size).toBe(cleared.length)
    expect((await a.owners(['alive-one'])).get('alive-one')?.epoch).toBe(mine.epoch)
    // B was only slow: it puts back the sessions it still holds, at their epochs.
    const held = devices.slice(0, 3).map((device, i) => [device, epochs[i]?.epoch ?? 0] as const)
    const newer = await a.claim('dead-2', 9)
    expect((await b.reassert(held)).sort()).toEqual(['dead-0', 'dead-1'])
    expect((await b.owners(['dead-0', 'dead-2'])).get('dead-0')?.node).toBe(idB)
    expect((await b.owners(['dead-2'])).get('dead-2')?.epoch).toBe(newer.epoch)
  })
})
