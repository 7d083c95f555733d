import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BatchFrame } from '@fleetgate/device-sdk/wire'
import { startTestHub, type TestHub } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { countPoints, eventually } from './support/telemetry.js'
import { OpenDevices, type RawDevice } from './support/ws.js'

/** A `tb` frame of 500 readings, with times from its seq. */
const frame = (s: number): BatchFrame => ({
  t: 'tb',
  s,
  r: Array.from({ length: 500 }, (_, i) => ({ ts: 1_700_000_000_000 + s * 500 + i, m: { value: i, padding: 'x'.repeat(40) } })),
})

/**
 * Sends frames up to `max`, keeping the window of 64 full, until no ack comes for a second;
 * returns how many were sent and the highest seq acked by then.
 */
async function sendUntilStalled(ws: RawDevice, max: number): Promise<{ sent: number; acked: number; stalled: boolean }> {
  let sent = 0
  let acked = 0
  for (;;) {
    while (sent - acked < 64 && sent < max) ws.send(frame(++sent))
    let answer
    try {
      answer = await ws.next(1000)
    } catch {
      // Only silence counts as a stall; anything else the hub says fails the test below.
      return { sent, acked, stalled: true }
    }
    if (answer.t !== 'ack') throw new Error(`unexpected ${JSON.stringify(answer)}`)
    acked = answer.s
    if (acked === max) return { sent, acked, stalled: false }
  }
}

describe('back-pressure from an InfluxDB that answers but lags', () => {
  let influx: Influxd
  let hub: TestHub
  const devices = new OpenDevices()
  const db = 'fleetgate_lag'

  beforeAll(async () => {
    influx = await startInfluxd()
    hub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: db, FLEETGATE_DEVICE_RATE: '10000' }, undefined, {
      influxLagHighWater: 5000,
    })
  })
  afterAll(async () => {
    devices.closeAll()
    await hub?.stop()
    await influx?.destroy()
  })

  it('stops acking once InfluxDB is the bound behind, and lands and acks everything when it catches up', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('firehose'))
    // A stopped influxd keeps its socket open: writes hang, as on an InfluxDB slower than the devices.
    influx.pause()
    const { sent, acked, stalled } = await sendUntilStalled(ws, 2000)
    expect(stalled).toBe(true)
    // The bound plus at most the commits under way went past InfluxDB: here the first commit,
    // which took the device's whole window (64 frames of 500) before anything had landed.
    expect(acked * 500).toBeGreaterThanOrEqual(5000)
    expect(acked * 500).toBeLessThan(5000 + 64 * 500)

    influx.resume()
    const rest = await ws.untilAck(sent, 20_000)
    expect(rest.every((f) => f.t === 'ack')).toBe(true)
    expect(await eventually(() => countPoints(influx, db, 'value'), (n) => n === sent * 500, 20_000)).toBe(sent * 500)
  }, 60_000)
})
