import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BatchFrame } from '@fleetgate/device-sdk/wire'
import { api, startHubProcess, startTestHub, stopHubProcess, tempDir, testEnv, type HubProcess } from './support/hub.js'
import { hubMetric } from './support/hostile.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { countPoints, eventually } from './support/telemetry.js'
import { connectDevice, type Credentials, type RawDevice } from './support/ws.js'

const FRAMES = 200
const PER_FRAME = 50

/** Frames of 50 readings; reading `k` has ts base + k and the metric k. */
const frames: BatchFrame[] = Array.from({ length: FRAMES }, (_, i) => ({
  t: 'tb',
  s: i + 1,
  r: Array.from({ length: PER_FRAME }, (_, j) => ({ ts: 1_700_000_000_000 + i * PER_FRAME + j, m: { k: i * PER_FRAME + j } })),
}))

/** Sends frames with up to 32 unacked, and kills the hub once 60 are acked; returns the highest ack seen and the frames sent. */
async function sendAndKill(hub: HubProcess, device: Credentials): Promise<{ acked: number; sent: number }> {
  let acked = 0
  const ws: RawDevice = await connectDevice(hub.wsUrl, device)
  await ws.opening()
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
  // Every ack the device saw before the kill counts.
  return { acked: Math.max(acked, ...ws.frames.filter((f) => f.t === 'ack').map((f) => (f.t === 'ack' ? f.s : 0))), sent }
}

/** The device resends everything after `from` (same seq and ts), then the rest, until all are acked. */
async function resendRest(hub: HubProcess, device: Credentials, from: number): Promise<void> {
  const again = await connectDevice(hub.wsUrl, device)
  await again.opening()
  let next = from
  let lastAck = from
  while (lastAck < frames.length) {
    while (next < frames.length && next - lastAck < 32) again.send(frames[next++] as BatchFrame)
    const frame = await again.next()
    if (frame.t === 'ack') lastAck = frame.s
    else throw new Error(`unexpected ${JSON.stringify(frame)}`)
  }
  again.close()
}

/**
 * docs/protocol.md "durable": an acknowledged reading survives a kill -9 of the hub and reaches
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

    const { acked: ackedBeforeKill, sent } = await sendAndKill(hub, device)
    expect(ackedBeforeKill).toBeGreaterThanOrEqual(60)
    expect(sent).toBeGreaterThan(ackedBeforeKill)

    hub = await startHubProcess(env)
    expect(
      await eventually(() => countPoints(influx, db, 'k'), (count) => count >= ackedBeforeKill * 50, 30_000),
    ).toBeGreaterThanOrEqual(ackedBeforeKill * 50)

    await resendRest(hub, device, ackedBeforeKill)
    expect(await eventually(() => countPoints(influx, db, 'k'), (count) => count === 10_000, 30_000)).toBe(10_000)
  }, 120_000)
})

/**
 * docs/telemetry.md: with no InfluxDB, the embedded history holds every acknowledged reading, written in
 * the commit that acked it: a kill -9 loses none, and resends after the restart are the same points.
 */
describe('the history across a SIGKILL of the hub (no InfluxDB)', () => {
  const data = tempDir()
  let hub: HubProcess | undefined
  afterAll(async () => {
    if (hub !== undefined) await stopHubProcess(hub)
    data.cleanup()
  })

  /** The metric `k` of every point the telemetry API answers, in order. */
  const stored = async (base: string): Promise<number[]> => {
    const query = `from=${new Date(1_700_000_000_000).toISOString()}&to=${new Date(1_700_000_000_000 + 20_000).toISOString()}&limit=10000`
    const answer = await api(base, 'GET', `/api/v1/devices/survivor/telemetry?${query}`)
    expect(answer.status).toBe(200)
    return (answer.body.points as Array<{ k: number }>).map((point) => point.k)
  }

  it('keeps every acknowledged reading in the history, and resends make no duplicates', async () => {
    // The readings are from 2023: a retention that keeps them.
    const env = testEnv(data.path, { FLEETGATE_HISTORY_RETENTION: '3650d' })
    hub = await startHubProcess(env)
    const created = await api(hub.base, 'POST', '/api/v1/devices', { id: 'survivor' })
    const device: Credentials = { deviceId: 'survivor', keyType: 'hmac', key: created.body.key }
    const { acked, sent } = await sendAndKill(hub, device)
    expect(sent).toBeGreaterThan(acked)

    hub = await startHubProcess(env)
    const afterKill = await stored(hub.base)
    // Every acked reading, each once, in order; frames committed but not acked yet may be there too.
    expect(afterKill.slice(0, acked * PER_FRAME)).toEqual(Array.from({ length: acked * PER_FRAME }, (_, k) => k))
    expect(new Set(afterKill).size).toBe(afterKill.length)
    expect(afterKill.length).toBeLessThanOrEqual(sent * PER_FRAME)

    await resendRest(hub, device, acked)
    expect(await stored(hub.base)).toEqual(Array.from({ length: FRAMES * PER_FRAME }, (_, k) => k))
  }, 120_000)
})

/**
 * A spool that a run with InfluxDB left behind (InfluxDB away, say) moves into the history when the
 * hub starts again without InfluxDB: nothing waits for a shipper that no longer exists.
 */
describe('a spool left by an earlier run, at a start without InfluxDB', () => {
  const data = tempDir()
  afterAll(() => data.cleanup())

  it('moves into the history and leaves the spool empty', async () => {
    const now = Date.now()
    const readings = Array.from({ length: 1200 }, (_, k) => ({ ts: now - 600_000 + k, m: { k } }))
    // InfluxDB configured and unreachable: acked frames wait in the spool.
    let hub = await startTestHub({ FLEETGATE_INFLUX_URL: 'http://127.0.0.1:9' }, data.path)
    try {
      const ws = await connectDevice(hub.wsUrl, await hub.provision('left-behind'))
      await ws.opening()
      for (let s = 1; s <= 3; s++) {
        ws.send({ t: 'tb', s, r: readings.slice((s - 1) * 400, s * 400) })
        await ws.untilAck(s)
      }
      ws.close()
      expect(await hubMetric(hub.base, 'fleetgate_spool_bytes')).toBeGreaterThan(0)
    } finally {
      await hub.stop()
    }
    hub = await startTestHub({}, data.path)
    try {
      const stored = async (): Promise<number[]> =>
        ((await hub.api('GET', `/api/v1/devices/left-behind/telemetry?from=${new Date(now - 600_000).toISOString()}&limit=10000`)).body.points as Array<{ k: number }>).map((p) => p.k)
      expect(await eventually(stored, (ks) => ks.length === 1200)).toEqual(readings.map((r) => r.m.k))
      expect(await eventually(() => hubMetric(hub.base, 'fleetgate_spool_bytes'), (bytes) => bytes === 0)).toBe(0)
    } finally {
      await hub.stop()
    }
  })
})
