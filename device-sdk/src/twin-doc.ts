// Twin documents and JSON merge patches (docs/twins.md, RFC 7386), for the hub, the SDK and the
// console alike. Pure: no codec, socket or clock, so a browser bundle takes it without cbor-x.
//
// Documents are treated as immutable: every function here returns new objects (sharing what did
// not change) and never changes its arguments. A key is always an own property, `__proto__`
// included (as JSON.parse makes it), so no document can reach a prototype.
import { utf8ByteLength, type JsonValue, type TwinDocument } from './frames.js'

/** A twin as the hub's REST API answers it and MQTT and the event stream carry it (docs/twins.md); times are ISO 8601. */
export interface TwinView {
  readonly device: string
  readonly desired: TwinDocument
  readonly desiredVersion: number
  readonly reported: TwinDocument
  readonly reportedVersion: number
  /** The part of `desired` that `reported` does not match; `{}` in sync. */
  readonly delta: TwinDocument
  readonly desiredAt?: string
  readonly reportedAt?: string
}

/** Largest twin document, as compact JSON in UTF-8 bytes: 32 KiB (docs/twins.md). */
export const MAX_TWIN_BYTES = 32 * 1024
/**
 * Deepest nesting of a twin document or patch: 8 levels (docs/twins.md). The document object is
 * level 1 and every object or array inside it one more; scalars add none, so `{"a":{"b":1}}` nests 2.
 */
export const MAX_TWIN_DEPTH = 8
/** Longest key of a twin document, in UTF-8 bytes: 128; keys are at least 1 byte (docs/twins.md). */
export const MAX_TWIN_KEY_BYTES = 128
/** Longest twin report id (`twr` `id`), in characters (Unicode code points): 64 (docs/twins.md). */
export const MAX_TWIN_REPORT_ID_CHARS = 64

// With the `u` flag a proper surrogate pair is one code point, not Cs.
const LONE_SURROGATE = /\p{Cs}/u

/** Whether `text` holds a lone UTF-16 surrogate, which UTF-8 (CBOR frames, MQTT, the store) cannot carry. */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text)
}

/** Whether `value` is a JSON object: not null, not an array. */
export function isJsonObject(value: unknown): value is TwinDocument {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** `document[key]` when `key` is its own (never an inherited `constructor` or `toString`). */
function member(document: TwinDocument, key: string): JsonValue | undefined {
  return Object.hasOwn(document, key) ? document[key] : undefined
}

/** Sets an own member; a `__proto__` key too, which plain assignment would turn into a prototype change. */
function setMember(document: TwinDocument, key: string, value: JsonValue): void {
  if (key === '__proto__') Object.defineProperty(document, key, { value, enumerable: true, writable: true, configurable: true })
  else document[key] = value
}

/** Whether a report id is 1 to 64 characters of text (docs/twins.md). */
export function isTwinReportId(value: unknown): value is string {
  // 64 code points take at most 128 UTF-16 units: longer text is refused before it is counted
  if (typeof value !== 'string' || value.length === 0 || value.length > 2 * MAX_TWIN_REPORT_ID_CHARS) return false
  let chars = 0
  for (const _ of value) chars++
  return chars <= MAX_TWIN_REPORT_ID_CHARS
}

/**
 * Why `value` is not a valid merge patch for a twin document, or undefined when it is one: a JSON
 * object (finite numbers, text, bools, null, arrays, objects; nothing else), nesting at most
 * MAX_TWIN_DEPTH levels, keys of 1 to MAX_TWIN_KEY_BYTES bytes that do not start with `$`, text
 * and keys in valid Unicode (a lone surrogate would reach a device as U+FFFD). A
 * stored document is a patch applied to `{}`, so the same rules hold for it. The walk descends at
 * most MAX_TWIN_DEPTH + 1 levels, whatever the input. The text starts with the path below the
 * patch (`.a.b[2]: ...`, or `: ...` for the patch itself), as the codec's reasons do.
 */
export function twinPatchProblem(value: unknown): string | undefined {
  if (!isJsonObject(value)) return `: expected a JSON object, got ${kind(value)}`
  return problemIn(value, 1, '')
}

function problemIn(value: unknown, depth: number, path: string): string | undefined {
  switch (typeof value) {
    case 'string':
      return hasLoneSurrogate(value) ? `${path}: text must be valid Unicode (a lone surrogate)` : undefined
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${path}: not a finite number (${value})`
    case 'object': {
      if (value === null) return undefined
      if (depth > MAX_TWIN_DEPTH) return `${path}: nests deeper than ${MAX_TWIN_DEPTH} levels`
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          // a hole of a sparse array reads as undefined and is refused as such
          const problem = problemIn(value[i], depth + 1, `${path}[${i}]`)
          if (problem !== undefined) return problem
        }
        return undefined
      }
      const prototype: unknown = Object.getPrototypeOf(value)
      if (prototype !== Object.prototype && prototype !== null) return `${path}: ${kind(value)} is not JSON`
      for (const key of Object.keys(value)) {
        const bytes = utf8ByteLength(key)
        if (bytes === 0 || bytes > MAX_TWIN_KEY_BYTES) return `${path}: key ${JSON.stringify(key.slice(0, 64))} is ${bytes} bytes, expected 1 to ${MAX_TWIN_KEY_BYTES} bytes`
        if (key.charCodeAt(0) === 0x24) return `${path}: key ${JSON.stringify(key.slice(0, 64))} starts with $ (reserved)`
        if (hasLoneSurrogate(key)) return `${path}: keys must be valid Unicode (a lone surrogate)`
        const problem = problemIn((value as Record<string, unknown>)[key], depth + 1, `${path}.${key}`)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    default:
      return `${path}: ${kind(value)} is not JSON`
  }
}

function kind(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name
    return typeof name === 'string' && name !== 'Object' ? `a ${name}` : 'an object'
  }
  return value === undefined ? 'nothing' : `a ${typeof value}`
}

/** Size of a document as compact JSON (`JSON.stringify`), in UTF-8 bytes: what MAX_TWIN_BYTES bounds. */
export function twinBytes(document: TwinDocument): number {
  return utf8ByteLength(JSON.stringify(document))
}

/** Whether two JSON values are equal: objects by their members (in any order), arrays item by item. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false
    return true
  }
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) if (!Object.hasOwn(b, key) || !jsonEqual(a[key], b[key])) return false
  return true
}

/**
 * RFC 7386: `patch` applied to `target`. Objects merge member by member, `null` deletes a member,
 * any other value (arrays included) replaces it. Returns `target` itself when nothing changes
 * (every member the patch sets already holds an equal value, every member it deletes is absent),
 * so `after === before` says "no change" without a deep compare.
 */
export function applyMergePatch(target: TwinDocument, patch: TwinDocument): TwinDocument {
  let out: TwinDocument | undefined
  for (const key of Object.keys(patch)) {
    const value = patch[key] as JsonValue
    const had = Object.hasOwn(target, key)
    const before = had ? target[key] : undefined
    let after: JsonValue | undefined
    if (value === null) {
      if (!had) continue
    } else if (isJsonObject(value)) {
      // a patch object merges into what is there, or into {} when that is not an object
      after = applyMergePatch(isJsonObject(before) ? before : {}, value)
      if (had && after === before) continue
    } else {
      if (had && jsonEqual(before, value)) continue
      after = value
    }
    out ??= { ...target }
    if (after === undefined) delete out[key]
    else setMember(out, key, after)
  }
  return out ?? target
}

/**
 * One merge patch with the effect of `first` then `second` on any document, or undefined when no
 * single patch has it. That is the case where `first` sets a key to a value that is not an object
 * (`null` included) and `second` sets the same key to an object: in turn, the object replaces
 * whatever the document held; composed, the object would merge into it. Everything else composes:
 * `second`'s non-object values win, objects in both compose member by member.
 */
export function composeMergePatches(first: TwinDocument, second: TwinDocument): TwinDocument | undefined {
  const out: TwinDocument = { ...first }
  for (const key of Object.keys(second)) {
    const later = second[key] as JsonValue
    if (isJsonObject(later) && Object.hasOwn(first, key)) {
      const earlier = first[key]
      if (!isJsonObject(earlier)) return undefined
      const inner = composeMergePatches(earlier, later)
      if (inner === undefined) return undefined
      setMember(out, key, inner)
    } else {
      setMember(out, key, later)
    }
  }
  return out
}

/**
 * docs/twins.md `delta`: the part of `desired` that `reported` does not match, key by key,
 * recursively: a member of `desired` whose value `reported` lacks or holds otherwise, with objects
 * compared member by member; `{}` when `reported` matches all of `desired`. Members only in
 * `reported` are not part of it.
 */
export function twinDelta(desired: TwinDocument, reported: TwinDocument): TwinDocument {
  const out: TwinDocument = {}
  for (const key of Object.keys(desired)) {
    const want = desired[key] as JsonValue
    const have = member(reported, key)
    if (isJsonObject(want) && isJsonObject(have)) {
      const inner = twinDelta(want, have)
      if (Object.keys(inner).length > 0) setMember(out, key, inner)
    } else if (have === undefined || !jsonEqual(want, have)) {
      setMember(out, key, want)
    }
  }
  return out
}
