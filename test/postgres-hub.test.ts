import { spawnSync } from 'node:child_process'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { api, HUB_MAIN, HubProcesses, startTestHub, testEnv, type TestHub } from './support/hub.js'
import { startMosquitto, type Mosquitto } from './support/mosquitto.js'
import { startPostgres, type Postgres } from './support/postgres.js'
import { eventually } from './support/telemetry.js'
import { connectDevice, OpenDevices } from './support/ws.js'

/**
 * The hub on PostgreSQL (FLEETGATE_POSTGRES_URL, docs/cluster.md): the schema migrated once by nodes
 * that start together, the registry shared, and a PostgreSQL restart under a running hub.
 */
describe('the hub on PostgreSQL', () => {
  let pg: Postgres
  let broker: Mosquitto
  const processes = new HubProcesses()
  const devices = new OpenDevices()
  const hubs: TestHub[] = []

  beforeAll(async () => {
    ;[pg, broker] = await Promise.all([startPostgres(), startMosquitto()])
  })
  afterEach(async () => {
    devices.closeAll()
    for (const hub of hubs.splice(0)) await hub.stop()
    await processes.cleanup()
  })
  afterAll(async () => {
    await Promise.all([pg?.stop(), broker?.stop()])
  })

  const clusterEnv = (url: string, nodeId: string): Record<string, string> => ({
    FLEETGATE_POSTGRES_URL: url,
    FLEETGATE_NODE_ID: nodeId,
    FLEETGATE_MQTT_PORT: '0',
    FLEETGATE_MQTT_UPLINK: broker.url,
  })

  it('migrates an empty database once when two nodes start at once, and shares the registry between them', async () => {
    const url = await pg.createDatabase()
    const [one, two] = await Promise.all(['one', 'two'].map((id) => processes.start(testEnv(processes.dir(), { ...clusterEnv(url, id), FLEETGATE_LOG_LEVEL: 'info' }))))
    if (one === undefined || two === undefined) throw new Error('two hubs expected')
    // The SQL files were found from hub/dist, and only one node applied them.
    const migrated = [...one.logs, ...two.logs].filter((entry) => entry['msg'] === 'PostgreSQL schema migrated')
    expect(migrated.map((entry) => entry['name'])).toEqual(['0001_initial.sql', '0002_twins.sql', '0003_cluster.sql'])
    // All by one of the two nodes.
    expect([one, two].map((hub) => hub.logs.filter((entry) => entry['msg'] === 'PostgreSQL schema migrated').length).sort()).toEqual([0, 3])
    const rows = await pg.query<{ version: number }>('SELECT version FROM fleetgate.schema_migrations ORDER BY version', [], url.slice(url.lastIndexOf('/') + 1))
    expect(rows).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }])

    const created = await api(one.base, 'POST', '/api/v1/devices', { id: 'roamer', tags: { site: 'north' } })
    expect(created.status).toBe(201)
    // The other node serves the device from its cache, which takes the create within a second.
    const seen = await eventually(() => api(two.base, 'GET', '/api/v1/devices/roamer'), (reply) => reply.status === 200, 1000)
    expect(seen.body).toMatchObject({ id: 'roamer', tags: { site: 'north' }, disabled: false })
    // The twin is shared too (docs/twins.md, docs/cluster.md): changed on one node, read and delivered by the other.
    expect((await api(one.base, 'PATCH', '/api/v1/devices/roamer/twin', { desired: { setpoint: 19 } })).body).toMatchObject({ desiredVersion: 1 })
    expect(await api(two.base, 'PATCH', '/api/v1/devices/roamer/twin', { desired: { mode: 'eco' }, ifVersion: 0 })).toMatchObject({ status: 409, body: { error: 'version_conflict' } })
    const credentials = { deviceId: 'roamer', keyType: 'hmac' as const, key: created.body.key as string }
    const ws = await eventually(() => connectDevice(two.wsUrl, credentials).catch(() => undefined), (opened) => opened !== undefined, 1000)
    if (ws === undefined) throw new Error('the device did not connect to the other node')
    devices.track(ws)
    expect(await ws.next()).toMatchObject({ t: 'hello' })
    expect(await ws.next()).toStrictEqual({ t: 'twd', v: 1, d: { setpoint: 19 } })
    ws.send({ t: 'twr', id: 'r1', p: { setpoint: 19 } })
    expect(await ws.next()).toStrictEqual({ t: 'twa', id: 'r1', v: 1 })
    expect((await api(one.base, 'GET', '/api/v1/devices/roamer/twin')).body).toMatchObject({ reported: { setpoint: 19 }, reportedVersion: 1, delta: {} })
    // audit entries are appended after the answer, each node on its own: their order across nodes is not the calls'
    const audit = await eventually(async () => (await api(two.base, 'GET', '/api/v1/audit?limit=10')).body.items as Array<Record<string, unknown>>, (items) => items.length === 3)
    expect(audit.map((entry) => `${String(entry['action'])} ${String(entry['outcome'])}`).sort()).toEqual([
      'device.create ok',
      'twin.desired version 1',
      'twin.desired version_conflict (version 1)',
    ])
  })

  it('answers the telemetry API 503 without InfluxDB, even with FLEETGATE_HISTORY=on: a node holds only what it received (docs/cluster.md)', async () => {
    const url = await pg.createDatabase()
    const hub = await processes.start(testEnv(processes.dir(), { ...clusterEnv(url, 'solo'), FLEETGATE_HISTORY: 'on' }))
    expect((await api(hub.base, 'POST', '/api/v1/devices', { id: 'metered' })).status).toBe(201)
    expect(await api(hub.base, 'GET', '/api/v1/devices/metered/telemetry')).toEqual({
      status: 503,
      body: { error: 'not_ready', message: 'in cluster mode the telemetry API reads InfluxDB, and FLEETGATE_INFLUX_URL is unset' },
    })
  })

  it('exits 1 at once, saying so, when PostgreSQL cannot be reached at start', async () => {
    // Port 2 on loopback: nothing listens there, and no other test can take it meanwhile.
    const nobody = 2
    // Killed after 10 s: a hub that retried instead of exiting would end with no status.
    const result = spawnSync(process.execPath, [HUB_MAIN], {
      env: { PATH: process.env['PATH'] ?? '', ...testEnv(processes.dir(), clusterEnv(`postgres://fleet:s3cret@127.0.0.1:${nobody}/fleet`, 'lonely')) },
      encoding: 'utf8',
      timeout: 10_000,
    })
    expect(result.status).toBe(1)
    expect(result.stderr).toContain(`HUB_ERR_STORE_UNAVAILABLE: connecting to migrate the schema: PostgreSQL is unreachable (connect ECONNREFUSED 127.0.0.1:${nobody})`)
    expect(result.stderr).not.toContain('s3cret')
  })

  it('answers REST writes 503 while PostgreSQL restarts, keeps acknowledging telemetry, and recovers without a restart', async () => {
    const url = await pg.createDatabase()
    const hub = await startTestHub(clusterEnv(url, 'steady'))
    hubs.push(hub)
    const device = await hub.provision('sensor')
    const ws = await devices.connect(hub.wsUrl, device)
    const reading = (s: number): Parameters<typeof ws.send>[0] => ({ t: 'tm', s, ts: 1_700_000_000_000 + s, m: { v: s } })
    ws.send(reading(1))
    await ws.untilAck(1)
    expect((await hub.api('GET', '/readyz')).body.checks).toMatchObject({ store: 'ok', postgres: 'ok' })

    await pg.halt()
    const refused = await eventually(() => hub.api('POST', '/api/v1/devices', { id: 'late' }), (reply) => reply.status === 503, 2000)
    expect(refused).toEqual({ status: 503, body: { error: 'not_ready', message: "the hub's storage does not answer now (PostgreSQL, in cluster mode); retry shortly" } })
    for (const [method, path, body] of [
      ['PATCH', '/api/v1/devices/sensor', { tags: { a: 'b' } }],
      ['DELETE', '/api/v1/devices/sensor', undefined],
      ['POST', '/api/v1/devices/sensor/commands', { name: 'reboot', ttlMs: 60_000 }],
    ] as const) {
      expect((await hub.api(method, path, body)).status, `${method} ${path}`).toBe(503)
    }
    // Refused before anything happens: the device was sent no command that could not be recorded.
    expect(ws.frames).toEqual([])
    const ready = await hub.api('GET', '/readyz')
    expect(ready.status).toBe(503)
    expect(ready.body.checks).toMatchObject({ store: 'ok', postgres: 'unreachable' })
    // The device keeps its session, and its telemetry is acknowledged: the spool is local.
    for (let s = 2; s <= 20; s++) ws.send(reading(s))
    await ws.untilAck(20)

    await pg.start()
    const back = await eventually(() => hub.api('POST', '/api/v1/devices', { id: 'late' }), (reply) => reply.status === 201, 10_000)
    expect(back.status).toBe(201)
    expect((await hub.api('GET', '/readyz')).status).toBe(200)
    expect((await hub.api('PATCH', '/api/v1/devices/sensor', { tags: { a: 'b' } })).status).toBe(200)
    // A command round trip through the store: sent, answered, stored as succeeded.
    const answered = hub.api('POST', '/api/v1/devices/sensor/commands', { name: 'reboot', params: { now: true } })
    const cmd = await ws.next()
    if (cmd.t !== 'cmd') throw new Error(`expected a command, got ${JSON.stringify(cmd)}`)
    expect(cmd).toMatchObject({ n: 'reboot', p: { now: true } })
    ws.send({ t: 'res', id: cmd.id, ok: true, r: { rebooted: 1 } })
    expect(await answered).toMatchObject({ status: 200, body: { id: cmd.id, status: 'succeeded', result: { rebooted: 1 } } })
    ws.send(reading(21))
    await ws.untilAck(21)
  })
})
