import { Decoder, Encoder } from 'cbor-x'
import { BridgeError } from './errors.js'

/** docs/configuration.md `FLEETGATE_MQTT_FORMAT`: payload encoding of MQTT messages; default `json`. */
export type MqttFormat = 'json' | 'cbor'

/** The accepted values of `FLEETGATE_MQTT_FORMAT`, default first. */
export const MQTT_FORMATS: readonly MqttFormat[] = ['json', 'cbor']

/** Largest command payload the bridge decodes, in bytes: 131072 (params are at most 64 KiB, docs/rest.md). */
export const MAX_COMMAND_PAYLOAD_BYTES = 131_072

/** Deepest nesting of arrays and maps accepted in a decoded payload: 64 levels. */
export const MAX_PAYLOAD_DEPTH = 64

/** Why a payload did not decode: over the size limit, not well-formed, or not a JSON value. */
export type DecodeFailure = 'too_large' | 'malformed' | 'not_json'

/** A decoded payload (a JSON value: objects, arrays, strings, finite numbers, booleans, null) or why not. */
export type DecodeResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly reason: DecodeFailure }

/** Encodes published payloads and safely decodes command payloads in one format. */
export interface Codec {
  /** The format this codec speaks. */
  readonly format: MqttFormat
  /** The payload bytes of `value`: UTF-8 JSON, or CBOR with plain maps (no records, no tags). */
  encode(value: unknown): Buffer
  /** Decodes a command payload; never throws. */
  decode(payload: Uint8Array): DecodeResult
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

// `useRecords: false`: a consumer with any CBOR library must read our maps (cbor-x records are a
// private extension, tag 105). `variableMapSize`: maps get their exact length header.
const cborEncoder = new Encoder({ useRecords: false, variableMapSize: true })
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true })

/**
 * Whether `value` is what `JSON.parse` could have produced. CBOR can carry more (byte strings,
 * tags such as dates, `undefined`, NaN, bigints, maps with non-text keys); a command must follow
 * the same rules whether it arrived as JSON, CBOR or over REST (docs/mqtt.md), so those are refused.
 */
function isJsonValue(value: unknown, depth: number): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value !== 'object' || depth >= MAX_PAYLOAD_DEPTH) return false
  if (Array.isArray(value)) {
    for (const item of value) if (!isJsonValue(item, depth + 1)) return false
    return true
  }
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return false
  for (const item of Object.values(value)) if (!isJsonValue(item, depth + 1)) return false
  return true
}

/** Whether `value` holds an `undefined` anywhere inside an object or an array. */
function hasUndefined(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return false
  if (Array.isArray(value)) {
    for (const item of value) if (item === undefined || hasUndefined(item)) return true
    return false
  }
  for (const item of Object.values(value)) if (item === undefined || hasUndefined(item)) return true
  return false
}

/** A copy of `value` as `JSON.stringify` sees it: undefined properties left out, undefined items null. */
function withoutUndefined(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value
  if (Array.isArray(value)) return value.map((item: unknown) => (item === undefined ? null : withoutUndefined(item)))
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) if (item !== undefined) copy[key] = withoutUndefined(item)
  return copy
}

function decodeJson(payload: Uint8Array): DecodeResult {
  let text: string
  try {
    text = utf8.decode(payload)
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch {
    return { ok: false, reason: 'malformed' }
  }
}

function decodeCbor(payload: Uint8Array): DecodeResult {
  let value: unknown
  try {
    // cbor-x throws on truncated data and on bytes after the first data item.
    value = cborDecoder.decode(payload) as unknown
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  return isJsonValue(value, 0) ? { ok: true, value } : { ok: false, reason: 'not_json' }
}

const codecs: Readonly<Record<MqttFormat, Codec>> = {
  json: Object.freeze({
    format: 'json',
    encode: (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8'),
    decode: (payload: Uint8Array): DecodeResult =>
      payload.byteLength > MAX_COMMAND_PAYLOAD_BYTES ? { ok: false, reason: 'too_large' } : decodeJson(payload),
  }),
  cbor: Object.freeze({
    format: 'cbor',
    // cbor-x hands out slices of a shared buffer but never rewrites a slice it returned: each
    // encode starts after the previous one, so a payload stays valid while aedes or mqtt.js holds it.
    // An optional field set to undefined (`{ ts, m, g: undefined }`) must be left out, as JSON
    // does, not reach CBOR readers as the `undefined` simple value. Copy only when there is one.
    encode: (value: unknown): Buffer => cborEncoder.encode(hasUndefined(value) ? withoutUndefined(value) : value),
    decode: (payload: Uint8Array): DecodeResult =>
      payload.byteLength > MAX_COMMAND_PAYLOAD_BYTES ? { ok: false, reason: 'too_large' } : decodeCbor(payload),
  }),
}

/** The codec of `format` (`FLEETGATE_MQTT_FORMAT`, default `json`); throws `BRIDGE_ERR_INVALID_OPTION` otherwise. */
export function getCodec(format: MqttFormat = 'json'): Codec {
  if (format !== 'json' && format !== 'cbor') {
    throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', `FLEETGATE_MQTT_FORMAT must be "json" or "cbor", got ${JSON.stringify(String(format))}`)
  }
  return codecs[format]
}
