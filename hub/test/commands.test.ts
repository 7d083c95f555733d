// Commands (and fan-out) alone: no socket, no hub process. Time and every timer (timeouts, the TTL
// sweep) are the repository's stepping clock, devices are fake peers, and the stores are lmdb in a
// temp dir whose every call is recorded, so that a test waits for the writes themselves.
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { JsonValue } from '@fleetgate/device-sdk'
import type { CommandFrame, HubFrame } from '@fleetgate/device-sdk/wire'
import { SteppingClock } from '../../test/support/clock.js'
import { tempDir } from '../../test/support/hub.js'
import { IoLog } from '../../test/support/io.js'
import { AuditLog } from '../src/audit/index.js'
import {
  COMMANDS_DEFAULTS,
  createCommands,
  MAX_QUEUED_PER_DEVICE,
  type CommandBatches,
  type CommandRecord,
  type CommandRequest,
  type Commands,
  type CommandStatus,
  type CreateOutcome,
} from '../src/commands/index.js'
import { Registry, Sessions, type Peer } from '../src/devices/index.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type AuditStore, type HubStores } from '../src/store/index.js'

const START_MS = 1_700_000_000_000

/**
 * Params the store cannot encode: lmdb's msgpackr recurses once per level and overflows the stack
 * near 1,500. REST and MQTT refuse them before they get here (MAX_PARAMS_DEPTH); these tests drive
 * the core directly, as a store that fails a write for any reason (a full disk) would.
 */
function unstorable(levels = 5000): JsonValue {
  let value: JsonValue = 1
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

const request = (fields: Partial<CommandRequest> = {}): CommandRequest => ({
  id: undefined,
  name: 'reboot',
  params: undefined,
  timeoutMs: 10_000,
  ttlMs: 60_000,
  ...fields,
})

/** A device's live session: keeps what was written to it; refuses while `accepting` is false (back-pressure). */
class FakePeer implements Peer {
  readonly sent: HubFrame[] = []
  readonly connectedAt = START_MS
  readonly lastSeenAt = START_MS
  readonly grant = { createdAt: START_MS, revocations: 0 }
  accepting = true
  open = true

  constructor(readonly deviceId: string) {}

  isOpen(): boolean {
    return this.open
  }

  send(frame: HubFrame): boolean {
    if (!this.open || !this.accepting) return false
    this.sent.push(frame)
    return true
  }

  close(): void {
    this.open = false
  }

  /** The `cmd` frames written, in order. */
  get commands(): CommandFrame[] {
    return this.sent.flatMap((frame) => (frame.t === 'cmd' ? [frame] : []))
  }
}

const recordOf = (outcome: CreateOutcome): CommandRecord => {
  if (!('record' in outcome)) throw new Error(`expected a record, got ${outcome.kind}`)
  return outcome.record
}

describe('Commands', () => {
  let dir: { path: string; cleanup(): void }
  let stores: HubStores
  let io: IoLog
  let clock: SteppingClock
  let registry: Registry
  let sessions: Sessions
  let audit: AuditLog
  let commands: Commands
  let batches: CommandBatches
  /** Final records, in the order published. */
  let ended: CommandRecord[]
  let ignored: number
  let auditFailures: unknown[]

  /** Builds the command concern over the stores as they are (a restart builds it again). */
  const build = (): void => {
    const log = createLogger('silent')
    const stored = io.wrap(stores.audit)
    const watched: AuditStore = {
      append: (entry) => {
        const appended = stored.append(entry)
        appended.catch((err: unknown) => auditFailures.push(err))
        return appended
      },
      list: (after, limit) => stored.list(after, limit),
    }
    audit = new AuditLog(watched, clock, log)
    registry = new Registry(io.wrap(stores.registry), clock)
    sessions = new Sessions({ online: (peer) => void commands.deliverQueued(peer) })
    ;({ commands, batches } = createCommands({
      store: io.wrap(stores.commands),
      batchStore: io.wrap(stores.batches),
      registry,
      sessions,
      audit,
      log,
      clock,
      counters: { commandEnded: () => undefined, resultIgnored: () => ignored++ },
      publishResult: (record) => ended.push(record),
    }))
  }
  const create = async (device: string, fields: Partial<CommandRequest> = {}, recordRefusal = false): Promise<CreateOutcome> => {
    const outcome = await commands.create(device, request(fields), 'op', { recordRefusal })
    await io.settled()
    return outcome
  }
  const connect = (deviceId: string): FakePeer => {
    const peer = new FakePeer(deviceId)
    sessions.opened(peer)
    return peer
  }
  /** The record as the store holds it, once every write under way has settled. */
  const stored = async (device: string, id: string): Promise<CommandRecord | undefined> => {
    await io.settled()
    return stores.commands.get(device, id)
  }
  /** The audit's command outcomes, oldest first. */
  const outcomes = async (): Promise<string[]> => {
    await io.settled()
    return (await audit.list(0, 1000)).filter((entry) => entry.action === 'command.create').map((entry) => entry.outcome)
  }

  beforeEach(async () => {
    dir = tempDir('fleetgate-commands-')
    stores = openLmdbStores(dir.path)
    io = new IoLog()
    clock = new SteppingClock(START_MS)
    ended = []
    ignored = 0
    auditFailures = []
    build()
    await commands.start()
    for (const id of ['d1', 'd2', 'd3']) await registry.create({ id, keyType: 'hmac', tags: { site: id === 'd3' ? 'b' : 'a' } })
  })
  afterEach(async () => {
    commands.stop()
    await io.settled()
    await stores.close()
    dir.cleanup()
    expect(auditFailures).toEqual([])
  })

  describe('delivery', () => {
    it('writes the cmd frame to an online device and records the command sent, with the deadline the device gets', async () => {
      const peer = connect('d1')
      const record = recordOf(await create('d1', { id: 'c1', params: { c: 19 }, ttlMs: 0 }))
      expect(peer.sent).toStrictEqual([{ t: 'cmd', id: 'c1', n: 'reboot', p: { c: 19 }, exp: START_MS + 10_000 }])
      expect(record).toStrictEqual({ id: 'c1', device: 'd1', name: 'reboot', params: { c: 19 }, status: 'sent', createdAt: START_MS, sentAt: START_MS, timeoutMs: 10_000, actor: 'op' })
      expect(await stored('d1', 'c1')).toStrictEqual(record)
      expect(await outcomes()).toStrictEqual(['sent'])
    })

    it('refuses a command with ttlMs 0 for an offline device (or records it expired when nobody is there to answer)', async () => {
      expect(await create('d1', { id: 'c1', ttlMs: 0 })).toStrictEqual({ kind: 'device_offline' })
      expect(await stored('d1', 'c1')).toBeUndefined()
      const expired = recordOf(await create('d1', { id: 'c2', ttlMs: 0 }, true))
      expect(expired).toMatchObject({ status: 'expired', completedAt: START_MS, error: 'device offline' })
      expect(ended).toStrictEqual([expired])
      expect(await create('nobody', { ttlMs: 0 })).toStrictEqual({ kind: 'not_found' })
      expect(await outcomes()).toStrictEqual(['device_offline', 'expired'])
    })

    it('queues for an offline device and delivers the queue in creation order when it connects; an expired one is not delivered', async () => {
      await create('d1', { id: 'q1', ttlMs: 60_000 })
      await create('d1', { id: 'q2', ttlMs: 1_000 })
      await create('d1', { id: 'q3', ttlMs: 60_000, params: [1, 2] })
      expect((await stored('d1', 'q1'))?.status).toBe('queued')
      // q2's TTL has ended; the sweep has not run yet (the clock moved without its timers)
      clock.nowMs += 1_000
      const peer = connect('d1')
      await io.settled()
      expect(peer.sent).toStrictEqual([
        { t: 'cmd', id: 'q1', n: 'reboot', exp: START_MS + 11_000 },
        { t: 'cmd', id: 'q3', n: 'reboot', p: [1, 2], exp: START_MS + 11_000 },
      ])
      expect([(await stored('d1', 'q1'))?.status, (await stored('d1', 'q2'))?.status, (await stored('d1', 'q3'))?.status]).toStrictEqual(['sent', 'expired', 'sent'])
      expect(ended.map((record) => [record.id, record.status])).toStrictEqual([['q2', 'expired']])
    })

    it('expires a queued command by the sweep once its TTL ends, not before', async () => {
      const record = recordOf(await create('d1', { id: 'q1', ttlMs: 1_000 }))
      expect(record).toMatchObject({ status: 'queued', expiresAt: START_MS + 1_000 })
      await io.advance(clock, 999)
      expect(ended).toStrictEqual([])
      await io.advance(clock, COMMANDS_DEFAULTS.expirySweepMs)
      const expired = { ...record, status: 'expired', completedAt: START_MS + 1_000, error: 'not delivered before its TTL ended' }
      expect(ended).toStrictEqual([expired])
      expect(await stored('d1', 'q1')).toStrictEqual(expired)
      // it is not delivered later
      const peer = connect('d1')
      await io.settled()
      expect(peer.sent).toStrictEqual([])
    })

    it('queues at most 100 per device: the 101st is refused (or recorded expired), and a slot comes back when one is delivered', async () => {
      for (let i = 0; i < MAX_QUEUED_PER_DEVICE; i++) expect((await create('d1')).kind).toBe('created')
      expect(await create('d1')).toStrictEqual({ kind: 'queue_full' })
      expect(recordOf(await create('d1', {}, true))).toMatchObject({ status: 'expired', error: 'device queue full (100 commands)' })
      const peer = connect('d1')
      await io.settled()
      expect(peer.commands).toHaveLength(MAX_QUEUED_PER_DEVICE)
      peer.close()
      sessions.closed(peer, 1000)
      expect((await create('d1')).kind).toBe('created')
    })

    it('answers a repeated idempotency key with the existing record and writes nothing twice', async () => {
      const peer = connect('d1')
      const first = recordOf(await create('d1', { id: 'k1', ttlMs: 0 }))
      const again = await create('d1', { id: 'k1', ttlMs: 0, name: 'other' })
      expect(again).toStrictEqual({ kind: 'existing', record: first })
      expect(peer.commands.map((frame) => frame.id)).toStrictEqual(['k1'])
      // the same id on another device is another command
      expect((await create('d2', { id: 'k1' })).kind).toBe('created')
    })
  })

  describe('results and timeouts', () => {
    it('ends a sent command with its device\'s result, and wakes whoever waits for it', async () => {
      const peer = connect('d1')
      const ok = recordOf(await create('d1', { id: 'ok', ttlMs: 0 }))
      const bad = recordOf(await create('d1', { id: 'bad', ttlMs: 0 }))
      const plain = recordOf(await create('d1', { id: 'plain', ttlMs: 0 }))
      const waiting = commands.final(ok)
      clock.nowMs += 5
      commands.result(peer, { t: 'res', id: 'ok', ok: true, r: { applied: 19 } })
      commands.result(peer, { t: 'res', id: 'bad', ok: false, e: 'relay stuck' })
      commands.result(peer, { t: 'res', id: 'plain', ok: false })
      await io.settled()
      const done = { ...ok, status: 'succeeded', completedAt: START_MS + 5, result: { applied: 19 } }
      expect(await waiting).toStrictEqual(done)
      expect(ended).toStrictEqual([
        done,
        { ...bad, status: 'failed', completedAt: START_MS + 5, error: 'relay stuck' },
        { ...plain, status: 'failed', completedAt: START_MS + 5, error: 'failed' },
      ])
      expect(await stored('d1', 'ok')).toStrictEqual(done)
      // no timeout is left: only the TTL sweep's timer
      expect(clock.pending()).toHaveLength(1)
    })

    it('ignores and counts a result for an unknown, finished or other device\'s command', async () => {
      const peer = connect('d1')
      const other = connect('d2')
      await create('d1', { id: 'c1', ttlMs: 0 })
      commands.result(other, { t: 'res', id: 'c1', ok: true })
      commands.result(peer, { t: 'res', id: 'nope', ok: true })
      commands.result(peer, { t: 'res', id: 'c1', ok: true })
      commands.result(peer, { t: 'res', id: 'c1', ok: false })
      await io.settled()
      expect([ignored, ended.map((record) => record.status)]).toStrictEqual([3, ['succeeded']])
    })

    it('fails a command whose result cannot be kept, with the reason', async () => {
      const peer = connect('d1')
      await create('d1', { id: 'c1', ttlMs: 0 })
      commands.result(peer, { t: 'res', id: 'c1', ok: true, r: { n: Number.POSITIVE_INFINITY } })
      await io.settled()
      expect(ended.map((record) => [record.status, record.error, record.result])).toStrictEqual([['failed', 'invalid result: r: numbers must be finite', undefined]])
    })

    it('ends a sent command `timeout` once its timeoutMs passes with no result, and ignores a late one', async () => {
      const peer = connect('d1')
      const record = recordOf(await create('d1', { id: 'c1', ttlMs: 0, timeoutMs: 3_000 }))
      await io.advance(clock, 2_999)
      expect(ended).toStrictEqual([])
      await io.advance(clock, 1)
      const timedOut = { ...record, status: 'timeout', completedAt: START_MS + 3_000, error: 'no result within 3000 ms' }
      expect(ended).toStrictEqual([timedOut])
      commands.result(peer, { t: 'res', id: 'c1', ok: true })
      expect(ignored).toBe(1)
      expect(await stored('d1', 'c1')).toStrictEqual(timedOut)
    })

    it('after a restart, re-arms a sent command\'s timeout for the time it has left', async () => {
      connect('d1')
      const record = recordOf(await create('d1', { id: 'c1', ttlMs: 0, timeoutMs: 10_000 }))
      commands.stop()
      await io.settled()
      await stores.close()
      // the hub is down for 4 s
      clock.nowMs += 4_000
      stores = openLmdbStores(dir.path)
      build()
      await commands.start()
      expect(clock.pending().sort((a, b) => a - b)).toStrictEqual([COMMANDS_DEFAULTS.expirySweepMs, 6_000])
      await io.advance(clock, 5_999)
      expect(ended).toStrictEqual([])
      await io.advance(clock, 1)
      expect(ended).toStrictEqual([{ ...record, status: 'timeout', completedAt: START_MS + 10_000, error: 'no result within 10000 ms' }])
    })

    it('ends a deleted device\'s queued commands `expired`', async () => {
      await create('d1', { id: 'q1' })
      await create('d1', { id: 'q2' })
      await commands.deviceDeleted('d1')
      await io.settled()
      expect(ended.map((record) => [record.id, record.status])).toStrictEqual([
        ['q1', 'expired'],
        ['q2', 'expired'],
      ])
    })
  })

  describe('a connection that refuses frames (back-pressure)', () => {
    it('keeps a command the connection refused queued, writes it on drain, and queues later ones behind it: none overtakes another', async () => {
      const peer = connect('d1')
      peer.accepting = false
      const first = recordOf(await create('d1', { id: 'c1' }))
      expect([first.status, first.expiresAt, peer.sent]).toStrictEqual(['queued', START_MS + 60_000, []])
      clock.nowMs += 7
      commands.drained(peer)
      await io.settled()
      expect(peer.sent).toStrictEqual([])
      peer.accepting = true
      commands.drained(peer)
      await io.settled()
      expect(peer.sent).toStrictEqual([{ t: 'cmd', id: 'c1', n: 'reboot', exp: START_MS + 10_007 }])
      expect(await stored('d1', 'c1')).toStrictEqual({ ...first, status: 'sent', sentAt: START_MS + 7 })
      // c2 is refused; c3 comes once the connection would take it, but goes behind c2, and the
      // delivery its create starts writes both, in order
      peer.accepting = false
      await create('d1', { id: 'c2' })
      peer.accepting = true
      expect(recordOf(await create('d1', { id: 'c3' })).status).toBe('queued')
      expect(peer.commands.map((frame) => frame.id)).toStrictEqual(['c1', 'c2', 'c3'])
      // with nothing queued, a new command is written at once
      expect(recordOf(await create('d1', { id: 'c4' })).status).toBe('sent')
    })

    it('holds a command with ttlMs 0 for an online device whose connection refuses it, at most its timeout; `sent` once written', async () => {
      const peer = connect('d1')
      peer.accepting = false
      const outcome = await create('d1', { id: 'h1', ttlMs: 0, timeoutMs: 2_000 })
      expect(outcome).toStrictEqual({ kind: 'held', record: { id: 'h1', device: 'd1', name: 'reboot', status: 'queued', createdAt: START_MS, expiresAt: START_MS + 2_000, timeoutMs: 2_000, actor: 'op' } })
      const waiting = commands.final(recordOf(outcome))
      await io.advance(clock, 500)
      peer.accepting = true
      commands.drained(peer)
      await io.settled()
      expect(peer.sent).toStrictEqual([{ t: 'cmd', id: 'h1', n: 'reboot', exp: START_MS + 2_500 }])
      commands.result(peer, { t: 'res', id: 'h1', ok: true })
      expect(await waiting).toMatchObject({ status: 'succeeded', sentAt: START_MS + 500, completedAt: START_MS + 500 })
      expect(await outcomes()).toStrictEqual(['queued'])
    })

    it('expires a held command its device\'s connection never takes within the timeout', async () => {
      const peer = connect('d1')
      peer.accepting = false
      const held = recordOf(await create('d1', { id: 'h1', ttlMs: 0, timeoutMs: 1_000 }))
      const waiting = commands.final(held)
      await io.advance(clock, 1_000)
      expect(await waiting).toStrictEqual({ ...held, status: 'expired', completedAt: START_MS + 1_000, error: 'not delivered before its TTL ended' })
      peer.accepting = true
      commands.drained(peer)
      await io.settled()
      expect(peer.sent).toStrictEqual([])
    })
  })

  describe('fan-out', () => {
    it('creates one command per target and counts them live: written, held for a full connection, offline', async () => {
      connect('d1')
      const full = connect('d2')
      full.accepting = false
      const started = await batches.start({ ids: ['d1', 'd2', 'd3', 'nobody'], tags: undefined }, request({ ttlMs: 0 }), 'op')
      await io.settled()
      const counts: Record<CommandStatus, number> = { queued: 1, sent: 1, succeeded: 0, failed: 0, timeout: 0, expired: 1 }
      expect(await batches.status(started.batch)).toStrictEqual({ batch: started.batch, targeted: 3, ...counts })
      full.accepting = true
      commands.drained(full)
      await io.settled()
      expect(await batches.status(started.batch)).toStrictEqual({ batch: started.batch, targeted: 3, ...counts, queued: 0, sent: 2 })
    })

    it('resolves a tag target from the registry', async () => {
      const started = await batches.start({ ids: undefined, tags: [['site', 'a']] }, request(), 'op')
      await io.settled()
      expect(started.targeted).toBe(2)
      expect((await batches.status(started.batch))?.queued).toBe(2)
    })
  })

  describe('a create the store refuses changes nothing (issue 10, defect 5)', () => {
    it('leaves the queue count as it was: 100 commands still queue after failed writes, the 101st is refused', async () => {
      for (let i = 0; i < 5; i++) {
        await expect(commands.create('d1', request({ params: unstorable() }), 'op', { recordRefusal: false })).rejects.toThrow()
      }
      for (let i = 0; i < MAX_QUEUED_PER_DEVICE; i++) {
        const outcome = await commands.create('d1', request({ params: { i } }), 'op', { recordRefusal: false })
        expect(outcome.kind, `command ${i}`).toBe('created')
      }
      expect((await create('d1')).kind).toBe('queue_full')
      expect(await commands.list('d1', 'queued', 1000)).toHaveLength(MAX_QUEUED_PER_DEVICE)
      const failed = (await outcomes()).filter((outcome) => outcome !== 'queued')
      expect(failed).toHaveLength(6)
      expect(failed.slice(0, 5).every((outcome) => outcome.startsWith('failed: the store refused the write'))).toBe(true)
      expect(failed[5]).toBe('queue_full')
    })

    it('keeps no record and no idempotency key of a failed create', async () => {
      await expect(commands.create('d1', request({ id: 'k1', params: unstorable() }), 'op', { recordRefusal: false })).rejects.toThrow()
      expect(await commands.get('d1', 'k1')).toBeUndefined()
      const retried = await create('d1', { id: 'k1', params: { ok: true } })
      expect(retried.kind).toBe('created')
      expect(await commands.get('d1', 'k1')).toMatchObject({ status: 'queued', params: { ok: true } })
    })

    it('counts nothing in a fan-out for a command that was not stored', async () => {
      const started = await batches.start({ ids: ['d1', 'd2'], tags: undefined }, request({ params: unstorable() }), 'op')
      expect(started.targeted).toBe(2)
      await io.settled()
      expect(await outcomes()).toHaveLength(2)
      const counts: Record<CommandStatus, number> = { queued: 0, sent: 0, succeeded: 0, failed: 0, timeout: 0, expired: 0 }
      expect(await batches.status(started.batch)).toStrictEqual({ batch: started.batch, targeted: 2, ...counts })
    })

    it('forgets a sent command whose write failed: its timeout never fires and its result is ignored', async () => {
      const peer = connect('d1')
      // A key over lmdb's 1,978 bytes: the device frame encodes, the store refuses the record.
      const id = 'k'.repeat(3000)
      await expect(commands.create('d1', request({ id, ttlMs: 0, timeoutMs: 50 }), 'op', { recordRefusal: false })).rejects.toThrow()
      expect(peer.commands.map((frame) => frame.id)).toStrictEqual([id])
      commands.result(peer, { t: 'res', id, ok: true })
      expect(ignored).toBe(1)
      expect(clock.pending()).toStrictEqual([COMMANDS_DEFAULTS.expirySweepMs])
      await io.advance(clock, 100)
      expect([ended, await commands.get('d1', id)]).toStrictEqual([[], undefined])
      expect(await outcomes()).toStrictEqual([expect.stringMatching(/^failed: the store refused the write \(.+\)$/)])
    })
  })
})
