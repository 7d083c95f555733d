import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { realClock, type JsonValue } from '@fleetgate/device-sdk'
import type { HubFrame } from '@fleetgate/device-sdk/wire'
import { tempDir } from '../../test/support/hub.js'
import { eventually } from '../../test/support/telemetry.js'
import { AuditLog } from '../src/audit/index.js'
import { createCommands, MAX_QUEUED_PER_DEVICE, type CommandBatches, type CommandRequest, type Commands, type CommandStatus } from '../src/commands/index.js'
import { Registry, Sessions, type Peer } from '../src/devices/index.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type AuditStore, type HubStores } from '../src/store/index.js'

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

/** A live session that accepts every frame and keeps it. */
function liveSession(deviceId: string, sent: HubFrame[]): Peer {
  return {
    deviceId,
    connectedAt: Date.now(),
    lastSeenAt: Date.now(),
    isOpen: () => true,
    send(frame) {
      sent.push(frame)
      return true
    },
    close: () => undefined,
  }
}

describe('Commands: a create the store refuses changes nothing (issue 10, defect 5)', () => {
  let dir: { path: string; cleanup(): void }
  let store: HubStores
  let registry: Registry
  let sessions: Sessions
  let audit: AuditLog
  let commands: Commands
  let batches: CommandBatches
  const ignored: string[] = []
  const auditFailures: unknown[] = []
  /** The audit's appends, which nobody awaits. */
  let appends: Array<Promise<unknown>> = []

  beforeEach(async () => {
    dir = tempDir()
    store = openLmdbStores(dir.path)
    registry = new Registry(store.registry, realClock)
    sessions = new Sessions()
    const stored = store.audit
    const watched: AuditStore = {
      append(entry) {
        const appended = stored.append(entry)
        appends.push(appended.catch((err: unknown) => auditFailures.push(err)))
        return appended
      },
      list: (after, limit) => stored.list(after, limit),
    }
    const log = createLogger('silent')
    audit = new AuditLog(watched, realClock, log)
    ;({ commands, batches } = createCommands({
      store: store.commands,
      batchStore: store.batches,
      registry,
      sessions,
      audit,
      log,
      clock: realClock,
      counters: { commandEnded: () => undefined, resultIgnored: () => ignored.push('ignored') },
      publishResult: () => undefined,
    }))
    await commands.start()
    await registry.create({ id: 'd1', keyType: 'hmac', tags: {} })
  })
  afterEach(async () => {
    commands.stop()
    await store.close()
    dir.cleanup()
    expect(auditFailures).toEqual([])
    ignored.length = 0
    appends = []
  })

  /** The audit's command outcomes, once its appends (which nobody awaits) are committed. */
  const outcomes = async (): Promise<string[]> => {
    await Promise.all(appends)
    return (await audit.list(0, 1000)).filter((entry) => entry.action === 'command.create').map((entry) => entry.outcome)
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
    expect(await commands.list('d1', 'queued', 1000)).toHaveLength(MAX_QUEUED_PER_DEVICE)
    const failed = (await outcomes()).filter((outcome) => outcome !== 'queued')
    expect(failed).toHaveLength(6)
    expect(failed.slice(0, 5).every((outcome) => outcome.startsWith('failed: the store refused the write'))).toBe(true)
    expect(failed[5]).toBe('queue_full')
  })

  it('keeps no record and no idempotency key of a failed create', async () => {
    await expect(commands.create('d1', request({ id: 'k1', params: unstorable() }), 'op', { recordRefusal: false })).rejects.toThrow()
    expect(await commands.get('d1', 'k1')).toBeUndefined()
    const retried = await commands.create('d1', request({ id: 'k1', params: { ok: true } }), 'op', { recordRefusal: false })
    expect(retried.kind).toBe('created')
    expect(await commands.get('d1', 'k1')).toMatchObject({ status: 'queued', params: { ok: true } })
  })

  it('counts nothing in a fan-out for a command that was not stored', async () => {
    await registry.create({ id: 'd2', keyType: 'hmac', tags: {} })
    const started = await batches.start({ ids: ['d1', 'd2'], tags: undefined }, request({ params: unstorable() }), 'op')
    expect(started.targeted).toBe(2)
    await eventually(async () => (await outcomes()).length, (count) => count === 2)
    const counts: Record<CommandStatus, number> = { queued: 0, sent: 0, succeeded: 0, failed: 0, timeout: 0, expired: 0 }
    expect(await batches.status(started.batch)).toEqual({ batch: started.batch, targeted: 2, ...counts })
  })

  it('forgets a sent command whose write failed: its timeout never fires and its result is ignored', async () => {
    const frames: HubFrame[] = []
    sessions.opened(liveSession('d1', frames))
    // A key over lmdb's 1,978 bytes: the device frame encodes, the store refuses the record.
    const id = 'k'.repeat(3000)
    await expect(commands.create('d1', request({ id, ttlMs: 0, timeoutMs: 50 }), 'op', { recordRefusal: false })).rejects.toThrow()
    expect(frames.map((frame) => frame.t)).toEqual(['cmd'])
    commands.result(sessions.get('d1') as Peer, { t: 'res', id, ok: true })
    expect(ignored).toEqual(['ignored'])
    await new Promise((resolve) => setTimeout(resolve, 120))
    expect(await commands.get('d1', id)).toBeUndefined()
    expect(await outcomes()).toEqual([expect.stringMatching(/^failed: the store refused the write \(.+\)$/)])
  })
})
