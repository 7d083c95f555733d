import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { CommandFrame } from '@fleetgate/device-sdk'
import { ADMIN_TOKEN, startTestHub, tempDir, type TestHub, writeTokensFile } from './support/hub.js'
import { connectMqtt } from './support/mqtt-client.js'
import { eventually } from './support/telemetry.js'
import { OpenDevices, type Credentials, type RawDevice } from './support/ws.js'

const READER = 'reader-token-for-commands-0001'
const OPERATOR = 'operator-token-for-commands-01'

describe('commands (docs/rest.md, docs/mqtt.md)', () => {
  let hub: TestHub
  const tokens = tempDir()

  const devices = new OpenDevices()
  const provision = (id: string, tags: Record<string, string> = {}): Promise<Credentials> => hub.provision(id, { tags })
  const connect = (device: Credentials): Promise<RawDevice> => devices.connect(hub.wsUrl, device)

  const nextCommand = async (ws: RawDevice): Promise<CommandFrame> => {
    const frame = await ws.next()
    if (frame.t !== 'cmd') throw new Error(`expected a cmd frame, got ${JSON.stringify(frame)}`)
    return frame
  }

  beforeAll(async () => {
    const tokensFile = writeTokensFile(tokens.path, {
      viewer: { scope: 'reader', token: READER },
      oncall: { scope: 'operator', token: OPERATOR },
    })
    hub = await startTestHub({ FLEETGATE_TOKENS_FILE: tokensFile, FLEETGATE_MQTT_PORT: '0' })
  })
  afterEach(() => devices.closeAll())
  afterAll(async () => {
    await hub?.stop()
    tokens.cleanup()
  })

  it('runs a round trip: the device gets cmd, its result comes back in the 200 answer', async () => {
    const ws = await connect(await provision('rt-1'))
    const answer = hub.api('POST', '/api/v1/devices/rt-1/commands', { name: 'set_setpoint', params: { c: 21.5 } }, OPERATOR)
    const cmd = await nextCommand(ws)
    expect(cmd).toMatchObject({ t: 'cmd', n: 'set_setpoint', p: { c: 21.5 } })
    expect(cmd.exp).toBeGreaterThan(Date.now() + 9000)
    ws.send({ t: 'res', id: cmd.id, ok: true, r: { applied: 21.5 } })
    const { status, body } = await answer
    expect(status).toBe(200)
    expect(body).toMatchObject({ id: cmd.id, device: 'rt-1', name: 'set_setpoint', params: { c: 21.5 }, status: 'succeeded', result: { applied: 21.5 } })
    for (const at of ['createdAt', 'sentAt', 'completedAt']) expect(new Date(body[at]).toISOString()).toBe(body[at])
    expect((await hub.api('GET', `/api/v1/devices/rt-1/commands/${cmd.id}`, undefined, READER)).body).toEqual(body)
  })

  it('reports a device failure as failed with its error', async () => {
    const ws = await connect(await provision('rt-fail'))
    const answer = hub.api('POST', '/api/v1/devices/rt-fail/commands', { name: 'reboot' })
    const cmd = await nextCommand(ws)
    ws.send({ t: 'res', id: cmd.id, ok: false, e: 'relay stuck' })
    const { status, body } = await answer
    expect(status).toBe(200)
    expect(body).toMatchObject({ status: 'failed', error: 'relay stuck' })
    expect(body.result).toBeUndefined()
  })

  it('answers 504 with status timeout once timeoutMs passes, and ignores a late result', async () => {
    const ws = await connect(await provision('rt-slow'))
    const started = Date.now()
    const answer = hub.api('POST', '/api/v1/devices/rt-slow/commands', { name: 'ping', timeoutMs: 300 })
    const cmd = await nextCommand(ws)
    const { status, body } = await answer
    const elapsed = Date.now() - started
    expect(status).toBe(504)
    expect(body).toMatchObject({ id: cmd.id, status: 'timeout', error: 'no result within 300 ms' })
    expect(elapsed).toBeGreaterThanOrEqual(300)
    expect(elapsed).toBeLessThan(800)
    ws.send({ t: 'res', id: cmd.id, ok: true })
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect((await hub.api('GET', `/api/v1/devices/rt-slow/commands/${cmd.id}`)).body.status).toBe('timeout')
    const metrics = await (await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()
    expect(metrics).toMatch(/^fleetgate_command_results_ignored_total 1$/m)
  })

  it('answers 202 sent without wait, and is idempotent on a given id', async () => {
    const ws = await connect(await provision('rt-nowait'))
    const first = await hub.api('POST', '/api/v1/devices/rt-nowait/commands', { name: 'get_config', wait: false, id: 'once-1' })
    expect(first.status).toBe(202)
    expect(first.body).toMatchObject({ id: 'once-1', status: 'sent' })
    const again = await hub.api('POST', '/api/v1/devices/rt-nowait/commands', { name: 'get_config', wait: false, id: 'once-1' })
    expect(again.status).toBe(200)
    expect(again.body).toEqual(first.body)
    const cmd = await nextCommand(ws)
    expect(cmd.id).toBe('once-1')
    ws.send({ t: 'res', id: 'once-1', ok: true, r: 'cfg' })
    const done = await eventually(() => hub.api('GET', '/api/v1/devices/rt-nowait/commands/once-1'), (r) => r.body.status === 'succeeded')
    expect(done.body.result).toBe('cfg')
    // Only one cmd frame went out for the two calls.
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(ws.frames).toEqual([])
  })

  it('refuses bad requests with their exact status', async () => {
    await provision('rt-offline')
    const cases: Array<[string, string, unknown, string, number, string]> = [
      ['unknown device', '/api/v1/devices/nobody/commands', { name: 'x' }, OPERATOR, 404, 'not_found'],
      ['offline, ttl 0', '/api/v1/devices/rt-offline/commands', { name: 'x' }, OPERATOR, 409, 'device_offline'],
      ['bad name', '/api/v1/devices/rt-offline/commands', { name: 'no spaces' }, OPERATOR, 400, 'invalid'],
      ['params over 64 KiB', '/api/v1/devices/rt-offline/commands', { name: 'x', params: 'x'.repeat(65 * 1024) }, OPERATOR, 400, 'invalid'],
      ['bad timeout', '/api/v1/devices/rt-offline/commands', { name: 'x', timeoutMs: 0 }, OPERATOR, 400, 'invalid'],
      ['bad id', '/api/v1/devices/rt-offline/commands', { name: 'x', id: 'a/b' }, OPERATOR, 400, 'invalid'],
      ['a reader', '/api/v1/devices/rt-offline/commands', { name: 'x' }, READER, 403, 'forbidden'],
    ]
    for (const [what, path, body, token, status, error] of cases) {
      const answer = await hub.api('POST', path, body, token)
      expect(answer.status, what).toBe(status)
      expect(answer.body.error, what).toBe(error)
    }
    for (let i = 0; i < 100; i++) {
      expect((await hub.api('POST', '/api/v1/devices/rt-offline/commands', { name: 'n', ttlMs: 60_000 })).status).toBe(202)
    }
    const full = await hub.api('POST', '/api/v1/devices/rt-offline/commands', { name: 'n', ttlMs: 60_000 })
    expect(full.status).toBe(429)
    expect(full.body.error).toBe('queue_full')
  })

  it('delivers queued commands in creation order right after hello', async () => {
    const device = await provision('queued-1')
    const ids: string[] = []
    for (const name of ['first', 'second', 'third']) {
      const queued = await hub.api('POST', '/api/v1/devices/queued-1/commands', { name, ttlMs: 60_000 })
      expect(queued.status).toBe(202)
      expect(queued.body).toMatchObject({ name, status: 'queued' })
      expect(Date.parse(queued.body.expiresAt) - Date.parse(queued.body.createdAt)).toBe(60_000)
      ids.push(queued.body.id)
    }
    const ws = await connect(device)
    const delivered = [await nextCommand(ws), await nextCommand(ws), await nextCommand(ws)]
    expect(delivered.map((c) => c.n)).toEqual(['first', 'second', 'third'])
    expect(delivered.map((c) => c.id)).toEqual(ids)
    for (const cmd of delivered) ws.send({ t: 'res', id: cmd.id, ok: true })
    const list = await eventually(
      () => hub.api('GET', '/api/v1/devices/queued-1/commands', undefined, READER),
      (r) => r.body.items.every((c: { status: string }) => c.status === 'succeeded'),
    )
    expect(list.body.items.map((c: { name: string }) => c.name)).toEqual(['third', 'second', 'first'])
    expect((await hub.api('GET', '/api/v1/devices/queued-1/commands?status=queued')).body.items).toEqual([])
  })

  it('expires a queued command when its TTL passes and never delivers it', async () => {
    const device = await provision('queued-expire')
    const queued = await hub.api('POST', '/api/v1/devices/queued-expire/commands', { name: 'late', ttlMs: 200 })
    const record = await eventually(
      () => hub.api('GET', `/api/v1/devices/queued-expire/commands/${queued.body.id}`),
      (r) => r.body.status === 'expired',
    )
    expect(record.body).toMatchObject({ status: 'expired', error: 'not delivered before its TTL ended' })
    const ws = await connect(device)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(ws.frames).toEqual([])
  })

  it('expires the queue of a deleted device', async () => {
    await provision('doomed')
    const queued = await hub.api('POST', '/api/v1/devices/doomed/commands', { name: 'x', ttlMs: 60_000 })
    expect((await hub.api('DELETE', '/api/v1/devices/doomed')).status).toBe(204)
    expect((await hub.api('GET', `/api/v1/devices/doomed/commands/${queued.body.id}`)).body.status).toBe('expired')
  })

  it('fans out by tag to connected devices and counts the batch live', async () => {
    const devices = await Promise.all(Array.from({ length: 20 }, (_, i) => provision(`fan-${i}`, { fleet: 'blue' })))
    await provision('fan-offline', { fleet: 'blue' })
    const sockets = await Promise.all(devices.map(connect))
    for (const ws of sockets) {
      void nextCommand(ws).then((cmd) => ws.send({ t: 'res', id: cmd.id, ok: true }))
    }
    const started = await hub.api('POST', '/api/v1/commands', { target: { tags: { fleet: 'blue' } }, name: 'ping' }, OPERATOR)
    expect(started.status).toBe(202)
    expect(started.body.targeted).toBe(21)
    const counts = await eventually(() => hub.api('GET', `/api/v1/commands/${started.body.batch}`, undefined, READER), (r) => r.body.succeeded === 20)
    expect(counts.body).toEqual({ batch: started.body.batch, targeted: 21, queued: 0, sent: 0, succeeded: 20, failed: 0, timeout: 0, expired: 1 })
    expect((await hub.api('POST', '/api/v1/commands', { target: {}, name: 'ping' })).status).toBe(400)
    expect((await hub.api('GET', '/api/v1/commands/nope')).status).toBe(404)
  })

  it('takes commands over MQTT from operators only and publishes the final record', async () => {
    const ws = await connect(await provision('mqtt-dev'))
    const operator = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'x', password: OPERATOR })
    await operator.subscribe('fleetgate/devices/mqtt-dev/commands/+', { qos: 1 })
    await operator.client.publishAsync('fleetgate/devices/mqtt-dev/commands', JSON.stringify({ id: 'm-1', name: 'ping', params: [1] }), { qos: 1 })
    const cmd = await nextCommand(ws)
    expect(cmd).toMatchObject({ id: 'm-1', n: 'ping', p: [1] })
    ws.send({ t: 'res', id: 'm-1', ok: true, r: 'pong' })
    const results = await eventually(() => operator.on('fleetgate/devices/mqtt-dev/commands/m-1'), (m) => m.length === 1)
    expect(JSON.parse(results[0]?.payload.toString() ?? '')).toMatchObject({ id: 'm-1', device: 'mqtt-dev', status: 'succeeded', result: 'pong' })
    await operator.stop()

    const reader = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'x', password: READER })
    reader.client.publish('fleetgate/devices/mqtt-dev/commands', JSON.stringify({ name: 'ping' }), { qos: 0 })
    await reader.closed
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(ws.frames).toEqual([])
  })

  it('keeps an audit log of commands and device changes, oldest first, for admins', async () => {
    const log = await hub.api('GET', '/api/v1/audit?limit=1000')
    expect(log.status).toBe(200)
    const entries = log.body.items as Array<{ seq: number; actor: string; action: string; target: string; outcome: string; at: string }>
    expect(entries.map((e) => e.seq)).toEqual([...entries.map((e) => e.seq)].sort((a, b) => a - b))
    expect(entries).toContainEqual(expect.objectContaining({ actor: 'admin', action: 'device.create', target: 'rt-1', outcome: 'ok' }))
    expect(entries).toContainEqual(expect.objectContaining({ actor: 'oncall', action: 'command.create', outcome: 'sent' }))
    expect(entries).toContainEqual(expect.objectContaining({ actor: 'oncall', action: 'command.create', target: expect.stringMatching(/^rt-offline\//), outcome: 'device_offline' }))
    expect(entries).toContainEqual(expect.objectContaining({ actor: 'admin', action: 'device.delete', target: 'doomed', outcome: 'ok' }))
    const page = await hub.api('GET', `/api/v1/audit?after=${entries[1]?.seq}&limit=2`)
    expect(page.body.items.map((e: { seq: number }) => e.seq)).toEqual([entries[2]?.seq, entries[3]?.seq])
    expect((await hub.api('GET', '/api/v1/audit', undefined, OPERATOR)).status).toBe(403)
  })
})
