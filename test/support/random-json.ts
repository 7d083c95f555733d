import { pick, type Random } from '@fleetgate/firmware-sim'

/** How large a generated value may grow. */
export interface RandomJsonBounds {
  /** Deepest nesting of arrays and objects (`{}` is one level). */
  readonly maxDepth: number
  /** Most items of one array or object. */
  readonly maxWidth: number
  /** Longest run of one repeated character inside a text. */
  readonly maxTextChars: number
}

/**
 * Number literals a parser takes and later stages may not: overflow to ±Infinity (`1e999`),
 * underflow, negative zero, integers beyond 2^53 and 2^64.
 */
const NUMBERS = ['0', '-0', '1', '-1', '3.5', '-2.25', '1e308', '-1e308', '1e999', '-1e999', '5e-324', '1e-400', '9007199254740993', '18446744073709551616', '123456789012345678901234567890']

/** Pieces of a text as written in JSON: escapes, a control character, U+2028, a surrogate pair, lone surrogates. */
const TEXT_PIECES = ['a', 'zone', ' ', '\\u0000', '\\n', '\\"', '\\\\', '\\/', 'é', '😀', '\\ud83d\\ude00', '\\ud800', '\\udfff', '\\u2028', '<script>', '%s', '${x}']

/** Object keys, among them what prototype pollution and renaming stores look for. */
const KEYS = ['a', 'b', 'name', 'params', '__proto__', 'constructor', 'prototype', '', 'toString', 'ä', '\\ud800', 'k'.repeat(300)]

/**
 * The JSON text of one random value from `random` (a seeded stream, so a run can be repeated).
 * It is always valid JSON, so what it exercises is everything after the parser: numbers JSON.parse
 * turns into Infinity, keys that are special to JavaScript, lone surrogates, duplicate keys, long
 * texts, and nesting up to `bounds.maxDepth`.
 */
export function randomJson(random: Random, bounds: RandomJsonBounds, depth = 0): string {
  const kind = depth >= bounds.maxDepth ? pick(random, 4) : pick(random, 7)
  switch (kind) {
    case 0:
      return NUMBERS[pick(random, NUMBERS.length)] ?? '0'
    case 1:
      return randomText(random, bounds)
    case 2:
      return ['true', 'false', 'null'][pick(random, 3)] ?? 'null'
    case 3:
      return String(Math.round((random() - 0.5) * 2 ** pick(random, 60)))
    case 4:
    case 5: {
      const items: string[] = []
      for (let i = pick(random, bounds.maxWidth + 1); i > 0; i--) items.push(randomJson(random, bounds, depth + 1))
      return `[${items.join(',')}]`
    }
    default: {
      const entries: string[] = []
      for (let i = pick(random, bounds.maxWidth + 1); i > 0; i--) {
        entries.push(`"${KEYS[pick(random, KEYS.length)] ?? 'a'}":${randomJson(random, bounds, depth + 1)}`)
      }
      return `{${entries.join(',')}}`
    }
  }
}

/** A JSON text literal, quotes included. */
export function randomText(random: Random, bounds: RandomJsonBounds): string {
  const pieces: string[] = []
  for (let i = pick(random, 6); i > 0; i--) pieces.push(TEXT_PIECES[pick(random, TEXT_PIECES.length)] ?? 'a')
  if (pick(random, 8) === 0) pieces.push('x'.repeat(pick(random, bounds.maxTextChars + 1)))
  return `"${pieces.join('')}"`
}

/** JSON text of `levels` nested arrays around `inner` (`[[[0]]]` for 3 levels of `0`). */
export function nestedArrays(levels: number, inner = '0'): string {
  return `${'['.repeat(levels)}${inner}${']'.repeat(levels)}`
}
