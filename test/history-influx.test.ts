import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DeviceFrame, Reading } from '@fleetgate/device-sdk/wire'
import { startTestHub, type TestHub } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { countPoints, eventually } from './support/telemetry.js'
import { OpenDevices, type RawDevice } from './support/ws.js'

const HOUR = 3_600_000
const DB = 'history_equal'
const DEVICE = 'twin-feed'

/**
 * docs/rest.md, docs/telemetry.md: the telemetry API answers the same from InfluxDB and from the embedded history.
 * The same frames go to a hub that ships to a real influxd and to a hub that keeps the history; every
 * query is asked of both and the answers must be equal, raw and for each `fn`. Values are multiples
 * of 1/4, so that every sum (and so every mean) is exact whatever order each back end adds in.
 */
describe('one telemetry query, two back ends (InfluxDB and the history)', () => {
  let influx: Influxd
  let viaInflux: TestHub
  let viaHistory: TestHub
  const devices = new OpenDevices()
  /** Three hours back from an hour boundary, so that intervals cross hours. */
  const base = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR
  let points = 0

  /** Sends frames to both hubs in order, each acked before the next. */
  const feed = async (sockets: readonly RawDevice[], frames: readonly DeviceFrame[]): Promise<void> => {
    for (const ws of sockets) {
      for (const frame of frames) {
        ws.send(frame)
        if (frame.t === 'tm' || frame.t === 'tb') await ws.untilAck(frame.s)
      }
    }
  }

  beforeAll(async () => {
    influx = await startInfluxd()
    viaInflux = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
    viaHistory = await startTestHub()
    const sockets = await Promise.all(
      [viaInflux, viaHistory].map(async (hub) => devices.connect(hub.wsUrl, await hub.provision(DEVICE, { tags: { site: 'lyon' } }))),
    )
    const frames: DeviceFrame[] = []
    let s = 0
    // 3 hours at one reading every 20 s, in batches: a number, a text and a bool, some with tags.
    for (let batch = 0; batch < 27; batch++) {
      frames.push({
        t: 'tb',
        s: ++s,
        r: Array.from({ length: 20 }, (_, i): Reading => {
          const n = batch * 20 + i
          const ts = base + n * 20_000 + (n % 7)
          return n % 5 === 0
            ? { ts, m: { temp: (n % 40) * 0.25 - 3, mode: n % 3 === 0 ? 'eco' : 'boost' }, g: { sensor: n % 10 === 0 ? 'a' : 'b' } }
            : { ts, m: { temp: (n % 37) * 0.5, hum: 40 + (n % 9), on: n % 2 === 0 } }
        }),
      })
    }
    // Single readings, one out of order, and one without a `hum`.
    frames.push({ t: 'tm', s: ++s, ts: base + 5, m: { temp: 99, hum: 1 } })
    frames.push({ t: 'tm', s: ++s, ts: base + 3 * HOUR - 1, m: { temp: -1 } })
    points = 27 * 20 + 2
    await feed(sockets, frames)
    await eventually(() => countPoints(influx, DB, 'temp'), (n) => n === points, 30_000)
    // A resend of a point (same ts and tags) with one field changed and one added: both merge it
    // into the same point, the later write winning. Sent once InfluxDB holds the first write.
    await feed(sockets, [{ t: 'tm', s: ++s, ts: base + 5, m: { temp: 98, extra: 0.5 } }])
    await eventually(() => countPoints(influx, DB, 'extra'), (n) => n === 1, 30_000)
  }, 60_000)
  afterAll(async () => {
    devices.closeAll()
    await viaInflux?.stop()
    await viaHistory?.stop()
    await influx?.destroy()
  })

  const both = async (query: string): Promise<[unknown, unknown]> => {
    const path = `/api/v1/devices/${DEVICE}/telemetry?${query}`
    const [a, b] = await Promise.all([viaInflux.api('GET', path), viaHistory.api('GET', path)])
    expect([a.status, b.status], query).toEqual([200, 200])
    return [a.body, b.body]
  }
  const iso = (ms: number): string => new Date(ms).toISOString()
  const range = `from=${iso(base)}&to=${iso(base + 3 * HOUR)}`

  it('answers raw queries alike: every point, metrics chosen, a window, a limit', async () => {
    const [all, fromHistory] = await both(`${range}&limit=10000`)
    expect(fromHistory).toEqual(all)
    expect((all as { points: unknown[] }).points).toHaveLength(points)
    expect((all as { points: unknown[] }).points.slice(0, 2)).toEqual([
      { ts: iso(base), temp: -3, mode: 'eco' },
      { ts: iso(base + 5), temp: 98, hum: 1, extra: 0.5 },
    ])
    for (const query of [
      `${range}&metrics=hum,mode&limit=10000`,
      `${range}&metrics=on`,
      `from=${iso(base + HOUR + 7)}&to=${iso(base + HOUR + 600_000)}`,
      `${range}&limit=37`,
      `from=${iso(base + 2 * HOUR)}&metrics=temp&limit=50`,
    ]) {
      const [a, b] = await both(query)
      expect(b, query).toEqual(a)
      expect(JSON.stringify(b), query).toBe(JSON.stringify(a))
    }
  })

  it.each(['mean', 'min', 'max', 'last', 'count'])('answers fn=%s alike, for several intervals, metrics and limits', async (fn) => {
    for (const query of [
      `${range}&every=10m&fn=${fn}`,
      `${range}&every=1h&fn=${fn}`,
      `${range}&every=7m&fn=${fn}&metrics=temp,mode`,
      `from=${iso(base + 1234)}&to=${iso(base + HOUR + 999)}&every=90s&fn=${fn}&metrics=on,hum&limit=5`,
      `${range}&every=1d&fn=${fn}`,
    ]) {
      const [a, b] = await both(query)
      expect((a as { points: unknown[] }).points.length, query).toBeGreaterThan(0)
      expect(b, query).toEqual(a)
      expect(JSON.stringify(b), query).toBe(JSON.stringify(a))
    }
  })

  it('answers `every` without `fn` as the mean, and refuses the same bad parameters with the same 400', async () => {
    const [a, b] = await both(`${range}&every=30m`)
    expect(b).toEqual(a)
    expect(JSON.stringify((await both(`${range}&every=30m&fn=mean`))[0])).toBe(JSON.stringify(a))
    for (const query of ['every=0s', 'every=31d', 'every=5x', 'every=1h&fn=median', 'fn=max', 'metrics=temp,temp', 'limit=0']) {
      const path = `/api/v1/devices/${DEVICE}/telemetry?${query}`
      const [x, y] = await Promise.all([viaInflux.api('GET', path), viaHistory.api('GET', path)])
      expect(x.status, query).toBe(400)
      expect(y, query).toEqual(x)
    }
  })
})
