import { isJsonObject, jsonEqual, MAX_TWIN_BYTES, twinBytes, twinPatchProblem, type JsonValue, type TwinDocument } from '@fleetgate/device-sdk/wire'

/**
 * The JSON merge patch (RFC 7386) that turns `from` into `to`: removed keys become `null`,
 * objects are diffed key by key, anything else that changed is replaced whole (arrays included).
 * `{}` when nothing changed.
 */
export function mergePatchBetween(from: Readonly<TwinDocument>, to: Readonly<TwinDocument>): TwinDocument {
  const patch: TwinDocument = {}
  for (const key of Object.keys(from)) if (!Object.hasOwn(to, key)) patch[key] = null
  for (const [key, value] of Object.entries(to)) {
    const before = Object.hasOwn(from, key) ? from[key] : undefined
    if (isJsonObject(before) && isJsonObject(value)) {
      const inner = mergePatchBetween(before, value)
      if (Object.keys(inner).length > 0) patch[key] = inner
    } else if (before === undefined || !jsonEqual(before, value)) {
      patch[key] = value
    }
  }
  return patch
}

/**
 * Checks an edited desired document against docs/twins.md before it is sent, by the SDK's twin
 * rules: a JSON object, at most 32 KiB compact, 8 levels, keys of 1 to 128 bytes not starting with
 * `$`. `null` is refused too, with a hint: in a merge patch it deletes, so a stored document never
 * holds one where an edit could mean it.
 * @returns the document, or a sentence saying what is wrong.
 */
export function checkTwinDocument(source: string): { ok: true; value: TwinDocument } | { ok: false; message: string } {
  let parsed: unknown
  try {
    parsed = JSON.parse(source)
  } catch (err) {
    return { ok: false, message: `not valid JSON: ${(err as Error).message}` }
  }
  if (!isJsonObject(parsed)) return { ok: false, message: 'the desired state is a JSON object, {...}' }
  const bytes = twinBytes(parsed)
  if (bytes > MAX_TWIN_BYTES) return { ok: false, message: `larger than ${MAX_TWIN_BYTES} bytes as compact JSON (${bytes})` }
  const nulled = nullAt(parsed, 'desired')
  if (nulled !== undefined) return { ok: false, message: `${nulled} is null: remove the key instead (null deletes in a merge patch)` }
  const problem = twinPatchProblem(parsed)
  return problem === undefined ? { ok: true, value: parsed } : { ok: false, message: `desired${problem}` }
}

/** The path of the first `null` in `value`, walked no deeper than the twin rules allow; undefined when none. */
function nullAt(value: JsonValue, path: string, depth = 0): string | undefined {
  if (value === null) return path
  if (typeof value !== 'object' || depth > 8) return undefined
  for (const [key, item] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const found = nullAt(item, typeof key === 'number' ? `${path}[${key}]` : `${path}.${key}`, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}
