import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BatchFrame } from '@fleetgate/device-sdk'
import { ADMIN_TOKEN, startTestHub, type TestHub } from './support/hub.js'
import { connectMqtt, type TestClient } from './support/mqtt-client.js'
import { eventually } from './support/telemetry.js'
import { OpenDevices } from './support/ws.js'

/** CONTRACT §3: "The hub slows its acks when its own egress lags." */
describe('egress back-pressure from a slow MQTT subscriber', () => {
  let hub: TestHub
  let subscriber: TestClient
  const devices = new OpenDevices()

  beforeAll(async () => {
    hub = await startTestHub({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_DEVICE_RATE: '10000' }, undefined, { mqttHighWater: 20 })
    subscriber = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 's', password: ADMIN_TOKEN })
    await subscriber.subscribe('fleetgate/devices/+/telemetry', { qos: 1 })
  })
  afterAll(async () => {
    devices.closeAll()
    await subscriber?.stop()
    await hub?.stop()
  })

  it('stops acking while a subscriber cannot keep up, then delivers every frame to it and acks them all', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('firehose'))
    const frame = (s: number): BatchFrame => ({
      t: 'tb',
      s,
      r: Array.from({ length: 500 }, (_, i) => ({ ts: 1_700_000_000_000 + s * 500 + i, m: { value: i, padding: 'x'.repeat(40) } })),
    })
    // The subscriber stops reading: its socket fills and aedes cannot deliver.
    subscriber.client.stream.pause()
    let sent = 0
    let acked = 0
    let stalled = false
    while (sent < 2000 && !stalled) {
      while (sent - acked < 64 && sent < 2000) ws.send(frame(++sent))
      try {
        const answer = await ws.next(1000)
        if (answer.t !== 'ack') throw new Error(`unexpected ${JSON.stringify(answer)}`)
        acked = answer.s
      } catch {
        stalled = true
      }
    }
    expect(stalled).toBe(true)
    expect(sent - acked).toBeGreaterThan(0)

    subscriber.client.stream.resume()
    const rest = await ws.untilAck(sent, 20_000)
    expect(rest.every((f) => f.t === 'ack')).toBe(true)
    const delivered = await eventually(() => subscriber.on('fleetgate/devices/firehose/telemetry').length, (n) => n === sent, 20_000)
    expect(delivered).toBe(sent)
  }, 60_000)
})
