import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { assertHubServes, hubMetrics, Witness } from '../support/hostile.js'
import { ADMIN_TOKEN, HubProcesses, startTestHub, testEnv, type TestHub } from '../support/hub.js'
import { connectMqtt } from '../support/mqtt-client.js'
import { RawMqtt } from '../support/mqtt-raw.js'
import { eventually } from '../support/telemetry.js'

const STREAM_BYTES = 40 * 1024 * 1024
const CHUNK = Buffer.alloc(65_536, 0x61)

/**
 * Sends a CONNECT header that declares 268,435,455 bytes, then streams its "body" until 40 MiB are
 * out or the hub has closed the connection; answers the bytes the socket took.
 */
async function oversizedConnect(raw: RawMqtt): Promise<number> {
  raw.sendRaw(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]))
  let sent = 0
  while (!raw.isClosed && !raw.socket.destroyed && sent < STREAM_BYTES) {
    sent += CHUNK.length
    if (!raw.socket.write(CHUNK)) await Promise.race([new Promise((resolve) => raw.socket.once('drain', resolve)), raw.closed])
  }
  await raw.closed
  return sent
}

const FIGURES = [
  'fleetgate_mqtt_disconnects_total{reason="packet_too_large"}',
  'fleetgate_mqtt_disconnects_total{reason="too_many_unauthenticated"}',
  'fleetgate_mqtt_disconnects_total{reason="connect_timeout"}',
  'fleetgate_mqtt_unauthenticated_connections',
  'fleetgate_mqtt_clients',
] as const

/** Issue 10: connections that never authenticate cost the hub a bounded, short-lived amount. */
describe('MQTT connections that do not authenticate', () => {
  let hub: TestHub
  let witness: Witness

  beforeAll(async () => {
    hub = await startTestHub({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_CONNECT_SEC: '1', FLEETGATE_MQTT_MAX_UNAUTHENTICATED: '4' })
    witness = await Witness.connect(hub.wsUrl, await hub.provision('witness'))
  })
  afterAll(async () => {
    witness?.close()
    await hub?.stop()
  })

  it('cuts three sockets declaring 256 MiB CONNECTs on their header, however much they stream', async () => {
    const port = hub.hub.ports.mqtt as number
    const raws = await Promise.all([0, 1, 2].map(async () => await RawMqtt.open(port)))
    const sent = await Promise.all(raws.map(oversizedConnect))
    // Each was closed long before 40 MiB: what it got out is at most what the kernels' buffers took.
    for (const bytes of sent) expect(bytes).toBeLessThan(STREAM_BYTES)
    expect(await hubMetrics(hub.base, FIGURES)).toEqual({
      'fleetgate_mqtt_disconnects_total{reason="packet_too_large"}': 3,
      'fleetgate_mqtt_disconnects_total{reason="too_many_unauthenticated"}': 0,
      'fleetgate_mqtt_disconnects_total{reason="connect_timeout"}': 0,
      'fleetgate_mqtt_unauthenticated_connections': 0,
      'fleetgate_mqtt_clients': 0,
    })
    await assertHubServes(hub.base, witness)
  })

  it('holds at most FLEETGATE_MQTT_MAX_UNAUTHENTICATED idle connections, each for FLEETGATE_MQTT_CONNECT_SEC', async () => {
    const port = hub.hub.ports.mqtt as number
    const idle = await Promise.all([0, 1, 2, 3].map(async () => await RawMqtt.open(port)))
    await eventually(() => hubMetrics(hub.base, FIGURES), (f) => f['fleetgate_mqtt_unauthenticated_connections'] === 4, 5000)
    const fifth = await RawMqtt.open(port)
    await fifth.closed
    // One byte at a time does not keep a connection: each is cut a second after it opened.
    for (const raw of idle) raw.sendRaw(Buffer.from([0x10]))
    await Promise.all(idle.map(async (raw) => await raw.closed))
    expect(await hubMetrics(hub.base, FIGURES)).toEqual({
      'fleetgate_mqtt_disconnects_total{reason="packet_too_large"}': 3,
      'fleetgate_mqtt_disconnects_total{reason="too_many_unauthenticated"}': 1,
      'fleetgate_mqtt_disconnects_total{reason="connect_timeout"}': 4,
      'fleetgate_mqtt_unauthenticated_connections': 0,
      'fleetgate_mqtt_clients': 0,
    })
    const client = await connectMqtt(`mqtt://127.0.0.1:${port}`, { username: 'ops', password: ADMIN_TOKEN })
    expect(client.client.connected).toBe(true)
    await client.stop()
    await assertHubServes(hub.base, witness)
  })
})

describe('MQTT connections cut by a limit, in the hub log', () => {
  const processes = new HubProcesses()
  afterEach(async () => await processes.cleanup())

  it('logs each cut once, with its reason, client id and actor', async () => {
    const hub = await processes.start(testEnv(processes.dir(), { FLEETGATE_MQTT_PORT: '0', FLEETGATE_LOG_LEVEL: 'info' }))
    const port = hub.ports.mqtt as number
    const stranger = await RawMqtt.open(port)
    stranger.sendRaw(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]))
    await stranger.closed
    const admin = await RawMqtt.session(port, ADMIN_TOKEN, 'ops-1')
    // A PUBLISH declaring 1 MiB, over the default 135,168 bytes.
    admin.sendRaw(Buffer.from([0x32, 0x80, 0x80, 0x40]))
    await admin.closed
    const cuts = await eventually(
      () => hub.logs.filter((line) => line['msg'] === 'mqtt connection cut'),
      (lines) => lines.length >= 2,
      5000,
    )
    expect(cuts.map(({ level, reason, clientId, actor, bytes }) => ({ level, reason, clientId, actor, bytes }))).toEqual([
      { level: 'info', reason: 'packet_too_large', clientId: '', actor: undefined, bytes: 268_435_455 },
      { level: 'info', reason: 'packet_too_large', clientId: 'ops-1', actor: 'admin', bytes: 1_048_576 },
    ])
  })
})
