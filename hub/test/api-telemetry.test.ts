import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../test/support/hostile.js'
import { isoFormatter, pointsJson } from '../src/api/telemetry.js'
import type { TelemetryPoint } from '../src/telemetry/index.js'

describe('the telemetry answer', () => {
  it('writes each time exactly as Date#toISOString does, across days, years and the ends of four-digit years', () => {
    const iso = isoFormatter()
    const random = seededRandom(12)
    const edges = [0, 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000, 1_700_000_000_000, 253_402_300_799_999, 253_402_300_800_000, 9_223_372_036_854, -1, -86_400_001]
    const sorted = Array.from({ length: 20_000 }, (_, i) => 1_700_000_000_000 + i * 4321)
    const scattered = Array.from({ length: 20_000 }, () => Math.floor(random() * 300_000_000_000_000))
    for (const ms of [...edges, ...sorted, ...scattered]) expect(iso(ms), String(ms)).toBe(new Date(ms).toISOString())
  })

  it('writes the JSON that JSON.stringify writes of the points, `ts` first and never a metric named ts', () => {
    const points: TelemetryPoint[] = [
      { ts: 1_700_000_000_000, values: { temp: 21.5, on: true, mode: 'e"c\\o\n', n: -0.000001 } },
      { ts: 1_700_000_000_001, values: { ts: 99, big: 1e300, neg: -5 } },
      { ts: 1_700_000_000_002, values: {} },
    ]
    const text = pointsJson('dev-1', points)
    expect(text).toBe(
      JSON.stringify({
        device: 'dev-1',
        points: [
          { ts: '2023-11-14T22:13:20.000Z', temp: 21.5, on: true, mode: 'e"c\\o\n', n: -0.000001 },
          { ts: '2023-11-14T22:13:20.001Z', big: 1e300, neg: -5 },
          { ts: '2023-11-14T22:13:20.002Z' },
        ],
      }),
    )
    expect(pointsJson('d', [])).toBe('{"device":"d","points":[]}')
  })
})
