import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, startTestHub, type TestHub } from './support/hub.js'
import { startMosquitto, type Mosquitto } from './support/mosquitto.js'
import { connectMqtt, type TestClient } from './support/mqtt-client.js'
import { eventually } from './support/telemetry.js'
import { connectDevice, type RawDevice } from './support/ws.js'

describe('MQTT uplink to an external Mosquitto (docs/mqtt.md)', () => {
  let mosquitto: Mosquitto
  let hub: TestHub
  let external: TestClient
  let local: TestClient
  let device: RawDevice

  beforeAll(async () => {
    mosquitto = await startMosquitto()
    hub = await startTestHub({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_UPLINK: mosquitto.url, FLEETGATE_DEVICE_RATE: '10000' })
    external = await connectMqtt(mosquitto.url)
    expect(await external.subscribe('fleetgate/#', { qos: 1 })).toEqual([1])
    local = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'ops', password: ADMIN_TOKEN })
    expect(await local.subscribe('fleetgate/devices/+/commands', { qos: 1 })).toEqual([1])
    const created = await hub.api('POST', '/api/v1/devices', { id: 'mirrored' })
    device = await connectDevice(hub.wsUrl, { deviceId: 'mirrored', keyType: 'hmac', key: created.body.key })
    await device.opening()
  })
  afterAll(async () => {
    device?.close()
    await external?.stop()
    await local?.stop()
    await hub?.stop()
    await mosquitto?.stop()
  })

  it('mirrors status and telemetry out, and brings commands in', async () => {
    await eventually(() => external.on('fleetgate/devices/mirrored/status'), (m) => m.length >= 1)
    // The status is retained on the external broker: a late subscriber gets it at once.
    const late = await connectMqtt(mosquitto.url)
    await late.subscribe('fleetgate/devices/mirrored/status', { qos: 1 })
    const retained = await eventually(() => late.on('fleetgate/devices/mirrored/status'), (m) => m.length === 1)
    expect(retained[0]?.retain).toBe(true)
    expect(JSON.parse(retained[0]?.payload.toString() ?? '')).toMatchObject({ device: 'mirrored', online: true })
    await late.stop()

    device.send({ t: 'tm', s: 1, ts: 1_700_000_000_000, m: { up: 1 } })
    expect(await device.next()).toEqual({ t: 'ack', s: 1 })
    const telemetry = await eventually(() => external.on('fleetgate/devices/mirrored/telemetry'), (m) => m.length === 1)
    expect(JSON.parse(telemetry[0]?.payload.toString() ?? '')).toEqual({
      device: 'mirrored',
      seq: 1,
      readings: [{ ts: 1_700_000_000_000, m: { up: 1 } }],
    })

    await external.client.publishAsync('fleetgate/devices/mirrored/commands', JSON.stringify({ id: 'from-outside', name: 'ping' }), { qos: 1 })
    const command = await eventually(() => local.on('fleetgate/devices/mirrored/commands'), (m) => m.length === 1)
    expect(JSON.parse(command[0]?.payload.toString() ?? '')).toEqual({ id: 'from-outside', name: 'ping' })
    // The command reaches the device, and its final record goes back out through the uplink.
    expect(await device.next()).toMatchObject({ t: 'cmd', id: 'from-outside', n: 'ping' })
    device.send({ t: 'res', id: 'from-outside', ok: true, r: 'pong' })
    const result = await eventually(() => external.on('fleetgate/devices/mirrored/commands/from-outside'), (m) => m.length === 1)
    expect(JSON.parse(result[0]?.payload.toString() ?? '')).toMatchObject({ id: 'from-outside', status: 'succeeded', result: 'pong' })
  })

  it('keeps ingesting at full speed while the external broker is away', async () => {
    await mosquitto.pause()
    const started = Date.now()
    for (let s = 2; s <= 1001; s += 50) {
      for (let i = s; i < s + 50; i++) device.send({ t: 'tm', s: i, ts: 1_700_000_000_000 + i, m: { up: i } })
      const answers = await device.untilAck(s + 49)
      expect(answers.every((frame) => frame.t === 'ack')).toBe(true)
    }
    // A thousand frames in well under the time one uplink reconnect attempt takes.
    expect(Date.now() - started).toBeLessThan(3000)
    await mosquitto.start()
    // The uplink reconnects on its own and mirrors again.
    const after = await connectMqtt(mosquitto.url)
    await after.subscribe('fleetgate/devices/mirrored/telemetry', { qos: 1 })
    device.send({ t: 'tm', s: 1002, ts: 1_700_000_001_002, m: { up: 1002 } })
    await device.untilAck(1002)
    const seqs = (): number[] => after.on('fleetgate/devices/mirrored/telemetry').map((m) => (JSON.parse(m.payload.toString()) as { seq: number }).seq)
    expect(await eventually(seqs, (seen) => seen.includes(1002), 30_000)).toContain(1002)
    await after.stop()
  }, 60_000)
})
