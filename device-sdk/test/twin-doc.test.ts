// Twin documents and merge patches (docs/twins.md, RFC 7386): the RFC's own examples, composition
// checked against applying in turn over seeded random patches, delta, and the document rules.
import { describe, expect, it } from 'vitest'
import { fuzzSeed, seededRandom } from '../../test/support/hostile.js'
import type { JsonValue, TwinDocument } from '../src/index.js'
import {
  applyMergePatch,
  composeMergePatches,
  jsonEqual,
  MAX_TWIN_BYTES,
  twinBytes,
  twinDelta,
  twinPatchProblem,
} from '../src/wire.js'

const doc = (json: string): TwinDocument => JSON.parse(json) as TwinDocument

describe('applyMergePatch: RFC 7386 Appendix A (the object cases)', () => {
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ['{"a":"b"}', '{"a":"c"}', '{"a":"c"}'],
    ['{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'],
    ['{"a":"b"}', '{"a":null}', '{}'],
    ['{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'],
    ['{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'],
    ['{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'],
    ['{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'],
    ['{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'],
    ['{"e":null}', '{"a":1}', '{"e":null,"a":1}'],
    ['{}', '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'],
    ['{"a":5}', '{"a":{"b":1,"c":null}}', '{"a":{"b":1}}'],
  ]
  it.each(cases)('%s + %s = %s', (target, patch, result) => {
    const before = doc(target)
    const copy = doc(target)
    expect(applyMergePatch(before, doc(patch))).toStrictEqual(doc(result))
    expect(before).toStrictEqual(copy)
  })

  it('returns the target itself when nothing changes, and only then', () => {
    const target = doc('{"a":1,"n":{"l":[1,{"x":2}]},"s":"t"}')
    for (const patch of ['{}', '{"a":1}', '{"gone":null}', '{"n":{"l":[1,{"x":2}]}}', '{"n":{"missing":null}}']) {
      expect(applyMergePatch(target, doc(patch)), patch).toBe(target)
    }
    for (const patch of ['{"a":2}', '{"a":null}', '{"n":{"l":[1]}}', '{"new":{}}', '{"s":["t"]}']) {
      expect(applyMergePatch(target, doc(patch)), patch).not.toBe(target)
    }
  })

  it('keeps a __proto__ key an own member and never reaches a prototype', () => {
    const after = applyMergePatch({}, doc('{"__proto__":{"polluted":true},"a":{"__proto__":1}}'))
    expect(Object.keys(after)).toEqual(['__proto__', 'a'])
    expect(Object.getPrototypeOf(after)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    expect(JSON.stringify(after)).toBe('{"__proto__":{"polluted":true},"a":{"__proto__":1}}')
    expect(applyMergePatch(after, doc('{"__proto__":null}'))).toStrictEqual(doc('{"a":{"__proto__":1}}'))
    // an inherited name is not a member: `constructor` is absent until set
    // (compared as text: toStrictEqual reads an own `constructor` as the object's class)
    expect(JSON.stringify(applyMergePatch({}, doc('{"constructor":{"a":1}}')))).toBe('{"constructor":{"a":1}}')
  })
})

describe('composeMergePatches', () => {
  it('composes what RFC 7386 can say in one patch', () => {
    expect(composeMergePatches(doc('{"a":1,"b":{"x":1}}'), doc('{"b":{"y":2},"c":null}'))).toStrictEqual(doc('{"a":1,"b":{"x":1,"y":2},"c":null}'))
    expect(composeMergePatches(doc('{"k":{"a":null}}'), doc('{"k":{"b":1}}'))).toStrictEqual(doc('{"k":{"a":null,"b":1}}'))
    expect(composeMergePatches(doc('{"k":{"a":1}}'), doc('{"k":null}'))).toStrictEqual(doc('{"k":null}'))
    expect(composeMergePatches(doc('{"k":5}'), doc('{"k":[1]}'))).toStrictEqual(doc('{"k":[1]}'))
  })

  it('refuses the lossy case: a key deleted (or set to a non-object) and then set to an object', () => {
    // in turn: {k: {a: 1}} -> {} -> {k: {b: 1}}; composed {k: {b: 1}} would merge into {a: 1}
    expect(composeMergePatches(doc('{"k":null}'), doc('{"k":{"b":1}}'))).toBeUndefined()
    expect(composeMergePatches(doc('{"k":5}'), doc('{"k":{"b":1}}'))).toBeUndefined()
    expect(composeMergePatches(doc('{"k":[1]}'), doc('{"k":{"b":1}}'))).toBeUndefined()
    expect(composeMergePatches(doc('{"n":{"k":null}}'), doc('{"n":{"k":{"b":1}}}'))).toBeUndefined()
    const target = doc('{"k":{"a":1}}')
    const inTurn = applyMergePatch(applyMergePatch(target, doc('{"k":null}')), doc('{"k":{"b":1}}'))
    expect(inTurn).toStrictEqual(doc('{"k":{"b":1}}'))
    expect(applyMergePatch(target, doc('{"k":{"b":1}}'))).not.toStrictEqual(inTurn)
  })

  it('has the effect of applying in turn, over seeded random documents and patches', () => {
    const random = seededRandom(fuzzSeed('twin-compose', 7386))
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
    const value = (depth: number, patch: boolean): JsonValue => {
      const roll = random()
      if (patch && roll < 0.25) return null
      if (roll < 0.45) return pick([1, 2, 'x', true])
      if (roll < 0.55) return [pick([1, 2])]
      return depth >= 3 ? 0 : object(depth + 1, patch)
    }
    const object = (depth: number, patch: boolean): TwinDocument => {
      const out: TwinDocument = {}
      for (const key of ['a', 'b', 'c']) if (random() < 0.5) out[key] = value(depth, patch)
      return out
    }
    let composed = 0
    let refused = 0
    for (let i = 0; i < 5000; i++) {
      const target = object(1, false)
      const first = object(1, true)
      const second = object(1, true)
      const both = composeMergePatches(first, second)
      if (both === undefined) {
        refused++
        continue
      }
      composed++
      expect(applyMergePatch(target, both)).toStrictEqual(applyMergePatch(applyMergePatch(target, first), second))
    }
    // both branches were exercised
    expect(composed).toBeGreaterThan(1000)
    expect(refused).toBeGreaterThan(100)
  })
})

describe('twinDelta', () => {
  const cases: ReadonlyArray<readonly [string, string, string, string]> = [
    ['in sync', '{"a":1,"n":{"x":[1,2]}}', '{"a":1,"n":{"x":[1,2]},"extra":true}', '{}'],
    ['empty desired', '{}', '{"a":1}', '{}'],
    ['a value differs', '{"a":1,"b":2}', '{"a":1,"b":3}', '{"b":2}'],
    ['a key missing', '{"a":1}', '{}', '{"a":1}'],
    ['nested, key by key', '{"n":{"x":1,"y":{"z":2,"w":3}}}', '{"n":{"x":1,"y":{"z":9,"w":3}}}', '{"n":{"y":{"z":2}}}'],
    ['arrays whole', '{"l":[1,2]}', '{"l":[1]}', '{"l":[1,2]}'],
    ['an object where reported has a value', '{"n":{"x":1}}', '{"n":5}', '{"n":{"x":1}}'],
    ['an empty object reported as an object', '{"n":{}}', '{"n":{"x":1}}', '{}'],
    ['an empty object not reported', '{"n":{}}', '{}', '{"n":{}}'],
  ]
  it.each(cases)('%s', (_name, desired, reported, delta) => {
    expect(twinDelta(doc(desired), doc(reported))).toStrictEqual(doc(delta))
  })
})

describe('jsonEqual', () => {
  it('compares objects by members in any order and arrays item by item', () => {
    expect(jsonEqual(doc('{"a":1,"b":[1,{"c":null}]}'), doc('{"b":[1,{"c":null}],"a":1}'))).toBe(true)
    expect(jsonEqual(doc('{"a":1}'), doc('{"a":1,"b":1}'))).toBe(false)
    expect(jsonEqual([1, 2], [2, 1])).toBe(false)
    expect(jsonEqual({}, [])).toBe(false)
    expect(jsonEqual(null, {})).toBe(false)
    expect(jsonEqual(doc('{"constructor":1}'), {})).toBe(false)
  })
})

describe('twinPatchProblem: the document rules (docs/twins.md)', () => {
  const nested = (levels: number): unknown => {
    let value: unknown = 1
    for (let i = 0; i < levels; i++) value = { a: value }
    return value
  }
  it('takes 8 levels, 128-byte keys and nulls anywhere', () => {
    expect(twinPatchProblem(nested(8))).toBeUndefined()
    expect(twinPatchProblem({ [`${'é'.repeat(64)}`]: [null, { x: null }], emoji: '😀' })).toBeUndefined()
    expect(twinPatchProblem(Object.create(null) as unknown)).toBeUndefined()
  })
  const bad: ReadonlyArray<readonly [string, unknown, string]> = [
    ['an array', [1], ': expected a JSON object, got an array'],
    ['null', null, ': expected a JSON object, got null'],
    ['a number', 5, ': expected a JSON object, got a number'],
    ['9 levels', nested(9), '.a.a.a.a.a.a.a.a: nests deeper than 8 levels'],
    ['a $ key', { ok: { $set: 1 } }, '.ok: key "$set" starts with $ (reserved)'],
    ['an empty key', { '': 1 }, ': key "" is 0 bytes, expected 1 to 128 bytes'],
    ['a 129-byte key', { [`${'é'.repeat(64)}x`]: 1 }, `: key "${'é'.repeat(64)}" is 129 bytes, expected 1 to 128 bytes`],
    ['NaN', { a: Number.NaN }, '.a: not a finite number (NaN)'],
    ['undefined', { a: undefined }, '.a: nothing is not JSON'],
    ['a hole', { a: [1, , 3] }, '.a[1]: nothing is not JSON'],
    ['a Date', { a: new Date(0) }, '.a: a Date is not JSON'],
    ['a Map', { a: new Map() }, '.a: a Map is not JSON'],
    ['a function', { a: () => 1 }, '.a: a function is not JSON'],
    ['a bigint', { a: 1n }, '.a: a bigint is not JSON'],
    ['a lone surrogate in text', { a: ['ok', 'x\ud800'] }, '.a[1]: text must be valid Unicode (a lone surrogate)'],
    ['a lone surrogate in a key', { ['\udc00k']: 1 }, ': keys must be valid Unicode (a lone surrogate)'],
  ]
  it.each(bad)('refuses %s', (_name, value, problem) => {
    expect(twinPatchProblem(value)).toBe(problem)
  })
  it('measures documents as compact UTF-8 JSON', () => {
    expect(twinBytes({ a: 'é' })).toBe(10)
    const exact = { k: 'x'.repeat(MAX_TWIN_BYTES - 8) }
    expect(twinBytes(exact)).toBe(MAX_TWIN_BYTES)
  })
})
