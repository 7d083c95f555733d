import { asRecord } from './decode.js'

/** CONTRACT §7: a twin document holds at most 32 KiB as compact JSON. */
export const TWIN_MAX_BYTES = 32 * 1024
/** CONTRACT §7: a twin document nests at most 8 levels (the document itself is the first). */
export const TWIN_MAX_DEPTH = 8
/** CONTRACT §7: keys are 1 to 128 bytes. */
export const TWIN_MAX_KEY_BYTES = 128

const utf8Bytes = (text: string): number => new TextEncoder().encode(text).length

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]))
  }
  const ra = asRecord(a)
  const rb = asRecord(b)
  if (ra === undefined || rb === undefined) return false
  const keys = Object.keys(ra)
  return keys.length === Object.keys(rb).length && keys.every((k) => k in rb && deepEqual(ra[k], rb[k]))
}

/**
 * The JSON merge patch (RFC 7386) that turns `from` into `to`: removed keys become `null`,
 * objects are diffed key by key, anything else that changed is replaced whole (arrays included).
 * `{}` when nothing changed.
 */
export function mergePatchBetween(from: Readonly<Record<string, unknown>>, to: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const patch: Record<string, unknown> = {}
  for (const key of Object.keys(from)) if (!(key in to)) patch[key] = null
  for (const [key, value] of Object.entries(to)) {
    const before = from[key]
    const objectBefore = asRecord(before)
    const objectAfter = asRecord(value)
    if (objectBefore !== undefined && objectAfter !== undefined) {
      const inner = mergePatchBetween(objectBefore, objectAfter)
      if (Object.keys(inner).length > 0) patch[key] = inner
    } else if (!(key in from) || !deepEqual(before, value)) {
      patch[key] = value
    }
  }
  return patch
}

/**
 * Checks an edited desired document against CONTRACT §7 before it is sent: a JSON object, at most
 * 32 KiB compact, 8 levels, keys of 1 to 128 bytes not starting with `$`. `null` is refused with
 * a hint: in a merge patch it deletes, so a stored document never holds one.
 * @returns the document, or a sentence saying what is wrong.
 */
export function checkTwinDocument(source: string): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  let parsed: unknown
  try {
    parsed = JSON.parse(source)
  } catch (err) {
    return { ok: false, message: `not valid JSON: ${(err as Error).message}` }
  }
  const document = asRecord(parsed)
  if (document === undefined) return { ok: false, message: 'the desired state is a JSON object, {...}' }
  if (utf8Bytes(JSON.stringify(document)) > TWIN_MAX_BYTES) return { ok: false, message: `larger than ${TWIN_MAX_BYTES} bytes as compact JSON` }
  const problem = checkNode(document, 1, '')
  return problem === undefined ? { ok: true, value: document } : { ok: false, message: problem }
}

function checkNode(value: unknown, depth: number, where: string): string | undefined {
  if (value === null) return `${where || 'the document'} is null: remove the key instead (null deletes in a merge patch)`
  if (typeof value !== 'object') return undefined
  if (depth > TWIN_MAX_DEPTH) return `${where} nests deeper than ${TWIN_MAX_DEPTH} levels`
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const problem = checkNode(item, depth + 1, `${where}[${index}]`)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const path = where === '' ? key : `${where}.${key}`
    const bytes = utf8Bytes(key)
    if (bytes < 1 || bytes > TWIN_MAX_KEY_BYTES) return `key "${path}" is not 1 to ${TWIN_MAX_KEY_BYTES} bytes`
    if (key.startsWith('$')) return `key "${path}" starts with $ (reserved)`
    const problem = checkNode(item, depth + 1, path)
    if (problem !== undefined) return problem
  }
  return undefined
}
