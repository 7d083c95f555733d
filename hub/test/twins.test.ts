// Twins without a socket (docs/twins.md): the core over a real lmdb store in a temp dir, sessions a
// test supplies, and the stepping clock.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { HubFrame, TwinDocument } from '@fleetgate/device-sdk/wire'
import { SteppingClock, settle } from '../../test/support/clock.js'
import { tempDir } from '../../test/support/hub.js'
import { until } from '../../test/support/telemetry.js'
import { AuditLog } from '../src/audit/index.js'
import { Registry, Sessions, type Peer } from '../src/devices/index.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type HubStores, type TwinStore } from '../src/store/index.js'
import { Twins, type ReportOutcome, type TwinView } from '../src/twins/index.js'

/** A session that keeps what it is sent; `full` makes sends fail as uWS does over its backpressure limit. */
class TestPeer implements Peer {
  readonly connectedAt = 0
  readonly lastSeenAt = 0
  readonly grant = { createdAt: 0, revocations: 0 }
  readonly sent: HubFrame[] = []
  readonly closes: number[] = []
  full = false
  open = true
  constructor(readonly deviceId: string) {}
  isOpen(): boolean {
    return this.open
  }
  send(frame: HubFrame): boolean {
    if (!this.open || this.full) return false
    this.sent.push(frame)
    return true
  }
  close(code: number): void {
    this.closes.push(code)
    this.open = false
  }
}

describe('Twins', () => {
  let dir: { path: string; cleanup(): void }
  let stores: HubStores
  let registry: Registry
  let sessions: Sessions
  let clock: SteppingClock
  let published: TwinView[]
  let removed: string[]
  let reports: ReportOutcome[]
  let sentCount: Record<'sent' | 'held', number>

  const build = (store: TwinStore = stores.twins): Twins =>
    new Twins({
      store,
      registry,
      sessions,
      audit: new AuditLog(stores.audit, clock, createLogger('silent')),
      log: createLogger('silent'),
      clock,
      counters: {
        desiredChanged: () => undefined,
        reported: (outcome) => reports.push(outcome),
        desiredSent: (outcome) => sentCount[outcome]++,
      },
      changed: (twin) => published.push(twin),
      removed: (device) => removed.push(device),
    })

  beforeEach(async () => {
    dir = tempDir()
    stores = openLmdbStores(dir.path)
    clock = new SteppingClock()
    registry = new Registry(stores.registry, clock)
    sessions = new Sessions()
    published = []
    removed = []
    reports = []
    sentCount = { sent: 0, held: 0 }
    await registry.create({ id: 'd1', keyType: 'hmac', tags: {} })
  })
  afterEach(async () => {
    await stores.close()
    dir.cleanup()
  })

  it('sends the desired document after opened() and after each change, never an older version than one sent', async () => {
    // a store whose reads answer late, with what they saw when they began (a network store can):
    // the session's first read answers after a change was sent, and its older answer is not sent
    let stale: Array<() => void> = []
    const slow: TwinStore = {
      update: (device, change) => stores.twins.update(device, change),
      remove: (device) => stores.twins.remove(device),
      get: async (device) => {
        const seen = await stores.twins.get(device)
        await new Promise<void>((resolve) => stale.push(resolve))
        return seen
      },
      desiredVersions: async (devices) => {
        const seen = await stores.twins.desiredVersions(devices)
        await new Promise<void>((resolve) => stale.push(resolve))
        return seen
      },
    }
    const twins = build(slow)
    const peer = new TestPeer('d1')
    sessions.opened(peer)
    const opening = twins.opened(peer)
    await until(() => stale.length === 1, 'the read to begin')
    await twins.changeDesired('d1', { a: 1 }, undefined, 'ops')
    for (const resolve of stale.splice(0)) resolve()
    await opening
    expect(peer.sent).toStrictEqual([{ t: 'twd', v: 1, d: { a: 1 } }])
    stale = []
    const again = twins.opened(peer)
    await until(() => stale.length === 1, 'the read to begin')
    for (const resolve of stale.splice(0)) resolve()
    await again
    expect(peer.sent).toHaveLength(1)
    expect(await twins.changeDesired('d1', { a: 1 }, undefined, 'ops')).toMatchObject({ kind: 'unchanged' })
    expect(await twins.changeDesired('d1', { b: 2 }, 1, 'ops')).toMatchObject({ kind: 'changed', twin: { desiredVersion: 2 } })
    expect(peer.sent.at(-1)).toStrictEqual({ t: 'twd', v: 2, d: { a: 1, b: 2 } })
    expect(published.map((t) => t.desiredVersion)).toStrictEqual([1, 2])
    expect(sentCount).toStrictEqual({ sent: 2, held: 0 })
  })

  it('holds what a socket refuses for its drain: the answers in order, then the latest desired document', async () => {
    const twins = build()
    const peer = new TestPeer('d1')
    sessions.opened(peer)
    peer.full = true
    await twins.changeDesired('d1', { a: 1 }, undefined, 'ops')
    twins.report(peer, 'r1', { x: 1 })
    twins.refuse(peer, 'r2', 'invalid')
    await twins.changeDesired('d1', { a: 2 }, undefined, 'ops')
    twins.report(peer, 'r3', { x: 2 })
    await until(() => reports.length === 3, 'the reports')
    await settle()
    expect(peer.sent).toStrictEqual([])
    expect(sentCount).toStrictEqual({ sent: 0, held: 2 })
    peer.full = false
    twins.drained(peer)
    await until(() => peer.sent.length === 4, 'the drain')
    expect(peer.sent).toStrictEqual([
      { t: 'twa', id: 'r1', v: 1 },
      { t: 'twa', id: 'r2', e: 'invalid' },
      { t: 'twa', id: 'r3', v: 2 },
      { t: 'twd', v: 2, d: { a: 2 } },
    ])
  })

  it('closes a session (1008) that reports on and on without reading the answers', async () => {
    const twins = build()
    const peer = new TestPeer('d1')
    peer.full = true
    for (let i = 0; i < 65; i++) twins.refuse(peer, `r${i}`, 'rate')
    await until(() => peer.closes.length === 1, 'the close')
    expect(peer.closes).toStrictEqual([1008])
  })

  it('applies reports in order, answers each once stored, and refuses one that would pass 32 KiB', async () => {
    const twins = build()
    const peer = new TestPeer('d1')
    const patches: TwinDocument[] = [{ a: 1 }, { a: 1 }, { b: { c: 1 } }, { big: 'x'.repeat(33_000) }, { a: null }]
    patches.forEach((p, i) => twins.report(peer, `r${i}`, p))
    twins.refuse(peer, 'r5', 'rate')
    await until(() => peer.sent.length === 6, 'every answer')
    expect(peer.sent).toStrictEqual([
      { t: 'twa', id: 'r0', v: 1 },
      { t: 'twa', id: 'r1', v: 1 },
      { t: 'twa', id: 'r2', v: 2 },
      { t: 'twa', id: 'r3', e: 'too_large' },
      { t: 'twa', id: 'r4', v: 3 },
      { t: 'twa', id: 'r5', e: 'rate' },
    ])
    expect(reports).toStrictEqual(['rate', 'changed', 'unchanged', 'changed', 'too_large', 'changed'])
    expect(await twins.view('d1')).toMatchObject({ reported: { b: { c: 1 } }, reportedVersion: 3 })
    expect(published.map((t) => t.reportedVersion)).toStrictEqual([1, 2, 3])
  })

  it('closes the session (1011) when the store fails a report, and answers nothing', async () => {
    const failing: TwinStore = {
      get: (d) => stores.twins.get(d),
      desiredVersions: (devices) => stores.twins.desiredVersions(devices),
      remove: (d) => stores.twins.remove(d),
      update: () => Promise.reject(new Error('disk full')),
    }
    const twins = build(failing)
    const peer = new TestPeer('d1')
    twins.report(peer, 'r1', { a: 1 })
    await until(() => peer.closes.length === 1, 'the close')
    expect(peer.sent).toStrictEqual([])
    expect(peer.closes).toStrictEqual([1011])
  })

  it('deletes the twin after the changes asked for before the deletion, and writes none for a deleted device', async () => {
    const twins = build()
    const peer = new TestPeer('d1')
    const change = twins.changeDesired('d1', { a: 1 }, undefined, 'ops')
    twins.report(peer, 'r1', { a: 1 })
    await registry.remove('d1')
    const deleted = twins.deviceDeleted('d1')
    // asked after the deletion: the device is gone
    const late = twins.changeDesired('d1', { b: 1 }, undefined, 'ops')
    twins.report(peer, 'r2', { b: 1 })
    expect(await change).toMatchObject({ kind: 'changed' })
    await deleted
    expect(await late).toStrictEqual({ kind: 'not_found' })
    await settle()
    // r1 ran after the registry lost the device or before it did (then answered): never r2
    expect(peer.sent.filter((frame) => frame.t === 'twa' && frame.id === 'r2')).toStrictEqual([])
    expect(removed).toStrictEqual(['d1'])
    expect(await stores.twins.get('d1')).toBeUndefined()
  })

  it('deletes a stored twin and says so once', async () => {
    const twins = build()
    await twins.changeDesired('d1', { a: 1 }, undefined, 'ops')
    await twins.deviceDeleted('d1')
    await twins.deviceDeleted('d1')
    expect(removed).toStrictEqual(['d1'])
    expect(await stores.twins.get('d1')).toBeUndefined()
  })
})
