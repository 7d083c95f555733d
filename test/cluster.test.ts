import { CloseCode } from '@fleetgate/device-sdk/wire'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { clusterEnv, startClusterServices, startNodes, type ClusterServices } from './support/cluster.js'
import { ADMIN_TOKEN, startTestHub, type TestHub } from './support/hub.js'
import { connectMqtt } from './support/mqtt-client.js'
import { EventStreamClient } from './support/sse.js'
import { eventually } from './support/telemetry.js'
import { connectDevice, OpenDevices, type Credentials, type RawDevice } from './support/ws.js'

/**
 * docs/cluster.md with three nodes in this process on one PostgreSQL and one Mosquitto (password file
 * and ACL): whichever node a device or an operator reaches, they act as one hub.
 */
describe('a cluster of three nodes', () => {
  let services: ClusterServices
  let nodes: TestHub[]
  let database: string
  const devices = new OpenDevices()
  let counter = 0

  beforeAll(async () => {
    services = await startClusterServices()
    database = await services.pg.createDatabase()
    nodes = await startNodes(services, database, ['n1', 'n2', 'n3'])
  }, 60_000)
  afterEach(() => devices.closeAll())
  afterAll(async () => {
    for (const node of nodes ?? []) await node.stop()
    await services?.stop()
  })

  const node = (i: number): TestHub => {
    const found = nodes[i]
    if (found === undefined) throw new Error(`no node ${i}`)
    return found
  }
  /** A new device, created on node `on`, with a name of its own for each test. */
  const provision = async (on = 0, tags: Record<string, string> = {}): Promise<Credentials> => node(on).provision(`dev-${++counter}`, { tags })
  /** Resolves once every node's cache has the device (within a second of its creation). */
  const known = async (device: Credentials): Promise<void> => {
    for (const i of [0, 1, 2]) await eventually(() => node(i).api('GET', `/api/v1/devices/${device.deviceId}`), (reply) => reply.status === 200, 1000)
  }
  /** Connects to node `on` once every node knows the device. */
  const connect = async (on: number, device: Credentials): Promise<RawDevice> => {
    await known(device)
    return devices.connect(node(on).wsUrl, device)
  }
  /** Waits until `node(on)` reads the device online on `expected` (a node id, or null: offline). */
  const placed = async (on: number, device: Credentials, expected: string | null, withinMs = 1000): Promise<Record<string, unknown>> =>
    (await eventually(() => node(on).api('GET', `/api/v1/devices/${device.deviceId}`), (reply) => reply.body?.node === expected, withinMs)).body
  /** Waits for a `cmd` frame and answers it `ok` with `result`. */
  const answer = async (ws: RawDevice, result: unknown): Promise<string> => {
    const frame = await ws.next()
    if (frame.t !== 'cmd') throw new Error(`expected a command, got ${JSON.stringify(frame)}`)
    ws.send({ t: 'res', id: frame.id, ok: true, r: result as never })
    return frame.id
  }

  it('shares the registry: a device created on one node connects through another and reads online, with its node, on the third', async () => {
    const device = await provision(0, { site: 'west' })
    await connect(1, device)
    const seen = await placed(2, device, 'n2')
    expect(seen).toMatchObject({ id: device.deviceId, online: true, node: 'n2', tags: { site: 'west' }, connectedAt: expect.any(String), lastSeenAt: expect.any(String) })
    expect((await node(0).api('GET', `/api/v1/devices?online=true&tag=site:west`)).body.items.map((d: { id: string; node: string }) => [d.id, d.node])).toEqual([[device.deviceId, 'n2']])
    const offline = await provision(2, { site: 'west' })
    expect((await node(0).api('GET', `/api/v1/devices?online=false&tag=site:west`)).body.items.map((d: { id: string; node: unknown }) => [d.id, d.node])).toEqual([
      [offline.deviceId, null],
    ])
  })

  it('lists the nodes, alive, with their sessions', async () => {
    const device = await provision()
    await connect(2, device)
    const listed = await eventually(() => node(0).api('GET', '/api/v1/nodes'), (reply) => reply.body.items.find((n: { id: string }) => n.id === 'n3')?.sessions >= 1, 5000)
    expect(listed.status).toBe(200)
    expect(Object.keys(listed.body.items[0]).sort()).toEqual(['alive', 'id', 'lastSeenAt', 'sessions', 'startedAt', 'version'])
    expect(listed.body.items.map((n: { id: string; alive: boolean; version: string }) => [n.id, n.alive, n.version])).toEqual([
      ['n1', true, expect.any(String)],
      ['n2', true, expect.any(String)],
      ['n3', true, expect.any(String)],
    ])
    for (const item of listed.body.items) expect(Date.parse(item.lastSeenAt)).toBeGreaterThanOrEqual(Date.parse(item.startedAt) - 60_000)
  })

  it('replaces a session with a newer one on another node: the older closes with 4001 within a second, and the device stays online there', async () => {
    const device = await provision()
    const subscriber = await connectMqtt(services.outsiderUrl)
    await subscriber.subscribe(`fleetgate/devices/${device.deviceId}/status`)
    const older = await connect(0, device)
    await placed(2, device, 'n1')
    const newer = await connect(1, device)
    const openedAt = Date.now()
    expect(await older.closed).toMatchObject({ code: CloseCode.replaced })
    expect(Date.now() - openedAt).toBeLessThan(1000)
    await placed(2, device, 'n2')
    // The replaced session published no offline status after the newer one's online.
    const statuses = await eventually(() => subscriber.on(`fleetgate/devices/${device.deviceId}/status`), (list) => list.length >= 2, 2000)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(subscriber.on(`fleetgate/devices/${device.deviceId}/status`).map((m) => JSON.parse(m.payload.toString()).online)).toEqual([true, true])
    expect(statuses.length).toBe(2)
    newer.send({ t: 'tm', s: 1, m: { v: 1 } })
    await newer.untilAck(1)
    await subscriber.stop()
  })

  it('closes the session on whatever node holds it with 4003 within a second: disable, key rotation with disconnect, delete', async () => {
    for (const [change, expectedReason] of [
      ['disable', 'device disabled'],
      ['rotate', 'device key rotated'],
      ['delete', 'device deleted'],
    ] as const) {
      const device = await provision()
      const ws = await connect(2, device)
      await placed(0, device, 'n3')
      const started = Date.now()
      const reply =
        change === 'disable'
          ? await node(0).api('PATCH', `/api/v1/devices/${device.deviceId}`, { disabled: true })
          : change === 'rotate'
            ? await node(0).api('POST', `/api/v1/devices/${device.deviceId}/key`, { graceSec: 600, disconnect: true })
            : await node(0).api('DELETE', `/api/v1/devices/${device.deviceId}`)
      expect(reply.status, change).toBe(change === 'delete' ? 204 : 200)
      expect(await ws.closed, change).toEqual({ code: CloseCode.revoked, reason: expectedReason })
      expect(Date.now() - started, change).toBeLessThan(1000)
      // The audit is written beside the answer, not before it.
      const audit = await eventually(
        async () => (await node(1).api('GET', '/api/v1/audit?limit=1000')).body.items.filter((entry: { target: string }) => entry.target === device.deviceId),
        (entries) => entries.some((entry: { action: string }) => entry.action === 'device.disconnect'),
        2000,
      )
      expect(audit.map((entry: { action: string }) => entry.action).filter((action: string) => action !== 'device.create'), change).toEqual([
        change === 'disable' ? 'device.update' : change === 'rotate' ? 'device.key_rotate' : 'device.delete',
        'device.disconnect',
      ])
      if (change === 'rotate') {
        // The old key still opens a session during its grace period: a rotation's disconnect ends the live session only.
        const again = await connect(1, device)
        again.send({ t: 'tm', s: 1, m: { v: 1 } })
        await again.untilAck(1)
      }
    }
  })

  it('delivers a command created on any node to the device on another, and answers wait: true with its result there', async () => {
    const device = await provision()
    const ws = await connect(1, device)
    await placed(0, device, 'n2')
    const waited = node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'reboot', params: { now: true } })
    const id = await answer(ws, { rebooted: 1 })
    const done = await waited
    expect(done).toMatchObject({ status: 200, body: { id, device: device.deviceId, name: 'reboot', status: 'succeeded', result: { rebooted: 1 } } })
    // wait: false answers once the other node sent it.
    const sent = await node(2).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'ping', wait: false })
    expect(sent).toMatchObject({ status: 202, body: { name: 'ping', status: 'sent' } })
    await answer(ws, 'pong')
    const final = await eventually(() => node(0).api('GET', `/api/v1/devices/${device.deviceId}/commands/${sent.body.id}`), (reply) => reply.body.status === 'succeeded', 2000)
    expect(final.body).toMatchObject({ id: sent.body.id, status: 'succeeded', result: 'pong' })
    // An idempotency key repeated on another node finds the same command.
    const keyed = node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'once', id: 'key-1' })
    const keyedId = await answer(ws, 1)
    expect(keyedId).toBe('key-1')
    expect((await keyed).body).toMatchObject({ id: 'key-1', status: 'succeeded' })
    expect(await node(2).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'once', id: 'key-1' })).toMatchObject({ status: 200, body: { id: 'key-1', status: 'succeeded' } })
    expect(ws.frames).toEqual([])
    // A device offline everywhere, no TTL: 409 on any node.
    const idle = await provision()
    await known(idle)
    expect((await node(1).api('POST', `/api/v1/devices/${idle.deviceId}/commands`, { name: 'x' })).status).toBe(409)
  })

  it("sends a command handed to another node whose news the bus lost: that node's sweep finds it in PostgreSQL", async () => {
    const device = await provision()
    const ws = await connect(2, device)
    await placed(0, device, 'n3')
    // What a create on n1 stores for n3 before the bus message that n3 never gets.
    const now = Date.now()
    const record = { id: 'lost-1', device: device.deviceId, name: 'found', status: 'sent', createdAt: now, sentAt: now, expiresAt: now + 10_000, timeoutMs: 10_000, actor: 'admin' }
    await services.pg.query(
      "INSERT INTO fleetgate.commands (device, id, created_at, status, expires_at, node, record) VALUES ($1, 'lost-1', $2, 'sent', $3, 'n3', $4)",
      [device.deviceId, now, now + 10_000, JSON.stringify(record)],
      database.slice(database.lastIndexOf('/') + 1),
    )
    expect(await ws.next(3000)).toMatchObject({ t: 'cmd', id: 'lost-1', n: 'found' })
    ws.send({ t: 'res', id: 'lost-1', ok: true, r: 'late but once' })
    const done = await eventually(() => node(0).api('GET', `/api/v1/devices/${device.deviceId}/commands/lost-1`), (reply) => reply.body.status === 'succeeded', 3000)
    expect(done.body.result).toBe('late but once')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(ws.frames).toEqual([])
  })

  it('ends a command `timeout` when the device on another node does not answer, and 504s the waiting call', async () => {
    const device = await provision()
    const ws = await connect(2, device)
    await placed(0, device, 'n3')
    const waited = await node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'slow', timeoutMs: 300 })
    expect(waited).toMatchObject({ status: 504, body: { status: 'timeout', error: 'no result within 300 ms' } })
    expect((await ws.next()).t).toBe('cmd')
  })

  it('delivers queued commands, in creation order, from whichever node the device next connects to', async () => {
    const device = await provision()
    await known(device)
    const created: string[] = []
    for (const [i, on] of [0, 1, 2, 0].entries()) {
      const reply = await node(on).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: `q${i}`, ttlMs: 60_000 })
      expect(reply).toMatchObject({ status: 202, body: { status: 'queued' } })
      created.push(reply.body.id)
    }
    const ws = await connect(2, device)
    const names: string[] = []
    for (let i = 0; i < 4; i++) {
      const frame = await ws.next()
      if (frame.t !== 'cmd') throw new Error(`expected a command, got ${JSON.stringify(frame)}`)
      names.push(frame.n)
      ws.send({ t: 'res', id: frame.id, ok: true })
    }
    expect(names).toEqual(['q0', 'q1', 'q2', 'q3'])
    const listed = await eventually(
      () => node(0).api('GET', `/api/v1/devices/${device.deviceId}/commands`),
      (reply) => reply.body.items.every((c: { status: string }) => c.status === 'succeeded'),
      2000,
    )
    expect(listed.body.items.map((c: { id: string }) => c.id)).toEqual([...created].reverse())
    // A queued command for a device that is online on another node goes to it there.
    const late = await node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'late', ttlMs: 60_000, wait: false })
    expect(late).toMatchObject({ status: 202, body: { status: 'sent' } })
    expect(await ws.next()).toMatchObject({ t: 'cmd', n: 'late' })
  })

  it('sends a desired change made on any node to the device wherever it is, and serves its reports from every node', async () => {
    const device = await provision()
    const ws = await connect(1, device)
    await placed(0, device, 'n2')
    const started = Date.now()
    const changed = await node(0).api('PATCH', `/api/v1/devices/${device.deviceId}/twin`, { desired: { interval: 5 } })
    expect(changed).toMatchObject({ status: 200, body: { desiredVersion: 1, desired: { interval: 5 } } })
    expect(await ws.next()).toEqual({ t: 'twd', v: 1, d: { interval: 5 } })
    expect(Date.now() - started).toBeLessThan(1000)
    // Versions are one sequence across nodes: a stale ifVersion conflicts on any node.
    expect(await node(2).api('PATCH', `/api/v1/devices/${device.deviceId}/twin`, { desired: { interval: 6 }, ifVersion: 0 })).toMatchObject({
      status: 409,
      body: { error: 'version_conflict' },
    })
    expect((await node(2).api('PATCH', `/api/v1/devices/${device.deviceId}/twin`, { desired: { interval: 6 }, ifVersion: 1 })).status).toBe(200)
    expect(await ws.next()).toEqual({ t: 'twd', v: 2, d: { interval: 6 } })
    ws.send({ t: 'twr', id: 'r1', p: { interval: 6 } })
    expect(await ws.next()).toEqual({ t: 'twa', id: 'r1', v: 1 })
    expect((await node(0).api('GET', `/api/v1/devices/${device.deviceId}/twin`)).body).toMatchObject({ desiredVersion: 2, reportedVersion: 1, reported: { interval: 6 }, delta: {} })
    // The device moves to another node: its new session starts from the latest desired document.
    const moved = devices.track(await connectDevice(node(2).wsUrl, device))
    expect((await moved.opening()).twd).toEqual({ t: 'twd', v: 2, d: { interval: 6 } })
    expect(await ws.closed).toMatchObject({ code: CloseCode.replaced })
    await placed(0, device, 'n3')
    expect((await node(0).api('PATCH', `/api/v1/devices/${device.deviceId}/twin`, { desired: { mode: 'eco' } })).status).toBe(200)
    expect(await moved.next()).toEqual({ t: 'twd', v: 3, d: { interval: 6, mode: 'eco' } })
  })

  it('publishes through the shared broker and takes its commands with no MQTT listener of its own (FLEETGATE_MQTT_PORT=off)', async () => {
    const quiet = await startTestHub(clusterEnv(services, database, 'n4', { FLEETGATE_MQTT_PORT: 'off' }))
    try {
      expect(quiet.hub.ports).toEqual({ http: expect.any(Number) })
      const device = await provision()
      const subscriber = await connectMqtt(services.outsiderUrl)
      await subscriber.subscribe(`fleetgate/devices/${device.deviceId}/#`)
      await known(device)
      const ws = await devices.connect(quiet.wsUrl, device)
      ws.send({ t: 'tm', s: 1, ts: 1_700_000_000_000, m: { v: 1 } })
      await ws.untilAck(1)
      const seen = await eventually(() => subscriber.received.map((m) => m.topic.split('/').slice(3).join('/')), (topics) => topics.includes('telemetry') && topics.includes('status'), 3000)
      expect(seen).toEqual(expect.arrayContaining(['status', 'telemetry']))
      await placed(0, device, 'n4')
      subscriber.client.publish(`fleetgate/devices/${device.deviceId}/commands`, JSON.stringify({ name: 'over-mqtt', ttlMs: 60_000 }), { qos: 1 })
      expect(await ws.next()).toMatchObject({ t: 'cmd', n: 'over-mqtt' })
      await subscriber.stop()
    } finally {
      devices.closeAll()
      await quiet.stop()
    }
  })

  it("carries every node's events on a stream of any node: status, command, twin, and telemetry of a named device", async () => {
    const device = await provision()
    const other = await provision()
    await known(device)
    await known(other)
    const everything = await EventStreamClient.accepted(node(0).base, '/api/v1/events', ADMIN_TOKEN)
    const named = await EventStreamClient.accepted(node(0).base, `/api/v1/events?device=${device.deviceId}&type=telemetry,status`, ADMIN_TOKEN)
    try {
      // The streams' subscriptions reach the broker before the events they wait for.
      await new Promise((resolve) => setTimeout(resolve, 300))
      const ws = await connect(2, device)
      ws.send({ t: 'tm', s: 1, ts: 1_700_000_000_001, m: { v: 1 } })
      await ws.untilAck(1)
      const otherWs = await connect(1, other)
      otherWs.send({ t: 'tm', s: 1, ts: 1_700_000_000_002, m: { v: 2 } })
      await otherWs.untilAck(1)
      expect(await named.take(2)).toEqual([
        { type: 'status', data: { device: device.deviceId, online: true, at: expect.any(String) } },
        { type: 'telemetry', data: { device: device.deviceId, seq: 1, readings: [{ ts: 1_700_000_000_001, m: { v: 1 } }] } },
      ])
      await placed(0, device, 'n3')
      const reply = node(1).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'evented' })
      await answer(ws, 'ok')
      expect((await reply).body.status).toBe('succeeded')
      expect((await node(1).api('PATCH', `/api/v1/devices/${device.deviceId}/twin`, { desired: { e: 1 } })).status).toBe(200)
      expect(await ws.next()).toMatchObject({ t: 'twd', d: { e: 1 } })
      // Without named devices: every device's status, command and twin, and no telemetry (docs/rest.md).
      const seen = await eventually(
        () => everything.events.items.map((event) => [event.type, (JSON.parse(event.data) as { device: string }).device, (JSON.parse(event.data) as { status?: string }).status]),
        (list) => list.some(([type, , status]) => type === 'command' && status === 'succeeded') && list.some(([type]) => type === 'twin'),
        3000,
      )
      expect(seen).toEqual([
        ['status', device.deviceId, undefined],
        ['status', other.deviceId, undefined],
        ['command', device.deviceId, 'sent'],
        ['command', device.deviceId, 'succeeded'],
        ['twin', device.deviceId, undefined],
      ])
      expect(named.events.items).toEqual([])
    } finally {
      everything.close()
      named.close()
    }
  })

  it('holds at most 100 queued commands per device across nodes', async () => {
    const device = await provision()
    await known(device)
    const replies = await Promise.all(
      Array.from({ length: 110 }, (_, i) => node(i % 3).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'fill', ttlMs: 60_000 })),
    )
    expect(replies.filter((reply) => reply.status === 202)).toHaveLength(100)
    expect(replies.filter((reply) => reply.status === 429).map((reply) => reply.body.error)).toEqual(Array(10).fill('queue_full'))
  })

  it('counts a fan-out across nodes, and keeps one audit log of every node', async () => {
    const tag = { fleet: `f${counter}` }
    const here = await Promise.all([provision(0, tag), provision(1, tag), provision(2, tag)])
    const away = await provision(0, tag)
    const sockets = await Promise.all(here.map((device, i) => connect(i, device)))
    for (const [i, device] of here.entries()) await placed((i + 1) % 3, device, `n${i + 1}`)
    const started = await node(0).api('POST', '/api/v1/commands', { target: { tags: tag }, name: 'update', ttlMs: 60_000 })
    expect(started).toMatchObject({ status: 202, body: { targeted: 4 } })
    await Promise.all(sockets.map((ws) => answer(ws, 'ok')))
    const counts = await eventually(() => node(2).api('GET', `/api/v1/commands/${started.body.batch}`), (reply) => reply.body.succeeded === 3, 3000)
    expect(counts.body).toEqual({ batch: started.body.batch, targeted: 4, queued: 1, sent: 0, succeeded: 3, failed: 0, timeout: 0, expired: 0 })
    // The offline one, once it connects to any node, makes the counts whole.
    const late = await connect(1, away)
    await answer(late, 'ok')
    expect((await eventually(() => node(0).api('GET', `/api/v1/commands/${started.body.batch}`), (reply) => reply.body.succeeded === 4, 3000)).body).toMatchObject({ queued: 0, succeeded: 4 })
    // Every node wrote to one log: the same entries in the same seq order, whichever node is asked.
    const logs = await Promise.all([0, 1, 2].map((i) => node(i).api('GET', '/api/v1/audit?limit=1000')))
    const [first, ...others] = logs.map((log) => log.body.items as Array<{ seq: number; target: string }>)
    for (const other of others) expect(other).toEqual(first)
    const seqs = (first ?? []).map((entry) => entry.seq)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    const creates = (first ?? []).filter((entry) => [...here, away].some((device) => device.deviceId === entry.target))
    expect(creates).toHaveLength(4)
  })

  it("lets only the nodes' credentials write node-to-node messages, and creates an MQTT command once, on one node", async () => {
    const device = await provision()
    const ws = await connect(1, device)
    await placed(0, device, 'n2')
    const outsider = await connectMqtt(services.outsiderUrl)
    // A forged takeover to n2: the broker's ACL drops it, so the session stays up.
    outsider.client.publish('fleetgate-cluster/nodes/n2', JSON.stringify({ t: 'takeover', device: device.deviceId, epoch: Number.MAX_SAFE_INTEGER }), { qos: 1 })
    // A command through the shared broker reaches the device once, though every node subscribes.
    outsider.client.publish(`fleetgate/devices/${device.deviceId}/commands`, JSON.stringify({ name: 'from-mqtt', id: 'mqtt-1', ttlMs: 60_000 }), { qos: 1 })
    expect(await ws.next()).toMatchObject({ t: 'cmd', id: 'mqtt-1', n: 'from-mqtt' })
    ws.send({ t: 'res', id: 'mqtt-1', ok: true })
    outsider.client.publish(`fleetgate/devices/${device.deviceId}/commands`, JSON.stringify({ name: 'from-mqtt', ttlMs: 60_000 }), { qos: 1 })
    expect(await ws.next()).toMatchObject({ t: 'cmd', n: 'from-mqtt' })
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(ws.frames).toEqual([])
    const listed = await node(2).api('GET', `/api/v1/devices/${device.deviceId}/commands`)
    expect(listed.body.items).toHaveLength(2)
    ws.send({ t: 'tm', s: 1, m: { v: 1 } })
    await ws.untilAck(1)
    await outsider.stop()
  })

  it('rides out a 10 s broker outage: sessions keep ingesting, calls to another node fail fast with 503, a takeover still ends the older session, all recovers', async () => {
    const device = await provision()
    const ws = await connect(2, device)
    await placed(0, device, 'n3')
    const local = await provision()
    const here = await connect(0, local)
    const roamer = await provision()
    const first = await connect(0, roamer)
    await placed(1, roamer, 'n1')
    await services.broker.pause()
    const outageStarted = Date.now()
    try {
      const refused = await eventually(
        () => node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'far' }),
        (reply) => reply.status === 503,
        5000,
      )
      expect(refused.body).toEqual({
        error: 'not_ready',
        message: `device "${device.deviceId}" is connected to node "n3", which cannot be reached now: the cluster's MQTT broker (FLEETGATE_MQTT_UPLINK) is unreachable; retry shortly`,
      })
      // Fast: refused before anything is stored or sent.
      const timed = Date.now()
      expect((await node(1).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'far', ttlMs: 60_000 })).status).toBe(503)
      expect(Date.now() - timed).toBeLessThan(1000)
      expect((await node(0).api('GET', '/readyz')).body.checks).toMatchObject({ broker: 'unreachable', postgres: 'ok' })
      // A newer session elsewhere: the takeover message cannot go, and the older session's node finds it in PostgreSQL.
      const second = await connect(1, roamer)
      expect(await first.closed).toMatchObject({ code: CloseCode.replaced })
      second.send({ t: 'tm', s: 1, m: { v: 1 } })
      await second.untilAck(1)
      // A desired twin change is stored; the node that holds the device finds it in PostgreSQL and sends it.
      expect((await node(0).api('PATCH', `/api/v1/devices/${device.deviceId}/twin`, { desired: { during: 'outage' } })).status).toBe(200)
      expect(await ws.next()).toMatchObject({ t: 'twd', d: { during: 'outage' } })
      // A device on this node is served as ever, and ingest goes on everywhere, for the whole outage.
      const near = node(0).api('POST', `/api/v1/devices/${local.deviceId}/commands`, { name: 'near' })
      await answer(here, 'ok')
      expect((await near).body.status).toBe('succeeded')
      let s = 0
      while (Date.now() - outageStarted < 10_000) {
        ws.send({ t: 'tm', s: ++s, m: { v: s } })
        await ws.untilAck(s)
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      expect(s).toBeGreaterThan(20)
    } finally {
      await services.broker.start()
    }
    const back = await eventually(() => node(0).api('GET', '/readyz'), (reply) => reply.status === 200, 10_000)
    expect(back.body.checks.broker).toBe('ok')
    const far = node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'far' })
    await answer(ws, 'ok')
    expect((await far).body.status).toBe('succeeded')
  }, 30_000)

  it('rides out a PostgreSQL restart: writes answer 503 on every node, sessions keep ingesting, all recovers without a restart', async () => {
    const device = await provision()
    const ws = await connect(1, device)
    await placed(0, device, 'n2')
    await services.pg.halt()
    try {
      for (const i of [0, 1, 2]) {
        const refused = await eventually(() => node(i).api('POST', '/api/v1/devices', { id: `during-${i}` }), (reply) => reply.status === 503, 3000)
        expect(refused.body.error).toBe('not_ready')
      }
      expect((await node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'x' })).status).toBe(503)
      for (let s = 1; s <= 10; s++) ws.send({ t: 'tm', s, m: { v: s } })
      await ws.untilAck(10)
    } finally {
      await services.pg.start()
    }
    for (const i of [0, 1, 2]) await eventually(() => node(i).api('GET', '/readyz'), (reply) => reply.status === 200, 15_000)
    expect((await node(2).api('POST', '/api/v1/devices', { id: `after-${counter}` })).status).toBe(201)
    const waited = node(0).api('POST', `/api/v1/devices/${device.deviceId}/commands`, { name: 'after' })
    await answer(ws, 'ok')
    expect((await waited).body.status).toBe('succeeded')
    const listed = await eventually(() => node(2).api('GET', '/api/v1/nodes'), (reply) => reply.body.items.every((n: { alive: boolean }) => n.alive), 5000)
    expect(listed.body.items.map((n: { id: string }) => n.id)).toEqual(['n1', 'n2', 'n3'])
  }, 40_000)
})

describe('a hub that is not in a cluster', () => {
  it('has no nodes to list, and says no node in the device view', async () => {
    const hub = await startTestHub({ FLEETGATE_NODE_ID: 'solo' })
    try {
      expect(await hub.api('GET', '/api/v1/nodes')).toEqual({
        status: 404,
        body: { error: 'not_found', message: 'this hub is not in a cluster (FLEETGATE_POSTGRES_URL is unset): it has no nodes to list' },
      })
      const device = await hub.provision('lonely')
      expect((await hub.api('GET', `/api/v1/devices/${device.deviceId}`)).body).not.toHaveProperty('node')
    } finally {
      await hub.stop()
    }
  })
})
