import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BatchFrame } from '@fleetgate/device-sdk/wire'
import { hubMetric, hubMetrics } from '../support/hostile.js'
import { startTestHub, tempDir, writeTokensFile, type TestHub } from '../support/hub.js'
import { connectMqtt, type TestClient } from '../support/mqtt-client.js'
import { RawMqtt } from '../support/mqtt-raw.js'
import { eventually } from '../support/telemetry.js'
import { OpenDevices, type RawDevice } from '../support/ws.js'

const READER_TOKEN = 'reader-token-0123456789abcdef'
/** The hard bound on what is queued for one client (`FLEETGATE_MQTT_MAX_BACKLOG`), far below what the devices send. */
const MAX_BACKLOG_BYTES = 4 * 1024 * 1024
const DEVICES = 4
const FRAMES = 750
const READINGS = 40
/** A device that waits this long for an ack has been stalled: the old hub held them 30 s (aedes's drain timeout). */
const ACK_WAIT_MS = 5000

/**
 * A frame of 40 readings, about 10 KB as MQTT JSON: 3,000 of them are 30 MB, well past any kernel
 * buffer, and a commit of every device's window (256 frames) is 2.5 MB, under the hard bound.
 */
const frame = (s: number): BatchFrame => ({
  t: 'tb',
  s,
  r: Array.from({ length: READINGS }, (_, i) => ({ ts: 1_700_000_000_000 + s * READINGS + i, m: { v: i, pad: 'x'.repeat(200) } })),
})

/** The largest telemetry message the hub publishes in this test, in bytes (payload and topic). */
const MAX_MESSAGE_BYTES =
  Buffer.byteLength(JSON.stringify({ device: 'slow-0', seq: FRAMES, readings: frame(FRAMES).r })) + 'fleetgate/devices/slow-0/telemetry'.length + 16

/** Sends every frame, keeping the window of 64 full; fails when an ack takes longer than ACK_WAIT_MS. */
async function sendAll(ws: RawDevice): Promise<void> {
  let sent = 0
  let acked = 0
  while (acked < FRAMES) {
    while (sent - acked < 64 && sent < FRAMES) ws.send(frame(++sent))
    const answer = await ws.next(ACK_WAIT_MS).catch((err: unknown) => {
      throw new Error(`acks stalled at ${acked} of ${sent} sent`, { cause: err })
    })
    if (answer.t !== 'ack') throw new Error(`unexpected ${JSON.stringify(answer)}`)
    acked = answer.s
  }
}

const FIGURES = [
  'fleetgate_mqtt_disconnects_total{reason="backlog_full"}',
  'fleetgate_mqtt_disconnects_total{reason="backlog_slow"}',
  'fleetgate_mqtt_clients',
  'fleetgate_mqtt_pending_publishes',
  'fleetgate_mqtt_backlog_bytes',
] as const

/**
 * Issue 10: one `reader` subscribed to `fleetgate/#` that stops reading once held every device's
 * acks (egress back-pressure waited on the slowest client). The lowest scope must not buy a
 * fleet-wide stall: the reader is cut past its backlog bound, and nobody else waits on it.
 */
describe('a subscriber that stops reading', () => {
  let hub: TestHub
  let good: TestClient
  const dir = tempDir()
  const devices = new OpenDevices()

  beforeAll(async () => {
    const tokens = writeTokensFile(dir.path, { rita: { scope: 'reader', token: READER_TOKEN } })
    hub = await startTestHub(
      {
        FLEETGATE_MQTT_PORT: '0',
        FLEETGATE_DEVICE_RATE: '10000',
        FLEETGATE_TOKENS_FILE: tokens,
        FLEETGATE_MQTT_MAX_BACKLOG: String(MAX_BACKLOG_BYTES),
        // Only the hard bound may cut the reader here; the soft bound and its time have their own
        // test in the bridge.
        FLEETGATE_MQTT_SOFT_BACKLOG: String(MAX_BACKLOG_BYTES),
        FLEETGATE_MQTT_SOFT_BACKLOG_SEC: '3600',
      },
      undefined,
      // A low high-water mark makes a fleet-wide stall show with a few hundred messages; it does
      // not change who can cause one.
      { mqttHighWater: 20 },
    )
  })
  afterAll(async () => {
    devices.closeAll()
    await good?.stop()
    await hub?.stop()
    dir.cleanup()
  })

  it('keeps acking every device, cuts the reader past its bound, and delivers everything to a subscriber that reads', async () => {
    const port = hub.hub.ports.mqtt as number
    const stalled = await RawMqtt.session(port, READER_TOKEN, 'stalled-reader')
    expect(await stalled.subscribe('fleetgate/#')).toEqual([1])
    stalled.stopReading()
    good = await connectMqtt(`mqtt://127.0.0.1:${port}`, { username: 'good', password: READER_TOKEN })
    expect(await good.subscribe('fleetgate/devices/+/telemetry', { qos: 1 })).toEqual([1])
    const sockets = await Promise.all(
      Array.from({ length: DEVICES }, async (_, i) => devices.connect(hub.wsUrl, await hub.provision(`slow-${i}`))),
    )

    // What the hub holds for its most backlogged MQTT client, sampled while the devices send.
    let peakBacklog = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        peakBacklog = Math.max(peakBacklog, await hubMetric(hub.base, 'fleetgate_mqtt_backlog_largest_bytes'))
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    try {
      await Promise.all(sockets.map(sendAll))
    } finally {
      sampling = false
      await sampler
    }

    const telemetry = (): string[] => good.received.filter((m) => m.topic.endsWith('/telemetry')).map((m) => m.payload.toString())
    await eventually(() => telemetry().length, (n) => n >= DEVICES * FRAMES, 20_000)
    const seen = telemetry().map((json) => {
      const message = JSON.parse(json) as { device: string; seq: number }
      return `${message.device}/${message.seq}`
    })
    expect(new Set(seen).size).toBe(DEVICES * FRAMES)
    expect(seen).toHaveLength(DEVICES * FRAMES)

    const settled = await eventually(
      () => hubMetrics(hub.base, FIGURES),
      (f) => f['fleetgate_mqtt_pending_publishes'] === 0 && f['fleetgate_mqtt_backlog_bytes'] === 0,
      10_000,
    )
    expect(settled).toEqual({
      'fleetgate_mqtt_disconnects_total{reason="backlog_full"}': 1,
      'fleetgate_mqtt_disconnects_total{reason="backlog_slow"}': 0,
      'fleetgate_mqtt_clients': 1,
      'fleetgate_mqtt_pending_publishes': 0,
      'fleetgate_mqtt_backlog_bytes': 0,
    })
    // The bound is checked before each write, so at most one message more than it was ever held.
    expect(peakBacklog).toBeLessThanOrEqual(MAX_BACKLOG_BYTES + MAX_MESSAGE_BYTES)

    // The hub closed the reader's connection: once it reads again, it gets what was sent, then the end.
    stalled.socket.resume()
    await stalled.closed
  }, 90_000)
})
