import { describe, expect, it } from 'vitest'
import { cursorBefore, findLastSeq, ID_ALPHABET } from '../src/lib/cursor.js'
import type { TwinDocument } from '@fleetgate/device-sdk/wire'
import { checkTwinDocument, mergePatchBetween } from '../src/lib/merge-patch.js'
import { parsePrometheus, promRate, promSum } from '../src/lib/prom.js'
import type { TelemetryPoint } from '../src/lib/api.js'
import { chooseEvery, isStale, latestValues, looksAggregated, resolveRange, toSeries } from '../src/lib/telemetry.js'

describe('cursorBefore: a prefix search starts at the first id with the prefix', () => {
  it('is the greatest id below the prefix', () => {
    expect(cursorBefore('abc')).toBe(`abb${'z'.repeat(61)}`)
    expect(cursorBefore('a')).toBe(`_${'z'.repeat(63)}`)
    expect(cursorBefore('ab-')).toBe('ab')
    expect(cursorBefore('-')).toBeUndefined()
    expect(cursorBefore('A')).toBe(`9${'z'.repeat(63)}`)
  })

  it('refuses characters ids cannot hold', () => {
    expect(() => cursorBefore('a b')).toThrow(RangeError)
  })

  it('finds exactly the ids with the prefix in a sorted listing (byte order)', () => {
    const ids = ['-', '-a', '0', '9zz', 'A', 'Z_', '_', 'a', 'a-', 'a-b', 'a0', 'aZ', 'a_', 'aa', 'ab', 'abz', 'b', 'z'.repeat(64)]
    const sorted = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    for (const prefix of ['a', 'a-', 'aa', 'ab', '-', 'Z', '9', 'z', 'a_']) {
      const after = cursorBefore(prefix)
      const listed = sorted.filter((id) => after === undefined || id > after)
      const taken: string[] = []
      for (const id of listed) {
        if (!id.startsWith(prefix)) break
        taken.push(id)
      }
      expect(taken, prefix).toEqual(sorted.filter((id) => id.startsWith(prefix)))
    }
  })

  it('uses the registry order of the id alphabet', () => {
    expect([...ID_ALPHABET].sort().join('')).toBe(ID_ALPHABET)
  })
})

describe('findLastSeq', () => {
  for (const last of [0, 1, 2, 3, 100, 1023, 1024, 1025, 99_999]) {
    it(`finds ${last} in O(log n) reads`, async () => {
      let reads = 0
      const found = await findLastSeq(async (seq) => {
        reads++
        return seq < last
      })
      expect(found).toBe(last)
      expect(reads).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(last + 2)) + 2)
    })
  }
})

describe('mergePatchBetween (RFC 7386)', () => {
  const cases: ReadonlyArray<readonly [string, TwinDocument, TwinDocument, TwinDocument]> = [
    ['nothing changed', { a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 2] } }, {}],
    ['a value changed', { a: 1 }, { a: 2 }, { a: 2 }],
    ['a key added', { a: 1 }, { a: 1, b: true }, { b: true }],
    ['a key removed becomes null', { a: 1, b: 2 }, { a: 1 }, { b: null }],
    ['nested objects diffed', { n: { x: 1, y: 2 } }, { n: { x: 1, y: 3, z: 4 } }, { n: { y: 3, z: 4 } }],
    ['nested removal', { n: { x: 1, y: 2 } }, { n: { x: 1 } }, { n: { y: null } }],
    ['arrays replaced whole', { l: [1, 2, 3] }, { l: [1, 2] }, { l: [1, 2] }],
    ['object replaced by a value', { n: { x: 1 } }, { n: 5 }, { n: 5 }],
    ['value replaced by an object', { n: 5 }, { n: { x: 1 } }, { n: { x: 1 } }],
  ]
  for (const [name, from, to, patch] of cases) {
    it(name, () => expect(mergePatchBetween(from, to)).toEqual(patch))
  }
})

describe('checkTwinDocument (docs/twins.md)', () => {
  it('accepts an object', () => expect(checkTwinDocument('{"a":{"b":[1,{"c":"x"}]}}')).toEqual({ ok: true, value: { a: { b: [1, { c: 'x' }] } } }))
  const bad: ReadonlyArray<readonly [string, string, string]> = [
    ['not JSON', '{a:1}', 'not valid JSON'],
    ['not an object', '[1]', 'JSON object'],
    ['null value', '{"a":null}', 'null deletes'],
    ['$ key', '{"$x":1}', 'reserved'],
    ['empty key', '{"":1}', '1 to 128 bytes'],
    ['long key', `{"${'k'.repeat(129)}":1}`, '1 to 128 bytes'],
    ['too deep', `${'{"a":'.repeat(9)}1${'}'.repeat(9)}`, 'deeper than 8'],
    ['too large', `{"a":"${'x'.repeat(33 * 1024)}"}`, 'larger than 32768'],
  ]
  for (const [name, source, message] of bad) {
    it(`refuses ${name}`, () => {
      const result = checkTwinDocument(source)
      expect(result.ok).toBe(false)
      if (!result.ok) expect(result.message).toContain(message)
    })
  }
  it('allows exactly 8 levels of objects', () => expect(checkTwinDocument(`${'{"a":'.repeat(8)}1${'}'.repeat(8)}`).ok).toBe(true))
})

describe('parsePrometheus', () => {
  const text = [
    '# HELP fleetgate_sessions Live device sessions',
    '# TYPE fleetgate_sessions gauge',
    'fleetgate_sessions 3',
    'fleetgate_naks_total{reason="rate"} 2',
    'fleetgate_naks_total{reason="seq"} 5',
    'fleetgate_odd{a="x\\"y",b="1\\n2"} 1.5e3 1700000000000',
    'fleetgate_up +Inf',
    '# TYPE fleetgate_quiet_total counter',
    'garbage line here',
    '',
  ].join('\n')
  const metrics = parsePrometheus(text)
  it('reads plain and labelled samples', () => {
    expect(promSum(metrics, 'fleetgate_sessions')).toBe(3)
    expect(promSum(metrics, 'fleetgate_naks_total')).toBe(7)
    expect(promSum(metrics, 'fleetgate_naks_total', { reason: 'seq' })).toBe(5)
    expect(metrics.get('fleetgate_odd')).toEqual([{ labels: { a: 'x"y', b: '1\n2' }, value: 1500 }])
    expect(promSum(metrics, 'fleetgate_up')).toBe(Number.POSITIVE_INFINITY)
    expect(promSum(metrics, 'fleetgate_missing')).toBeUndefined()
    expect(promSum(metrics, 'fleetgate_quiet_total')).toBe(0)
    expect(promSum(metrics, 'fleetgate_naks_total', { reason: 'window' })).toBe(0)
  })
  it('computes a rate from two scrapes, and none across a reset', () => {
    expect(promRate(100, 160, 2000)).toBe(30)
    expect(promRate(100, 50, 2000)).toBeUndefined()
    expect(promRate(undefined, 50, 2000)).toBeUndefined()
  })
})

describe('telemetry ranges and values', () => {
  const now = Date.UTC(2026, 0, 31, 12)
  it('reads short spans raw and long ones aggregated to about 1,000 points', () => {
    expect(chooseEvery(3_600_000)).toBeUndefined()
    expect(chooseEvery(86_400_000)).toBe('5m')
    expect(chooseEvery(7 * 86_400_000)).toBe('15m')
    expect(resolveRange('24h', now).query).toEqual({ from: now - 86_400_000, to: now, limit: 10_000, every: '5m', fn: 'mean' })
    expect(resolveRange('live', now)).toEqual({ query: { from: now - 900_000, to: now, limit: 10_000 }, follows: true })
    expect(resolveRange('custom', now, { from: 1000, to: 2000 })).toEqual({ query: { from: 1000, to: 2000, limit: 10_000 }, follows: false })
  })

  const points: TelemetryPoint[] = [
    { ts: now - 30_000, values: { t: 20, label: 'a' } },
    { ts: now - 20_000, values: { t: 21 } },
    { ts: now - 10_000, values: { t: 22, on: true } },
  ]
  it('tells aggregated points from raw ones a hub answered despite every', () => {
    const at = (...ts: number[]): TelemetryPoint[] => ts.map((t) => ({ ts: t, values: { v: 1 } }))
    expect(looksAggregated(at(0, 300_000, 600_000), '5m')).toBe(true)
    expect(looksAggregated(at(0, 300_000, 1_200_000), '5m')).toBe(true)
    expect(looksAggregated(at(0, 10_000, 300_000), '5m')).toBe(false)
    expect(looksAggregated(at(0), '5m')).toBe(true)
  })

  it('splits numeric metrics into aligned columns', () => {
    const series = toSeries(points)
    expect(series.times).toEqual([(now - 30_000) / 1000, (now - 20_000) / 1000, (now - 10_000) / 1000])
    expect([...series.columns]).toEqual([['t', [20, 21, 22]]])
  })
  it('keeps the latest value of each metric with its median interval, and marks stale ones', () => {
    const latest = latestValues(points)
    expect(latest.get('t')).toEqual({ value: 22, ts: now - 10_000, intervalMs: 10_000 })
    expect(latest.get('label')).toEqual({ value: 'a', ts: now - 30_000, intervalMs: undefined })
    const t = latest.get('t')
    if (t === undefined) throw new Error('no t')
    expect(isStale(t, now)).toBe(false)
    expect(isStale(t, now - 10_000 + 60_001)).toBe(true)
    expect(isStale({ value: 1, ts: now, intervalMs: 60_000 }, now + 180_000)).toBe(false)
    expect(isStale({ value: 1, ts: now, intervalMs: 60_000 }, now + 180_001)).toBe(true)
    expect(isStale({ value: 1, ts: now, intervalMs: undefined }, now + 300_001)).toBe(true)
  })
})
