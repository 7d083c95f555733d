import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTestHub, type TestHub } from './support/hub.js'
import { hubMetric } from './support/hostile.js'
import { eventually } from './support/telemetry.js'
import { OpenDevices, type RawDevice } from './support/ws.js'

/** Params of about 60 KB: a few dozen commands fill the kernel's buffers and then the hub's. */
const BIG = { blob: 'x'.repeat(60_000) }

describe('a device that stops reading its connection (issue 11, item 8)', () => {
  let hub: TestHub
  const devices = new OpenDevices()

  beforeAll(async () => {
    hub = await startTestHub()
  })
  afterEach(() => devices.closeAll())
  afterAll(async () => {
    await hub?.stop()
  })

  /**
   * Sends commands with a TTL to a device that does not read until the hub's buffer for its
   * socket is past its bound: the hub then holds the command it cannot write (202 `queued`).
   * Returns the ids in creation order, the held one last.
   */
  const fill = async (device: string): Promise<string[]> => {
    const ids: string[] = []
    for (;;) {
      if (ids.length === 300) throw new Error('300 commands of 60 KB did not fill the connection')
      const { status, body } = await hub.api('POST', `/api/v1/devices/${device}/commands`, { name: 'fill', params: BIG, ttlMs: 60_000, wait: false })
      expect(status).toBe(202)
      ids.push(body.id)
      if (body.status === 'queued') return ids
      expect(body.status).toBe('sent')
    }
  }

  /**
   * Reads until every id in `ids` came as a `cmd` and, with `ackS`, an ack covers it; answers the
   * commands named in `answer`.
   */
  const readAll = async (ws: RawDevice, ids: readonly string[], ackS: number | undefined, answer: ReadonlySet<string>): Promise<{ cmds: string[]; acks: number[] }> => {
    const cmds: string[] = []
    const acks: number[] = []
    while (cmds.length < ids.length || (ackS !== undefined && !acks.some((s) => s >= ackS))) {
      const frame = await ws.next(10_000)
      if (frame.t === 'cmd') {
        cmds.push(frame.id)
        if (answer.has(frame.id)) ws.send({ t: 'res', id: frame.id, ok: true, r: { done: frame.id } })
      } else if (frame.t === 'ack') acks.push(frame.s)
      else throw new Error(`unexpected frame ${JSON.stringify(frame)}`)
    }
    return { cmds, acks }
  }

  it('writes on drain, in creation order, the commands it could not write; the ack made meanwhile reaches the device too', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('slow-1'))
    ws.pauseReading()
    const ids = await fill('slow-1')
    // Later commands queue behind the held one: none overtakes another.
    for (let i = 0; i < 2; i++) {
      const { status, body } = await hub.api('POST', '/api/v1/devices/slow-1/commands', { name: 'after', params: { i }, ttlMs: 60_000, wait: false })
      expect([status, body.status]).toEqual([202, 'queued'])
      ids.push(body.id)
    }
    // Its ack is made while the connection is full (whether uWS takes it depends on what the kernel
    // has absorbed meanwhile; hub/test/ingest.test.ts drives a refused ack exactly). No later frame
    // comes to carry a later ack.
    ws.send({ t: 'tm', s: 1, ts: Date.now(), m: { v: 1 } })
    await eventually(() => hubMetric(hub.base, 'fleetgate_acks_total'), (acks) => acks === 1)
    ws.resumeReading()
    const { cmds, acks } = await readAll(ws, ids, 1, new Set())
    expect(cmds).toEqual(ids)
    expect(acks).toEqual([1])
    const listed = (await hub.api('GET', '/api/v1/devices/slow-1/commands?limit=1000')).body.items as Array<{ id: string; status: string; sentAt?: string }>
    expect(listed.map((record) => [record.id, record.status])).toEqual([...ids].reverse().map((id) => [id, 'sent']))
  })

  it('holds a command with ttlMs 0 for an online device whose connection is full, and answers it once the device does', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('slow-2'))
    ws.pauseReading()
    const ids = await fill('slow-2')
    // Not 409 device_offline: the device is online. It waits for the connection, `queued` until written.
    const held = await hub.api('POST', '/api/v1/devices/slow-2/commands', { id: 'now-1', name: 'now', timeoutMs: 30_000, wait: false })
    expect([held.status, held.body.status]).toEqual([202, 'queued'])
    expect(Date.parse(held.body.expiresAt) - Date.parse(held.body.createdAt)).toBe(30_000)
    // With wait: true the call waits for the result, as it does for a command written at once. The
    // kernel may absorb more of the paused socket meanwhile, so the hub may write it on a drain before
    // the device reads: `queued` or `sent`, it is stored before the device resumes.
    const answer = hub.api('POST', '/api/v1/devices/slow-2/commands', { id: 'now-2', name: 'now', timeoutMs: 30_000 })
    await eventually(
      async () => (await hub.api('GET', '/api/v1/devices/slow-2/commands/now-2')).body?.status,
      (status) => status === 'queued' || status === 'sent',
    )
    ws.resumeReading()
    const { cmds } = await readAll(ws, [...ids, 'now-1', 'now-2'], undefined, new Set(['now-2']))
    expect(cmds).toEqual([...ids, 'now-1', 'now-2'])
    const { status, body } = await answer
    expect([status, body.status, body.result]).toEqual([200, 'succeeded', { done: 'now-2' }])
    expect((await hub.api('GET', '/api/v1/devices/slow-2/commands/now-1')).body.status).toBe('sent')
  })
})
