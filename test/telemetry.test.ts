import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Encoder } from 'cbor-x'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Reading } from '@fleetgate/device-sdk'
import { startTestHub, type TestHub } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { connectMqtt, type TestClient } from './support/mqtt-client.js'
import { ADMIN_TOKEN } from './support/hub.js'
import { countPoints, eventually, rows } from './support/telemetry.js'
import { OpenDevices, type Credentials, type RawDevice } from './support/ws.js'

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })

describe('telemetry: spool, acks, InfluxDB and MQTT (docs/protocol.md, docs/telemetry.md, docs/mqtt.md)', () => {
  let influx: Influxd
  let hub: TestHub
  let subscriber: TestClient
  const db = 'fleetgate_test'

  const devices = new OpenDevices()
  const provision = (id: string, tags: Record<string, string> = {}): Promise<Credentials> => hub.provision(id, { tags })
  const connect = (device: Credentials): Promise<RawDevice> => devices.connect(hub.wsUrl, device)

  const telemetryMessages = (device: string): Array<{ device: string; seq: number; readings: Reading[] }> =>
    subscriber.on(`fleetgate/devices/${device}/telemetry`).map((m) => JSON.parse(m.payload.toString()))

  beforeAll(async () => {
    influx = await startInfluxd()
    hub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: db, FLEETGATE_MQTT_PORT: '0' }, undefined, {
      hubStatsIntervalMs: 200,
    })
    subscriber = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'test', password: ADMIN_TOKEN })
    expect(await subscriber.subscribe('fleetgate/devices/+/telemetry', { qos: 1 })).toEqual([1])
  })
  afterEach(() => devices.closeAll())
  afterAll(async () => {
    await subscriber?.stop()
    await hub?.stop()
    await influx?.destroy()
  })

  it('stores N readings from tm and tb frames: N acked, N points with registry tags, N readings on MQTT', async () => {
    const device = await provision('counter-1', { site: 'lyon', floor: '2' })
    const ws = await connect(device)
    const base = Date.now() - 60_000
    let n = 0
    for (let s = 1; s <= 30; s++) ws.send({ t: 'tm', s, ts: base + n, m: { n: n++, temp: 21.5, on: true, mode: 'eco' } })
    for (let s = 31; s <= 36; s++) {
      ws.send({ t: 'tb', s, r: Array.from({ length: 50 }, () => ({ ts: base + n, m: { n: n++ }, g: { zone: 'a' } })) })
    }
    const seen = await ws.untilAck(36)
    expect(seen.every((frame) => (frame as { t: string }).t === 'ack')).toBe(true)
    expect(n).toBe(330)

    expect(await eventually(() => countPoints(influx, db, 'n', `"device" = 'counter-1'`), (c) => c === 330)).toBe(330)
    const [first] = await rows(influx, `SELECT * FROM "telemetry" WHERE "device" = 'counter-1' ORDER BY time ASC LIMIT 1`, db)
    expect(first).toEqual({ time: base, device: 'counter-1', site: 'lyon', floor: '2', zone: null, n: 0, temp: 21.5, on: true, mode: 'eco' })
    const [batched] = await rows(influx, `SELECT * FROM "telemetry" WHERE "zone" = 'a' ORDER BY time ASC LIMIT 1`, db)
    expect(batched).toMatchObject({ time: base + 30, device: 'counter-1', site: 'lyon', zone: 'a', n: 30 })

    const messages = await eventually(() => telemetryMessages('counter-1'), (m) => m.length === 36)
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: 36 }, (_, i) => i + 1))
    expect(messages.flatMap((m) => m.readings).map((r) => r.m['n'])).toEqual(Array.from({ length: 330 }, (_, i) => i))
    expect(messages[0]).toEqual({ device: 'counter-1', seq: 1, readings: [{ ts: base, m: { n: 0, temp: 21.5, on: true, mode: 'eco' } }] })
  })

  it('stamps a tm reading without ts with the hub receive time, and writes integers as floats', async () => {
    const ws = await connect(await provision('no-ts'))
    const before = Date.now()
    ws.send({ t: 'tm', s: 1, m: { v: 21 } })
    await ws.untilAck(1)
    ws.send({ t: 'tm', s: 2, ts: before + 5000, m: { v: 21.5 } })
    await ws.untilAck(2)
    const points = await eventually(() => rows(influx, `SELECT "v" FROM "telemetry" WHERE "device" = 'no-ts'`, db), (r) => r.length === 2)
    expect(points.map((p) => p['v'])).toEqual([21, 21.5])
    expect(points[0]?.['time'] as number).toBeGreaterThanOrEqual(before)
    expect(points[0]?.['time'] as number).toBeLessThanOrEqual(Date.now())
    const types = await rows(influx, `SHOW FIELD KEYS FROM "telemetry"`, db)
    expect(types.find((t) => t['fieldKey'] === 'v')?.['fieldType']).toBe('float')
  })

  it('naks invalid, out-of-order and over-window frames with their reasons, and keeps the session', async () => {
    const ws = await connect(await provision('naked'))
    const bystander = await connect(await provision('naked-bystander'))
    const ts = Date.now()
    ws.sendRaw(cbor.encode({ t: 'tm', s: 1, ts, m: {} }))
    expect(await ws.next()).toEqual({ t: 'nak', s: 1, e: 'invalid' })
    ws.sendRaw(cbor.encode({ t: 'tm', s: 2, ts, m: { bad: Number.NaN } }))
    expect(await ws.next()).toEqual({ t: 'nak', s: 2, e: 'invalid' })
    ws.sendRaw(cbor.encode({ t: 'tb', s: 3, r: Array.from({ length: 501 }, (_, i) => ({ ts: ts + i, m: { a: 1 } })) }))
    expect(await ws.next()).toEqual({ t: 'nak', s: 3, e: 'invalid' })
    // A naked frame's s counts as seen: s must still grow.
    ws.send({ t: 'tm', s: 3, ts, m: { a: 0 } })
    expect(await ws.next()).toEqual({ t: 'nak', s: 3, e: 'seq' })
    ws.send({ t: 'tm', s: 10, ts, m: { a: 1 } })
    expect(await ws.next()).toEqual({ t: 'ack', s: 10 })
    ws.send({ t: 'tm', s: 10, ts: ts + 1, m: { a: 2 } })
    expect(await ws.next()).toEqual({ t: 'nak', s: 10, e: 'seq' })
    ws.send({ t: 'tm', s: 9, ts: ts + 2, m: { a: 3 } })
    expect(await ws.next()).toEqual({ t: 'nak', s: 9, e: 'seq' })

    // 70 frames in one burst: the window holds 64 unacked, the rest are refused.
    for (let s = 11; s <= 80; s++) ws.send({ t: 'tm', s, ts: ts + s, m: { a: s } })
    const answers: Array<{ t: string; s: number; e?: string }> = []
    while (!answers.some((a) => a.t === 'ack' && a.s >= 74)) answers.push((await ws.next()) as { t: string; s: number })
    const naks = answers.filter((a) => a.t === 'nak')
    expect(naks).toEqual([75, 76, 77, 78, 79, 80].map((s) => ({ t: 'nak', s, e: 'too_many' })))

    bystander.send({ t: 'tm', s: 1, ts, m: { ok: 1 } })
    expect(await bystander.next()).toEqual({ t: 'ack', s: 1 })
    expect(ws.ws.readyState).toBe(1)
    expect(await eventually(() => countPoints(influx, db, 'a', `"device" = 'naked'`), (c) => c === 65)).toBe(65)
  })

  it('dead-letters a point InfluxDB refuses for good and still lands the later ones', async () => {
    const ws = await connect(await provision('conflict'))
    const ts = Date.now() - 10_000
    ws.send({ t: 'tm', s: 1, ts, m: { kind: 1.5 } })
    await ws.untilAck(1)
    await eventually(() => countPoints(influx, db, 'kind', `"device" = 'conflict'`), (c) => c === 1)
    ws.send({ t: 'tb', s: 2, r: [{ ts: ts + 1, m: { kind: 'text' } }, { ts: ts + 2, m: { kind: 2.5 } }] })
    ws.send({ t: 'tm', s: 3, ts: ts + 3, m: { kind: 3.5 } })
    await ws.untilAck(3)
    expect(await eventually(() => countPoints(influx, db, 'kind', `"device" = 'conflict'`), (c) => c === 3)).toBe(3)
    const deadLetters = await eventually(
      () => {
        try {
          return readFileSync(join(hub.dataDir, 'influx-dead-letter.jsonl'), 'utf8').trim().split('\n')
        } catch {
          return []
        }
      },
      (lines) => lines.length >= 1,
    )
    expect(deadLetters).toHaveLength(1)
    const entry = JSON.parse(deadLetters[0] as string) as { device: string; reason: string; message: string; line: string }
    expect(entry.line).toBe(`telemetry,device=conflict kind="text" ${ts + 1}`)
    expect([entry.device, entry.reason]).toStrictEqual(['conflict', 'influx_refused'])
    expect(entry.message).toMatch(/field type conflict/)
    const metrics = await (await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()
    expect(metrics).toMatch(/^fleetgate_influx_dead_letters_total\{reason="influx_refused"\} 1$/m)
  })

  it('keeps acknowledging while InfluxDB is down, answers /readyz 503, and lands everything once it is back', async () => {
    const ws = await connect(await provision('outage'))
    const ts = Date.now() - 5000
    await influx.stop()
    for (let s = 1; s <= 100; s++) {
      ws.send({ t: 'tm', s, ts: ts + s, m: { o: s } })
      // Stay inside the window of 64 unacked frames.
      if (s % 50 === 0) await ws.untilAck(s)
    }
    const ready = await fetch(`${hub.base}/readyz`)
    expect(ready.status).toBe(503)
    expect(((await ready.json()) as { checks: Record<string, string> }).checks['influxdb']).toBe('unreachable')
    await influx.restart()
    expect(await eventually(() => countPoints(influx, db, 'o', `"device" = 'outage'`), (c) => c === 100, 60_000)).toBe(100)
    // The InfluxDB probe is cached for 1 s, so readiness returns within a second or two.
    expect(await eventually(async () => (await fetch(`${hub.base}/readyz`)).status, (status) => status === 200)).toBe(200)
  }, 90_000)

  it('writes its own figures to fleetgate_hub', async () => {
    const figures = await eventually(() => rows(influx, `SELECT * FROM "fleetgate_hub" ORDER BY time DESC LIMIT 1`, db), (r) => r.length === 1)
    const latest = figures[0] as Record<string, unknown>
    expect(typeof latest['hub']).toBe('string')
    for (const field of ['connections', 'frames', 'readings', 'acks', 'naks', 'spool_bytes', 'influx_write_errors', 'rss_bytes']) {
      expect(typeof latest[field], field).toBe('number')
    }
    expect(latest['readings'] as number).toBeGreaterThanOrEqual(330)
  })

  it('serves a device\'s points through the telemetry API with every parameter validated', async () => {
    const ws = await connect(await provision('queried'))
    const base = Date.parse('2026-11-01T00:00:00.000Z')
    ws.send({ t: 'tb', s: 1, r: Array.from({ length: 10 }, (_, i) => ({ ts: base + i * 1000, m: { a: i, b: i * 2, label: `n${i}` } })) })
    await ws.untilAck(1)
    await eventually(() => countPoints(influx, db, 'a', `"device" = 'queried'`), (c) => c === 10)

    const path = '/api/v1/devices/queried/telemetry'
    const all = await hub.api('GET', `${path}?from=2026-11-01T00:00:00Z&to=2026-11-01T01:00:00Z`)
    expect(all.status).toBe(200)
    expect(all.body.device).toBe('queried')
    expect(all.body.points).toHaveLength(10)
    expect(all.body.points[3]).toEqual({ ts: '2026-11-01T00:00:03.000Z', a: 3, b: 6, label: 'n3' })

    const some = await hub.api('GET', `${path}?from=2026-11-01T00:00:02Z&to=2026-11-01T00:00:05Z&metrics=b&limit=2`)
    expect(some.body.points).toEqual([
      { ts: '2026-11-01T00:00:02.000Z', b: 4 },
      { ts: '2026-11-01T00:00:03.000Z', b: 6 },
    ])
    // The default window is the last hour: these points are older.
    expect((await hub.api('GET', path)).body.points).toEqual([])

    for (const bad of [
      'from=yesterday',
      'from=2026-11-01',
      'from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z',
      `metrics=${encodeURIComponent('a" OR 1=1 --')}`,
      `metrics=${encodeURIComponent("a FROM x; DROP DATABASE fleetgate_test")}`,
      'limit=0',
      'limit=10001',
    ]) {
      const answer = await hub.api('GET', `${path}?${bad}`)
      expect(answer.status, bad).toBe(400)
      expect(answer.body.error, bad).toBe('invalid')
    }
    expect((await hub.api('GET', '/api/v1/devices/nobody/telemetry')).status).toBe(404)
    expect(await countPoints(influx, db, 'a', `"device" = 'queried'`)).toBe(10)
  })
})
