import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { HubFrame, JsonValue } from '@fleetgate/device-sdk'
import type { WebSocket } from 'uWebSockets.js'
import { tempDir } from '../../test/support/hub.js'
import { eventually } from '../../test/support/telemetry.js'
import { AuditLog } from '../src/audit.js'
import { CommandBatches } from '../src/command-batches.js'
import type { CommandRequest, CommandStatus } from '../src/command-record.js'
import { CommandStore } from '../src/command-store.js'
import { Commands, MAX_QUEUED_PER_DEVICE } from '../src/commands.js'
import { createLogger } from '../src/logger.js'
import { RateLimit } from '../src/rate-limit.js'
import { Registry } from '../src/registry.js'
import { DeviceSession, Sessions, type SocketData } from '../src/sessions.js'
import { openStore, type Store } from '../src/store.js'

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

/** A live session on a stand-in socket that accepts every frame and keeps it. */
function liveSession(deviceId: string, sent: HubFrame[]): DeviceSession {
  const session = new DeviceSession(deviceId, Date.now(), { lastSeq: -1, inflight: 0, telemetry: new RateLimit(1, 0), results: new RateLimit(1, 0) })
  const socket = { cork: (write: () => void) => write(), send: () => 1 }
  session.socket = socket as unknown as WebSocket<SocketData>
  const send = session.send.bind(session)
  session.send = (frame) => {
    sent.push(frame)
    return send(frame)
  }
  return session
}

describe('Commands: a create the store refuses changes nothing (issue 10, defect 5)', () => {
  let dir: { path: string; cleanup(): void }
  let store: Store
  let registry: Registry
  let sessions: Sessions
  let audit: AuditLog
  let commands: Commands
  let batches: CommandBatches
  const ignored: string[] = []
  const auditFailures: unknown[] = []

  beforeEach(async () => {
    dir = tempDir()
    store = openStore(dir.path)
    registry = new Registry(store)
    sessions = new Sessions()
    audit = new AuditLog(store, Date.now, (err) => auditFailures.push(err))
    const log = createLogger('silent')
    commands = new Commands({
      store: new CommandStore(store),
      registry,
      sessions,
      audit,
      log,
      counters: { commandEnded: () => undefined, resultIgnored: () => ignored.push('ignored') },
      publishResult: () => undefined,
      changed: (before, after) => batches.changed(before, after),
    })
    batches = new CommandBatches({ commands, commandStore: new CommandStore(store), registry, store, log })
    commands.start()
    await registry.create({ id: 'd1', keyType: 'hmac', tags: {} })
  })
  afterEach(async () => {
    commands.stop()
    await store.close()
    dir.cleanup()
    expect(auditFailures).toEqual([])
    ignored.length = 0
  })

  /** The audit's command outcomes, once its appends (which nobody awaits) are committed. */
  const outcomes = async (): Promise<string[]> => {
    await store.root.committed
    return audit.list(0, 1000).filter((entry) => entry.action === 'command.create').map((entry) => entry.outcome)
  }

  it('leaves the queue count as it was: 100 commands still queue after failed writes, the 101st is refused', async () => {
    for (let i = 0; i < 5; i++) {
      await expect(commands.create('d1', request({ params: unstorable() }), 'op', { recordRefusal: false })).rejects.toThrow()
    }
    for (let i = 0; i < MAX_QUEUED_PER_DEVICE; i++) {
      const outcome = await commands.create('d1', request({ params: { i } }), 'op', { recordRefusal: false })
      expect(outcome.kind, `command ${i}`).toBe('created')
    }
    expect((await commands.create('d1', request(), 'op', { recordRefusal: false })).kind).toBe('queue_full')
    expect(commands.list('d1', 'queued', 1000)).toHaveLength(MAX_QUEUED_PER_DEVICE)
    const failed = (await outcomes()).filter((outcome) => outcome !== 'queued')
    expect(failed).toHaveLength(6)
    expect(failed.slice(0, 5).every((outcome) => outcome.startsWith('failed: the store refused the write'))).toBe(true)
    expect(failed[5]).toBe('queue_full')
  })

  it('keeps no record and no idempotency key of a failed create', async () => {
    await expect(commands.create('d1', request({ id: 'k1', params: unstorable() }), 'op', { recordRefusal: false })).rejects.toThrow()
    expect(commands.get('d1', 'k1')).toBeUndefined()
    const retried = await commands.create('d1', request({ id: 'k1', params: { ok: true } }), 'op', { recordRefusal: false })
    expect(retried.kind).toBe('created')
    expect(commands.get('d1', 'k1')).toMatchObject({ status: 'queued', params: { ok: true } })
  })

  it('counts nothing in a fan-out for a command that was not stored', async () => {
    await registry.create({ id: 'd2', keyType: 'hmac', tags: {} })
    const started = await batches.start({ ids: ['d1', 'd2'], tags: undefined }, request({ params: unstorable() }), 'op')
    expect(started.targeted).toBe(2)
    await eventually(async () => (await outcomes()).length, (count) => count === 2)
    const counts: Record<CommandStatus, number> = { queued: 0, sent: 0, succeeded: 0, failed: 0, timeout: 0, expired: 0 }
    expect(batches.status(started.batch)).toEqual({ batch: started.batch, targeted: 2, ...counts })
  })

  it('forgets a sent command whose write failed: its timeout never fires and its result is ignored', async () => {
    const frames: HubFrame[] = []
    sessions.opened(liveSession('d1', frames))
    // A key over lmdb's 1,978 bytes: the device frame encodes, the store refuses the record.
    const id = 'k'.repeat(3000)
    await expect(commands.create('d1', request({ id, ttlMs: 0, timeoutMs: 50 }), 'op', { recordRefusal: false })).rejects.toThrow()
    expect(frames.map((frame) => frame.t)).toEqual(['cmd'])
    commands.result(sessions.get('d1') as DeviceSession, { t: 'res', id, ok: true })
    expect(ignored).toEqual(['ignored'])
    await new Promise((resolve) => setTimeout(resolve, 120))
    expect(commands.get('d1', id)).toBeUndefined()
    expect(await outcomes()).toEqual([expect.stringMatching(/^failed: the store refused the write \(.+\)$/)])
  })
})
