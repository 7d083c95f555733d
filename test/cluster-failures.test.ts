import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runFleet } from '@fleetgate/firmware-sim'
import { NodeProcesses, startClusterServices, type ClusterServices } from './support/cluster.js'
import { startHaproxy, type Haproxy } from './support/haproxy.js'
import { ADMIN_TOKEN, api, tempDir, type HubProcess } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { eventually } from './support/telemetry.js'
import { OpenDevices, type Credentials } from './support/ws.js'

const DB = 'cluster_failures'

/**
 * docs/cluster.md when a node dies: three hub processes behind a real HAProxy on one PostgreSQL, one
 * Mosquitto and one influxd; one is killed with SIGKILL while a simulated fleet runs through the
 * balancer with churn, commands and desired twin changes, and started again on its data dir.
 */
describe('a cluster that loses a node', () => {
  let services: ClusterServices
  let influx: Influxd
  let balancer: Haproxy
  let database: string
  let nodes: NodeProcesses
  const devices = new OpenDevices()
  const hubOf = (id: string): HubProcess => nodes.hub(id)

  beforeAll(async () => {
    ;[services, influx] = await Promise.all([startClusterServices({ persistence: true }), startInfluxd()])
    database = await services.pg.createDatabase()
    nodes = new NodeProcesses(services, database, { FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
    for (const id of ['n1', 'n2', 'n3']) await nodes.start(id)
    balancer = await startHaproxy(['n1', 'n2', 'n3'].map((id) => ({ name: id, port: hubOf(id).ports.http })))
  }, 90_000)
  afterAll(async () => {
    devices.closeAll()
    await balancer?.stop()
    await nodes?.cleanup()
    await Promise.all([services?.stop(), influx?.destroy()])
  })

  /** Rows of the cluster's database. */
  const sql = <Row extends Record<string, unknown>>(text: string): Promise<Row[]> => services.pg.query<Row>(text, [], database.slice(database.lastIndexOf('/') + 1))
  const provision = async (id: string): Promise<Credentials> => {
    const created = await api(hubOf('n1').base, 'POST', '/api/v1/devices', { id })
    if (created.status !== 201) throw new Error(`creating ${id}: ${created.status}`)
    const credentials = { deviceId: id, keyType: 'hmac' as const, key: created.body.key as string }
    await eventually(() => api(hubOf('n2').base, 'GET', `/api/v1/devices/${id}`), (reply) => reply.status === 200, 1000)
    return credentials
  }

  it('kill -9 of a node under a fleet with churn, commands and twin changes: its devices reconnect to the others, read offline meanwhile, its sent commands end timeout, queued ones stay, and every acked reading is stored once', async () => {
    // A device held by n2 alone (not through the balancer), with a command n2 sent and that nobody answers.
    const victim = await provision('victim')
    const held = await devices.connect(hubOf('n2').wsUrl, victim)
    // Its claim commits within milliseconds of the hello.
    await eventually(() => api(hubOf('n1').base, 'GET', '/api/v1/devices/victim'), (reply) => reply.body.node === 'n2', 1000)
    const sent = await api(hubOf('n1').base, 'POST', '/api/v1/devices/victim/commands', { name: 'stuck', timeoutMs: 4000, wait: false })
    expect(sent).toMatchObject({ status: 202, body: { status: 'sent' } })
    expect(await held.next()).toMatchObject({ t: 'cmd', n: 'stuck' })
    // A device that is offline, with a command queued for it.
    await provision('sleeper')
    const queued = await api(hubOf('n2').base, 'POST', '/api/v1/devices/sleeper/commands', { name: 'later', ttlMs: 600_000 })
    expect(queued).toMatchObject({ status: 202, body: { status: 'queued' } })

    const dir = tempDir('fleetgate-cluster-fleet-')
    const fleet = runFleet({
      hub: balancer.url,
      token: ADMIN_TOKEN,
      devices: 60,
      prefix: 'kill-',
      provision: true,
      fleet: join(dir.path, 'fleet.json'),
      model: 'mixed',
      rate: 4,
      durationMs: 24_000,
      connectRate: 200,
      churnPercentPerMin: 30,
      commandRate: 3,
      commandTimeoutMs: 3000,
      twinRate: 3,
      verify: true,
      verifyTimeoutMs: 60_000,
      drainTimeoutMs: 30_000,
      seed: 14_000_014,
    })
    // Once the fleet is up and spread over the three nodes, n2 dies.
    const spread = await eventually(
      () => api(balancer.url, 'GET', '/api/v1/devices?online=true&limit=1000'),
      (reply) => reply.status === 200 && reply.body.items.filter((d: { id: string }) => d.id.startsWith('kill-')).length >= 55,
      20_000,
    )
    const onN2 = spread.body.items.filter((d: { id: string; node: string }) => d.node === 'n2' && d.id.startsWith('kill-')).map((d: { id: string }) => d.id)
    expect(onN2.length).toBeGreaterThan(5)
    const killedAt = Date.now()
    await nodes.kill('n2')
    expect(await held.closed).toMatchObject({ code: 1006 })

    // Until they reconnect, n2's devices read offline within 15 s; 'victim' never reconnects.
    const gone = await eventually(() => api(hubOf('n1').base, 'GET', '/api/v1/devices/victim'), (reply) => reply.body.online === false, 15_000)
    expect(gone.body).toMatchObject({ online: false, node: null })
    expect(Date.now() - killedAt).toBeLessThan(15_000)
    // The fleet's devices that were on n2 are back, through the balancer, on the others.
    const moved = await eventually(
      async () => (await Promise.all(onN2.map((id: string) => api(hubOf('n1').base, 'GET', `/api/v1/devices/${id}`)))).map((reply) => reply.body.node),
      (placed) => placed.every((node) => node === 'n1' || node === 'n3'),
      15_000,
    )
    expect(new Set(moved)).not.toContain('n2')
    // Its sent command ended timeout (a survivor, past the deadline); the queued one stays queued.
    const ended = await eventually(() => api(hubOf('n3').base, 'GET', `/api/v1/devices/victim/commands/${sent.body.id}`), (reply) => reply.body.status !== 'sent', 15_000)
    expect(ended.body).toMatchObject({ status: 'timeout', error: 'no result within 4000 ms' })
    expect((await api(hubOf('n1').base, 'GET', `/api/v1/devices/sleeper/commands/${queued.body.id}`)).body.status).toBe('queued')
    expect((await api(hubOf('n1').base, 'GET', '/api/v1/nodes')).body.items.find((n: { id: string }) => n.id === 'n2')).toMatchObject({ alive: false, sessions: 0 })

    // n2 comes back on its data dir: what it acknowledged before dying ships from its spool.
    await nodes.start('n2')
    await eventually(() => balancer.servers(), (servers) => servers['n2'] === 'UP', 10_000)
    const summary = await fleet
    expect(summary.readings).toMatchObject({ dropped: 0, unacked: 0, failed: 0, naked: { expected: 0, unexpected: 0 } })
    expect(summary.readings.acked).toBe(summary.readings.sent)
    expect(summary.verify).toMatchObject({ devices: 60, missing: 0, extra: 0, duplicates: 0 })
    expect(summary.verify?.stored).toBe(summary.readings.acked)
    expect(summary.devices).toMatchObject({ target: 60, neverConnected: 0, connectedAtEnd: 60 })
    // REST calls in flight to n2 when it died are the only failures the fleet may see (HAProxy answers them 502).
    expect(summary.reasons.filter((reason) => !reason.includes('command calls failed') && !reason.includes('desired changes failed'))).toEqual([])
    expect(summary.commands.errors + summary.twins.errors).toBeLessThanOrEqual(20)
    expect(summary.commands.succeeded).toBeGreaterThan(0)
    // Every desired change that was answered 200 reached its device, wherever it went, and was reported applied.
    expect(summary.twins.changed).toBeGreaterThan(20)
    expect(summary.twins.unconverged).toBe(0)
    expect(summary.twins.verify).toMatchObject({ outOfSyncCount: 0 })
    // No command stays sent: each ended, on its node or by a survivor's sweep.
    expect(await eventually(() => sql<{ n: string }>("SELECT count(*) AS n FROM fleetgate.commands WHERE status = 'sent'"), (rows) => rows[0]?.n === '0', 15_000)).toEqual([{ n: '0' }])
    expect((await api(hubOf('n2').base, 'GET', `/api/v1/devices/sleeper/commands/${queued.body.id}`)).body.status).toBe('queued')
    dir.cleanup()
  }, 150_000)
})
