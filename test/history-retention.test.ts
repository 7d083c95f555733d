import { afterEach, describe, expect, it } from 'vitest'
import type { Reading } from '@fleetgate/device-sdk'
import { startTestHub, type TestHub } from './support/hub.js'
import { hubMetrics } from './support/hostile.js'
import { eventually } from './support/telemetry.js'
import { OpenDevices, type RawDevice } from './support/ws.js'

const HOUR = 3_600_000

/** docs/configuration.md, docs/telemetry.md: FLEETGATE_HISTORY_RETENTION and FLEETGATE_HISTORY_MAX_BYTES, the oldest readings first out, counted. */
describe('history retention', () => {
  const devices = new OpenDevices()
  const hubs: TestHub[] = []
  const start = async (env: Record<string, string>): Promise<TestHub> => {
    const hub = await startTestHub({ FLEETGATE_DEVICE_RATE: '1000', ...env }, undefined, { history: { upkeepIntervalMs: 20 } })
    hubs.push(hub)
    return hub
  }
  afterEach(async () => {
    devices.closeAll()
    for (const hub of hubs.splice(0)) await hub.stop()
  })

  /** Sends readings in frames of up to 500, each acked before the next. */
  const send = async (ws: RawDevice, readings: readonly Reading[], firstSeq: number): Promise<number> => {
    let s = firstSeq
    for (let i = 0; i < readings.length; i += 500) {
      ws.send({ t: 'tb', s, r: readings.slice(i, i + 500) })
      await ws.untilAck(s++)
    }
    return s
  }
  const timesOf = async (hub: TestHub, device: string, fromMs: number): Promise<number[]> => {
    const answer = await hub.api('GET', `/api/v1/devices/${device}/telemetry?from=${new Date(fromMs).toISOString()}&limit=10000`)
    return (answer.body.points as Array<{ ts: string }>).map((p) => Date.parse(p.ts))
  }
  const metrics = ['fleetgate_history_trimmed_readings_total{reason="age"}', 'fleetgate_history_trimmed_readings_total{reason="size"}', 'fleetgate_history_bytes'] as const

  it('removes readings older than FLEETGATE_HISTORY_RETENTION, whole hours at a time, and counts them', async () => {
    const hub = await start({ FLEETGATE_HISTORY_RETENTION: '1h' })
    const ws = await devices.connect(hub.wsUrl, await hub.provision('aging'))
    const now = Date.now()
    const old = Array.from({ length: 700 }, (_, i): Reading => ({ ts: now - 3 * HOUR + i, m: { v: i } }))
    const fresh = Array.from({ length: 300 }, (_, i): Reading => ({ ts: now - 60_000 + i, m: { v: i } }))
    await send(ws, [...old, ...fresh], 1)
    const counted = await eventually(() => hubMetrics(hub.base, metrics), (m) => m[metrics[0]] === 700)
    expect(counted[metrics[1]]).toBe(0)
    expect(await timesOf(hub, 'aging', now - 4 * HOUR)).toEqual(fresh.map((r) => r.ts))
  })

  it('removes the oldest hours while the history is over FLEETGATE_HISTORY_MAX_BYTES, and counts them', async () => {
    const hub = await start({ FLEETGATE_HISTORY_MAX_BYTES: String(1024 * 1024) })
    const ws = await devices.connect(hub.wsUrl, await hub.provision('filling'))
    const top = Math.floor(Date.now() / HOUR) * HOUR
    // 30 hours of 2,000 readings, about 80 KB of history each: well over 1 MiB in all.
    let s = 1
    for (let hour = 30; hour >= 1; hour--) {
      s = await send(ws, Array.from({ length: 2000 }, (_, i): Reading => ({ ts: top - hour * HOUR + i * 1000, m: { v: i, w: i / 4, x: -i } })), s)
    }
    const after = await eventually(() => hubMetrics(hub.base, metrics), (m) => m[metrics[2]] > 0 && m[metrics[2]] <= 1024 * 1024)
    expect(after[metrics[0]]).toBe(0)
    // Whole hours went, oldest first: what is left is the newest hours, complete.
    const trimmedHours = after[metrics[1]] / 2000
    expect(Number.isInteger(trimmedHours) && trimmedHours >= 10 && trimmedHours < 30).toBe(true)
    const left = await timesOf(hub, 'filling', top - 31 * HOUR)
    const firstLeft = top - (30 - trimmedHours) * HOUR
    expect(left.length).toBe(Math.min(10_000, (30 - trimmedHours) * 2000))
    expect(left[0]).toBe(firstLeft)
    expect(left.every((ts, i) => i === 0 || ts > (left[i - 1] as number))).toBe(true)
  })
})
