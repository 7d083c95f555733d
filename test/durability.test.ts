import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BatchFrame } from '@fleetgate/device-sdk/wire'
import { api, startHubProcess, stopHubProcess, tempDir, testEnv, type HubProcess } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { countPoints, eventually } from './support/telemetry.js'
import { connectDevice, type Credentials, type RawDevice } from './support/ws.js'

/**
 * CONTRACT §3 "durable": an acknowledged reading survives a kill -9 of the hub and reaches
 * InfluxDB once, and a device's resends after the restart land on the same points.
 */
describe('durability across a SIGKILL of the hub', () => {
  let influx: Influxd
  const data = tempDir()
  const db = 'durability'
  let hub: HubProcess | undefined

  beforeAll(async () => {
    influx = await startInfluxd()
  })
  afterAll(async () => {
    if (hub !== undefined) await stopHubProcess(hub)
    await influx?.destroy()
    data.cleanup()
  })

  it('keeps every acknowledged reading and lands resends without duplicates', async () => {
    const env = testEnv(data.path, { FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: db })
    hub = await startHubProcess(env)
    const created = await api(hub.base, 'POST', '/api/v1/devices', { id: 'survivor' })
    const device: Credentials = { deviceId: 'survivor', keyType: 'hmac', key: created.body.key }

    const frames: BatchFrame[] = Array.from({ length: 200 }, (_, i) => ({
      t: 'tb',
      s: i + 1,
      r: Array.from({ length: 50 }, (_, j) => ({ ts: 1_700_000_000_000 + i * 50 + j, m: { k: i * 50 + j } })),
    }))
    let acked = 0
    const ws: RawDevice = await connectDevice(hub.wsUrl, device)
    await ws.opening()
    // Send with the window full, and kill the hub while frames are in flight.
    let sent = 0
    const pump = (): void => {
      while (sent < frames.length && sent - acked < 32) ws.send(frames[sent++] as BatchFrame)
    }
    pump()
    while (acked < 60) {
      const frame = await ws.next()
      if (frame.t === 'ack') acked = frame.s
      pump()
    }
    await stopHubProcess(hub, 'SIGKILL')
    await ws.closed
    // Every ack the device saw before the kill is durable.
    const ackedBeforeKill = Math.max(acked, ...ws.frames.filter((f) => f.t === 'ack').map((f) => (f.t === 'ack' ? f.s : 0)))
    expect(ackedBeforeKill).toBeGreaterThanOrEqual(60)
    expect(sent).toBeGreaterThan(ackedBeforeKill)

    hub = await startHubProcess(env)
    expect(
      await eventually(() => countPoints(influx, db, 'k'), (count) => count >= ackedBeforeKill * 50, 30_000),
    ).toBeGreaterThanOrEqual(ackedBeforeKill * 50)

    // The device resends everything not acked, with the same seq and ts, then the rest.
    const again = await connectDevice(hub.wsUrl, device)
    await again.opening()
    let next = ackedBeforeKill
    let lastAck = ackedBeforeKill
    while (lastAck < frames.length) {
      while (next < frames.length && next - lastAck < 32) again.send(frames[next++] as BatchFrame)
      const frame = await again.next()
      if (frame.t === 'ack') lastAck = frame.s
      else throw new Error(`unexpected ${JSON.stringify(frame)}`)
    }
    expect(await eventually(() => countPoints(influx, db, 'k'), (count) => count === 10_000, 30_000)).toBe(10_000)
    again.close()
  }, 120_000)
})
