import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { realClock, type Reading } from '@fleetgate/device-sdk'
import { tempDir } from '../../test/support/hub.js'
import { eventually } from '../../test/support/telemetry.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type HubStores } from '../src/store/index.js'
import { decodeBlock, encodeBlock } from '../src/telemetry/history/block-codec.js'
import { columnsOfReadings } from '../src/telemetry/history/columns.js'
import { History, type HistoryTuning } from '../src/telemetry/history/index.js'
import { HISTORY_HOUR_MS, type TrimReason } from '../src/telemetry/index.js'
import type { AggregateFn, TelemetryPoint, TelemetryRequest } from '../src/telemetry/index.js'

const HOUR = HISTORY_HOUR_MS
/** An hour boundary, so that tests place readings in hours they name. */
const T0 = 1_700_002_800_000

describe('history', () => {
  let dir: { path: string; cleanup(): void }
  let stores: HubStores
  let nowMs: number
  let trimmed: Array<[TrimReason, number]>
  let compactions: number
  let history: History

  const build = (options: { retentionMs?: number; maxBytes?: number; tuning?: Partial<HistoryTuning> } = {}): History =>
    new History({
      store: stores.history,
      clock: { ...realClock, now: () => nowMs },
      log: createLogger('silent'),
      counters: { historyTrimmed: (reason, readings) => trimmed.push([reason, readings]), historyCompacted: () => compactions++ },
      retentionMs: options.retentionMs ?? 7 * 24 * HOUR,
      maxBytes: options.maxBytes ?? 1 << 30,
      tuning: { upkeepIntervalMs: 5, ...options.tuning },
    })
  /** Writes each frame in a commit of its own, as ingest does. */
  const write = async (deviceId: string, ...frames: Reading[][]): Promise<void> => {
    for (const readings of frames) await history.append(history.blocks([{ deviceId, readings }]))
  }
  const query = (request: Partial<TelemetryRequest> & { device: string }): Promise<TelemetryPoint[]> =>
    history.run({ fromMs: 0, toMs: T0 + 100 * HOUR, metrics: undefined, limit: 10_000, every: undefined, ...request })
  const every = (everyMs: number, fn: AggregateFn): TelemetryRequest['every'] => ({ everyMs, fn })

  beforeEach(() => {
    dir = tempDir('fleetgate-history-')
    stores = openLmdbStores(dir.path)
    nowMs = T0 + 10 * HOUR
    trimmed = []
    compactions = 0
    history = build()
  })
  afterEach(async () => {
    await history.stop()
    await stores.close()
    dir.cleanup()
  })

  it('encodes a block and decodes it back: numbers, text and booleans, tags, absent values', () => {
    const columns = columnsOfReadings([
      { ts: T0 + 2, m: { t: 21.5, mode: 'eco' }, g: { zone: 'b' } },
      { ts: T0 + 1, m: { t: 20, on: true } },
      { ts: T0 + 2, m: { t: 22 }, g: { zone: 'a' } },
    ])
    const decoded = decodeBlock(encodeBlock(columns))
    expect(decoded.rows).toBe(3)
    expect([...decoded.ts]).toEqual([T0 + 1, T0 + 2, T0 + 2])
    expect(decoded.tags === undefined ? [] : [...decoded.tags].map((i) => decoded.tagKeys[i])).toEqual(['', '{"zone":"a"}', '{"zone":"b"}'])
    expect([...decoded.columns.keys()]).toEqual(['mode', 'on', 't'])
    expect(decoded.columns.get('t')).toEqual({ numeric: true, values: new Float64Array([20, 22, 21.5]) })
    expect(decoded.columns.get('mode')).toEqual({ numeric: false, values: [undefined, undefined, 'eco'] })
    expect(decoded.columns.get('on')).toEqual({ numeric: false, values: [true, undefined, undefined] })
    expect([...decodeBlock(encodeBlock(columns), new Set(['t'])).columns.keys()]).toEqual(['t'])
  })

  it('refuses a block of another version with the damaged-store error', () => {
    const bytes = encodeBlock(columnsOfReadings([{ ts: T0, m: { t: 1 } }]))
    bytes[0] = 9
    expect(() => decodeBlock(bytes)).toThrow(expect.objectContaining({ code: 'HUB_ERR_STORE_DAMAGED' }))
  })

  it('keeps every frame of one commit: two frames of a device starting at the same ts, the later winning a field', async () => {
    // Ingest commits a session's queued frames together (and the spool's move up to 5,000 at once).
    await history.append(
      history.blocks([
        { deviceId: 'd1', readings: [{ ts: T0 + 1000, m: { t: 1 } }, { ts: T0 + 2000, m: { t: 2 } }] },
        { deviceId: 'd2', readings: [{ ts: T0 + 1000, m: { t: 7 } }] },
        { deviceId: 'd1', readings: [{ ts: T0 + 1000, m: { h: 50 } }, { ts: T0 + HOUR + 5, m: { t: 3 } }] },
        { deviceId: 'd1', readings: [{ ts: T0 + 1000, m: { t: 1.5 } }] },
      ]),
    )
    expect(await query({ device: 'd1' })).toEqual([
      { ts: T0 + 1000, values: { t: 1.5, h: 50 } },
      { ts: T0 + 2000, values: { t: 2 } },
      { ts: T0 + HOUR + 5, values: { t: 3 } },
    ])
    expect(await query({ device: 'd2' })).toEqual([{ ts: T0 + 1000, values: { t: 7 } }])
  })

  it('answers raw points in ts order, one per ts and tag set, fields merged and a later write winning a field', async () => {
    await write(
      'd1',
      [
        { ts: T0 + 3000, m: { t: 3 } },
        { ts: T0 + 1000, m: { t: 1, h: 50 } },
        // Equal ts and tags in one frame: one point, the later reading winning `t`.
        { ts: T0 + 2000, m: { t: 2, mode: 'a' } },
        { ts: T0 + 2000, m: { t: 2.5 } },
      ],
      // A resend of one point with a changed field and a new one, and a point of its own at the same ts with tags.
      [{ ts: T0 + 1000, m: { h: 55, on: true } }],
      [{ ts: T0 + 1000, m: { t: 9 }, g: { zone: 'x' } }],
      // A frame across an hour boundary: split into two blocks, read back as one series.
      [
        { ts: T0 + HOUR - 1, m: { t: 4 } },
        { ts: T0 + HOUR + 1, m: { t: 5 } },
      ],
    )
    await write('d2', [{ ts: T0 + 1500, m: { t: 100 } }])
    expect(await query({ device: 'd1' })).toEqual([
      { ts: T0 + 1000, values: { h: 55, on: true, t: 1 } },
      { ts: T0 + 1000, values: { t: 9 } },
      { ts: T0 + 2000, values: { mode: 'a', t: 2.5 } },
      { ts: T0 + 3000, values: { t: 3 } },
      { ts: T0 + HOUR - 1, values: { t: 4 } },
      { ts: T0 + HOUR + 1, values: { t: 5 } },
    ])
    // `metrics` in its own order; points without any of them are left out; `from`/`to` inclusive; `limit` counts points.
    expect(await query({ device: 'd1', metrics: ['t', 'h'], fromMs: T0 + 1000, toMs: T0 + 2000 })).toEqual([
      { ts: T0 + 1000, values: { t: 1, h: 55 } },
      { ts: T0 + 1000, values: { t: 9 } },
      { ts: T0 + 2000, values: { t: 2.5 } },
    ])
    expect(await query({ device: 'd1', metrics: ['on'] })).toEqual([{ ts: T0 + 1000, values: { on: true } }])
    expect((await query({ device: 'd1', limit: 2, fromMs: T0 + 1001 })).map((p) => p.ts)).toEqual([T0 + 2000, T0 + 3000])
    expect(await query({ device: 'nobody' })).toEqual([])
  })

  it('aggregates into intervals aligned to the epoch: each fn, non-numeric metrics by last, empty intervals left out, limit in intervals', async () => {
    await write(
      'agg',
      [
        { ts: T0 + 500, m: { v: 1, mode: 'a' } },
        { ts: T0 + 1500, m: { v: 3 } },
        { ts: T0 + 9000, m: { v: 5, mode: 'b' } },
        { ts: T0 + 9500, m: { v: 6 } },
        // Two points at one ts, both counted, as InfluxDB counts two series.
        { ts: T0 + 20_000, m: { v: 10 }, g: { k: 'x' } },
        { ts: T0 + 20_000, m: { v: 20 }, g: { k: 'y' } },
      ],
    )
    const expected: Record<AggregateFn, Array<[number, number, string | undefined]>> = {
      mean: [[T0, 2, 'a'], [T0 + 5000, 5.5, 'b'], [T0 + 20_000, 15, undefined]],
      min: [[T0, 1, 'a'], [T0 + 5000, 5, 'b'], [T0 + 20_000, 10, undefined]],
      max: [[T0, 3, 'a'], [T0 + 5000, 6, 'b'], [T0 + 20_000, 20, undefined]],
      last: [[T0, 3, 'a'], [T0 + 5000, 6, 'b'], [T0 + 20_000, 20, undefined]],
      count: [[T0, 2, 'a'], [T0 + 5000, 2, 'b'], [T0 + 20_000, 2, undefined]],
    }
    for (const [fn, rows] of Object.entries(expected) as Array<[AggregateFn, Array<[number, number, string | undefined]>]>) {
      const points = await query({ device: 'agg', every: every(5000, fn) })
      expect(points, fn).toEqual(rows.map(([ts, v, mode]) => ({ ts, values: mode === undefined ? { v } : { mode, v } })))
    }
    // The first interval starts before `from`, at its epoch-aligned start; `limit` counts intervals.
    expect(await query({ device: 'agg', fromMs: T0 + 1000, every: every(5000, 'count'), limit: 2 })).toEqual([
      { ts: T0, values: { v: 1 } },
      { ts: T0 + 5000, values: { mode: 'b', v: 2 } },
    ])
    expect(await query({ device: 'agg', metrics: ['mode'], every: every(HOUR, 'mean') })).toEqual([{ ts: T0, values: { mode: 'b' } }])
  })

  it('compacts a closed device-hour of small blocks into one, answering the same before and after, a later write still winning', async () => {
    // Blocks of 1,024 rows: what a compaction writes is settled from 256 rows on.
    history = build({ tuning: { upkeepIntervalMs: 5, compactAfterMs: 1000, compactBlockRows: 1024 } })
    // Some tagged readings, and an extra point beside some of them at the same ts with other tags.
    const frames = Array.from({ length: 600 }, (_, i): Reading[] =>
      i % 100 === 50 ? [{ ts: T0 + i * 1000, m: { v: i, even: i % 2 === 0 }, g: { zone: i % 200 === 50 ? 'a' : 'b' } }, { ts: T0 + i * 1000, m: { v: -i }, g: { zone: 'c' } }] : [{ ts: T0 + i * 1000, m: { v: i, even: i % 2 === 0 } }],
    )
    await write('chatty', ...frames)
    // A resend of one reading, with a field changed, after the others.
    await write('chatty', [{ ts: T0 + 5000, m: { v: -5 } }])
    const raw = await query({ device: 'chatty' })
    const means = await query({ device: 'chatty', every: every(60_000, 'mean') })
    expect(raw).toHaveLength(606)
    expect(raw[5]).toEqual({ ts: T0 + 5000, values: { even: false, v: -5 } })
    expect(stores.history.hour(T0, 'chatty')?.blocks).toBe(601)

    history.start()
    await eventually(() => stores.history.hour(T0, 'chatty')?.blocks, (blocks) => blocks === 1)
    expect(compactions).toBe(1)
    expect(stores.history.hour(T0, 'chatty')).toMatchObject({ readings: 606, blocks: 1 })
    expect(await query({ device: 'chatty' })).toEqual(raw)
    expect(await query({ device: 'chatty', every: every(60_000, 'mean') })).toEqual(means)

    // A write after the compaction wins a field over the compacted block.
    await write('chatty', [{ ts: T0 + 5000, m: { v: 42 } }])
    expect((await query({ device: 'chatty', fromMs: T0 + 5000, toMs: T0 + 5000 }))[0]).toEqual({ ts: T0 + 5000, values: { even: false, v: 42 } })
    const first = [...stores.history.read('chatty', T0, T0)]
    expect(first.map((b) => [b.order, b.part])).toEqual([
      [601, 1],
      [602, 0],
    ])

    expect(stores.history.hour(T0, 'chatty')).toMatchObject({ settledOrder: 601 })

    // More late frames: later compactions (one a second at most) merge only what came since the
    // settled block, which stays as it is.
    await write('chatty', ...Array.from({ length: 10 }, (_, i): Reading[] => [{ ts: T0 + 700_000 + i, m: { v: 1000 + i } }]))
    nowMs += 1000
    const layout = (): string => JSON.stringify([...stores.history.read('chatty', T0, T0)].map((b) => [b.order, b.part]))
    await eventually(layout, (text) => text === '[[601,1],[612,1]]')
    expect([...stores.history.read('chatty', T0, T0)][0]).toEqual(first[0])
    // What the last compaction wrote (11 rows) is not settled: the next one would take it again.
    expect(stores.history.hour(T0, 'chatty')).toMatchObject({ readings: 617, blocks: 2, settledOrder: 601 })
    const after = await query({ device: 'chatty' })
    expect(after).toHaveLength(616)
    expect(after[5]).toEqual({ ts: T0 + 5000, values: { even: false, v: 42 } })
    expect(after.slice(-10).map((p) => p.values['v'])).toEqual(Array.from({ length: 10 }, (_, i) => 1000 + i))
  })

  it('trims device-hours older than the retention, counting their readings, and keeps the rest', async () => {
    history = build({ retentionMs: 2 * HOUR })
    // nowMs is T0 + 10 h: hours T0 .. T0+7h end before the cutoff (T0 + 8 h); T0+8h does not.
    await write('old', [{ ts: T0, m: { v: 1 } }, { ts: T0 + 10, m: { v: 2 } }], [{ ts: T0 + 7 * HOUR + 5, m: { v: 3 } }])
    await write('new', [{ ts: T0 + 8 * HOUR, m: { v: 4 } }], [{ ts: T0 + 9 * HOUR, m: { v: 5 } }])
    const bytesBefore = stores.history.bytes
    history.start()
    await eventually(() => trimmed.reduce((sum, [, n]) => sum + n, 0), (n) => n === 3)
    expect(trimmed.every(([reason]) => reason === 'age')).toBe(true)
    expect(await query({ device: 'old' })).toEqual([])
    expect((await query({ device: 'new' })).map((p) => p.values['v'])).toEqual([4, 5])
    expect(stores.history.hours(undefined, 10).map((h) => [h.hourMs - T0, h.deviceId])).toEqual([
      [8 * HOUR, 'new'],
      [9 * HOUR, 'new'],
    ])
    expect(stores.history.bytes).toBeLessThan(bytesBefore)
  })

  it('trims the oldest device-hours, whatever their age, while the history is over its size bound', async () => {
    const readings = (hour: number): Reading[] => Array.from({ length: 200 }, (_, i) => ({ ts: T0 + hour * HOUR + i, m: { v: i, w: i * 2 } }))
    for (let hour = 0; hour < 8; hour++) await write('big', readings(hour))
    const perHour = stores.history.hour(T0, 'big')?.bytes ?? 0
    expect(perHour).toBeGreaterThan(3000)
    // Room for three hours and a half: the five oldest go.
    history = build({ maxBytes: Math.floor(3.5 * perHour) })
    history.start()
    await eventually(() => stores.history.bytes, (bytes) => bytes <= 3.5 * perHour)
    expect(trimmed).toEqual(Array.from({ length: 5 }, () => ['size', 200]))
    expect(stores.history.hours(undefined, 10).map((h) => (h.hourMs - T0) / HOUR)).toEqual([5, 6, 7])
    expect((await query({ device: 'big' }))[0]?.ts).toBe(T0 + 5 * HOUR)
  })
})
