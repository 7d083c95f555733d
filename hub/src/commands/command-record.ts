import type { JsonValue } from '@fleetgate/device-sdk'
import { COMMAND_ID_PATTERN, hasLoneSurrogate, MAX_CBOR_NESTING } from '@fleetgate/device-sdk/wire'
import type { CommandRecord, CommandStatus } from '../store/index.js'
import { asObject, checkInteger, onlyKeys, type Checked } from '../validate.js'

/** Statuses a command never leaves. */
export const FINAL_STATUSES: ReadonlySet<CommandStatus> = new Set(['succeeded', 'failed', 'timeout', 'expired'])

/** A validated command request, from REST or MQTT (same rules, docs/mqtt.md). */
export interface CommandRequest {
  readonly id: string | undefined
  readonly name: string
  readonly params: JsonValue | undefined
  /** Default 10,000 ms; 1 ms to 1 h. */
  readonly timeoutMs: number
  /** Default 0 (deliver now or refuse); up to 30 days. */
  readonly ttlMs: number
}

/** Largest `params`, as JSON text: 64 KiB (docs/rest.md). */
export const MAX_PARAMS_BYTES = 64 * 1024
/**
 * Deepest `params`, in levels of arrays and objects (`{}` is one level): 31. The `cmd` frame is a CBOR
 * map around `p`, and a device refuses a frame nested deeper than MAX_CBOR_NESTING (32), so 31 is
 * the most a device can decode; lmdb's encoder (it recurses per level, and overflows near 1,500)
 * carries it too. Results come back in a `res` frame under the same bound.
 */
export const MAX_PARAMS_DEPTH = MAX_CBOR_NESTING - 1
/** Default wait for a result: 10 s (docs/rest.md). */
export const DEFAULT_TIMEOUT_MS = 10_000
/** Longest `timeoutMs`: 1 h. */
export const MAX_TIMEOUT_MS = 3_600_000
/** Longest `ttlMs`: 30 days. */
export const MAX_TTL_MS = 30 * 24 * 3_600_000

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString())

/** The record as operators see it (docs/rest.md): times as ISO 8601, internal fields left out. */
export function commandView(record: CommandRecord): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: record.id,
    device: record.device,
    name: record.name,
    params: record.params ?? null,
    status: record.status,
    createdAt: iso(record.createdAt),
  }
  if (record.sentAt !== undefined) view['sentAt'] = iso(record.sentAt)
  if (record.completedAt !== undefined) view['completedAt'] = iso(record.completedAt)
  if (record.expiresAt !== undefined) view['expiresAt'] = iso(record.expiresAt)
  if (record.result !== undefined) view['result'] = record.result
  if (record.error !== undefined) view['error'] = record.error
  if (record.batch !== undefined) view['batch'] = record.batch
  return view
}

/** The fields of a command request, shared by the single, fan-out and MQTT forms. */
export function checkCommandFields(body: Record<string, unknown>, allowIdempotencyKey: boolean): Checked<CommandRequest> {
  const { name, params, id } = body
  if (typeof name !== 'string' || !COMMAND_ID_PATTERN.test(name)) return { ok: false, message: 'name: 1 to 64 of A-Z a-z 0-9 _ . -' }
  if (id !== undefined && (!allowIdempotencyKey || typeof id !== 'string' || !COMMAND_ID_PATTERN.test(id))) {
    return { ok: false, message: 'id: 1 to 64 of A-Z a-z 0-9 _ . -' }
  }
  if (params !== undefined) {
    const refused = checkJson(params, 'params')
    if (refused !== undefined) return { ok: false, message: refused }
    // Only now that the depth is bounded may anything recurse into params (JSON.stringify does).
    if (Buffer.byteLength(JSON.stringify(params)) > MAX_PARAMS_BYTES) return { ok: false, message: `params: at most ${MAX_PARAMS_BYTES} bytes of JSON` }
  }
  const timeoutMs = checkInteger(body['timeoutMs'], 'timeoutMs', 1, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)
  if (!timeoutMs.ok) return timeoutMs
  const ttlMs = checkInteger(body['ttlMs'], 'ttlMs', 0, MAX_TTL_MS, 0)
  if (!ttlMs.ok) return ttlMs
  return {
    ok: true,
    value: { id: id as string | undefined, name, params: params as JsonValue | undefined, timeoutMs: timeoutMs.value, ttlMs: ttlMs.value },
  }
}

/** A command request as published on MQTT: `{id?, name, params?, ttlMs?, timeoutMs?}` (docs/mqtt.md). */
export function checkMqttCommand(payload: unknown): Checked<CommandRequest> {
  const body = asObject(payload)
  if (body === undefined) return { ok: false, message: 'payload: an object {id?, name, params?, ttlMs?, timeoutMs?}' }
  const keys = onlyKeys(body, ['id', 'name', 'params', 'ttlMs', 'timeoutMs'], 'payload')
  if (!keys.ok) return keys
  return checkCommandFields(body, true)
}

/**
 * Why a JSON value (command params or a device's result) cannot be kept and delivered as it is,
 * or undefined when it can. The walk is iterative and runs before anything recursive touches the
 * value: JSON.parse builds any depth without recursing (a 1 MiB body of `[` is 524,288 levels),
 * and JSON.stringify, lmdb's msgpackr and CBOR all overflow the stack on such a value. Refused:
 * - nesting deeper than MAX_PARAMS_DEPTH;
 * - a number that is not finite (`1e999` parses as Infinity; JSON cannot write it back);
 * - a key `__proto__`: msgpackr renames it to `__proto_` when it reads the record back;
 * - a lone surrogate in a text or a key (`"\ud800"`): UTF-8 (the store, CBOR) cannot hold it and
 *   would keep and deliver replacement characters instead.
 */
export function checkJson(value: unknown, field: string): string | undefined {
  // Two stacks, value and its level (the top value is level 0), instead of a call per level.
  const values: unknown[] = [value]
  const levels: number[] = [0]
  while (values.length > 0) {
    const item = values.pop()
    const level = levels.pop() ?? 0
    if (typeof item === 'number' && !Number.isFinite(item)) return `${field}: numbers must be finite`
    if (typeof item === 'string' && hasLoneSurrogate(item)) return `${field}: text must be valid Unicode (a lone surrogate)`
    if (typeof item !== 'object' || item === null) continue
    if (level >= MAX_PARAMS_DEPTH) return `${field}: nested deeper than ${MAX_PARAMS_DEPTH} levels of arrays and objects`
    if (!Array.isArray(item)) {
      for (const key of Object.keys(item)) {
        if (key === '__proto__') return `${field}: the key "__proto__" is not accepted`
        if (hasLoneSurrogate(key)) return `${field}: keys must be valid Unicode (a lone surrogate)`
      }
    }
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      values.push(child)
      levels.push(level + 1)
    }
  }
  return undefined
}
