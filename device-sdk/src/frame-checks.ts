// Field-by-field validation of decoded CBOR (docs/protocol.md). This is the hub's per-frame hot path:
// patterns are module constants, success builds only the result objects, and reason strings
// (with their paths) are built only when a check fails.
import {
  COMMAND_ID_PATTERN,
  DEVICE_ID_PATTERN,
  MAX_BATCH_READINGS,
  MAX_METRIC_TEXT_BYTES,
  MAX_METRICS,
  MAX_TAG_VALUE_BYTES,
  MAX_TAGS,
  MAX_TS_MS,
  METRIC_KEY_PATTERN,
  RESERVED_TAG_KEY,
  utf8ByteLength,
  type BatchFrame,
  type CommandFrame,
  type Decoded,
  type DecodeFailure,
  type HelloFrame,
  type HubFrame,
  type JsonValue,
  type Metrics,
  type Reading,
  type ResultFrame,
  type Tags,
  type TelemetryFrame,
  type TwinAckFrame,
  type TwinDesiredFrame,
  type TwinDocument,
  type TwinReportFrame,
  TWIN_REFUSALS,
} from './frames.js'
import { isTwinReportId, MAX_TWIN_REPORT_ID_CHARS, twinPatchProblem } from './twin-doc.js'

type WireMap = Map<unknown, unknown>

const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER)
const MIN_SAFE_BIGINT = -MAX_SAFE_BIGINT
// Text of at most this many UTF-16 units is within the byte limit whatever it holds (3 bytes per unit at most).
const METRIC_TEXT_SURELY_SHORT = Math.floor(MAX_METRIC_TEXT_BYTES / 3)
const TAG_VALUE_SURELY_SHORT = Math.floor(MAX_TAG_VALUE_BYTES / 3)

/**
 * A uint of the wire (`s`, `ts`, `now`, `exp`): a safe non-negative integer. cbor-x hands 64-bit
 * CBOR integers over as bigint; one that fits in 2^53 - 1 is accepted. An integral float (cbor-x
 * itself writes integers of 2^32 and more as float64) is accepted too: JavaScript cannot tell them apart.
 */
export function uint(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value || 0 : undefined
  if (typeof value === 'bigint') return value >= 0n && value <= MAX_SAFE_BIGINT ? Number(value) : undefined
  return undefined
}

/** A reading's `ts`: a uint (Unix ms) that InfluxDB can store, i.e. at most MAX_TS_MS. */
export function timestamp(value: unknown): number | undefined {
  const ts = uint(value)
  return ts === undefined || ts > MAX_TS_MS ? undefined : ts
}

const TS_EXPECTED = `an unsigned integer (Unix ms) up to ${MAX_TS_MS}`

export function checkTelemetry(map: WireMap): Decoded<TelemetryFrame> {
  const rawS = map.get('s')
  const s = uint(rawS)
  if (s === undefined) return invalid(`s: expected an unsigned integer, got ${describe(rawS)}`)
  const rawTs = map.get('ts')
  const ts = timestamp(rawTs)
  if (ts === undefined && rawTs !== undefined) return invalid(`ts: expected ${TS_EXPECTED}, got ${describe(rawTs)}`, s)
  const m = checkMetrics(map.get('m'))
  if (typeof m === 'string') return invalid(`m${m}`, s)
  const frame: TelemetryFrame = ts === undefined ? { t: 'tm', s, m } : { t: 'tm', s, ts, m }
  const rawG = map.get('g')
  if (rawG !== undefined) {
    const g = checkTags(rawG)
    if (typeof g === 'string') return invalid(`g${g}`, s)
    frame.g = g
  }
  return { ok: true, frame }
}

export function checkBatch(map: WireMap): Decoded<BatchFrame> {
  const rawS = map.get('s')
  const s = uint(rawS)
  if (s === undefined) return invalid(`s: expected an unsigned integer, got ${describe(rawS)}`)
  const r = map.get('r')
  if (!isArray(r)) return invalid(`r: expected an array of 1 to ${MAX_BATCH_READINGS} readings, got ${describe(r)}`, s)
  if (r.length === 0 || r.length > MAX_BATCH_READINGS) {
    return invalid(`r: ${r.length} readings, expected 1 to ${MAX_BATCH_READINGS}`, s)
  }
  const readings: Reading[] = []
  for (let i = 0; i < r.length; i++) {
    const item = r[i]
    if (!(item instanceof Map)) return invalid(`r[${i}]: expected a map, got ${describe(item)}`, s)
    const rawTs = item.get('ts')
    const ts = timestamp(rawTs)
    if (ts === undefined) return invalid(`r[${i}].ts: expected ${TS_EXPECTED}, got ${describe(rawTs)}`, s)
    const m = checkMetrics(item.get('m'))
    if (typeof m === 'string') return invalid(`r[${i}].m${m}`, s)
    const rawG = item.get('g')
    if (rawG === undefined) {
      readings.push({ ts, m })
      continue
    }
    const g = checkTags(rawG)
    if (typeof g === 'string') return invalid(`r[${i}].g${g}`, s)
    readings.push({ ts, m, g })
  }
  return { ok: true, frame: { t: 'tb', s, r: readings } }
}

export function checkResult(map: WireMap): Decoded<ResultFrame> {
  const id = map.get('id')
  if (typeof id !== 'string' || !COMMAND_ID_PATTERN.test(id)) return invalid(`id: expected 1 to 64 of A-Z a-z 0-9 _ . -, got ${show(id)}`)
  const refused = (reason: string): DecodeFailure => ({ ok: false, code: 'invalid', id, t: 'res', reason })
  const ok = map.get('ok')
  if (typeof ok !== 'boolean') return refused(`ok: expected a bool, got ${describe(ok)}`)
  const frame: ResultFrame = { t: 'res', id, ok }
  const rawR = map.get('r')
  if (rawR !== undefined) {
    const r = toJson(rawR)
    if (r instanceof NotJson) return refused(`r${r.reason}`)
    frame.r = r
  }
  const e = map.get('e')
  if (e !== undefined) {
    if (typeof e !== 'string') return refused(`e: expected text, got ${describe(e)}`)
    frame.e = e
  }
  return { ok: true, frame }
}

const REPORT_ID_EXPECTED = `text of 1 to ${MAX_TWIN_REPORT_ID_CHARS} characters`

export function checkTwinReport(map: WireMap): Decoded<TwinReportFrame> {
  const id = map.get('id')
  if (!isTwinReportId(id)) return invalid(`id: expected ${REPORT_ID_EXPECTED}, got ${show(id)}`)
  const refused = (reason: string): DecodeFailure => ({ ok: false, code: 'invalid', id, t: 'twr', reason })
  const rawP = map.get('p')
  if (!(rawP instanceof Map)) return refused(`p: expected a map (a merge patch), got ${describe(rawP)}`)
  const p = toJson(rawP)
  if (p instanceof NotJson) return refused(`p${p.reason}`)
  // a map became an object: toJson built it from scratch, so the twin rules check it in place
  const problem = twinPatchProblem(p)
  if (problem !== undefined) return refused(`p${problem}`)
  return { ok: true, frame: { t: 'twr', id, p: p as TwinDocument } }
}

export function checkTwinDesired(map: WireMap): Decoded<TwinDesiredFrame> {
  const rawV = map.get('v')
  const v = uint(rawV)
  if (v === undefined) return invalid(`v: expected an unsigned integer, got ${describe(rawV)}`)
  const rawD = map.get('d')
  if (!(rawD instanceof Map)) return invalid(`d: expected a map (the desired document), got ${describe(rawD)}`)
  const d = toJson(rawD)
  if (d instanceof NotJson) return invalid(`d${d.reason}`)
  return { ok: true, frame: { t: 'twd', v, d: d as TwinDocument } }
}

export function checkTwinAck(map: WireMap): Decoded<TwinAckFrame> {
  const id = map.get('id')
  if (!isTwinReportId(id)) return invalid(`id: expected ${REPORT_ID_EXPECTED}, got ${show(id)}`)
  const rawV = map.get('v')
  const e = map.get('e')
  if (rawV !== undefined && e === undefined) {
    const v = uint(rawV)
    if (v === undefined) return invalid(`v: expected an unsigned integer, got ${describe(rawV)}`)
    return { ok: true, frame: { t: 'twa', id, v } }
  }
  const refusal = TWIN_REFUSALS.find((reason) => reason === e)
  if (rawV === undefined && refusal !== undefined) return { ok: true, frame: { t: 'twa', id, e: refusal } }
  return invalid(`expected v (a version) or e (${TWIN_REFUSALS.join(', ')}), got v ${describe(rawV)} and e ${describe(e)}`)
}

export function checkHello(map: WireMap): Decoded<HelloFrame> {
  const dev = map.get('dev')
  if (typeof dev !== 'string' || !DEVICE_ID_PATTERN.test(dev)) return invalid(`dev: expected a device id, got ${show(dev)}`)
  const rawNow = map.get('now')
  const now = uint(rawNow)
  if (now === undefined) return invalid(`now: expected an unsigned integer (Unix ms), got ${describe(rawNow)}`)
  const v = map.get('v')
  if (typeof v !== 'string') return invalid(`v: expected text, got ${describe(v)}`)
  const lim = map.get('lim')
  if (!(lim instanceof Map)) return invalid(`lim: expected a map, got ${describe(lim)}`)
  const frameBytes = positive(lim.get('frame'))
  const batch = positive(lim.get('batch'))
  const window = positive(lim.get('window'))
  const rate = lim.get('rate')
  if (frameBytes === undefined) return invalid(`lim.frame: expected a positive integer, got ${describe(lim.get('frame'))}`)
  if (batch === undefined) return invalid(`lim.batch: expected a positive integer, got ${describe(lim.get('batch'))}`)
  if (window === undefined) return invalid(`lim.window: expected a positive integer, got ${describe(lim.get('window'))}`)
  // FLEETGATE_DEVICE_RATE is frames per second and may be fractional (0.5: one frame every 2 s)
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
    return invalid(`lim.rate: expected a positive number, got ${describe(rate)}`)
  }
  return { ok: true, frame: { t: 'hello', dev, now, v, lim: { frame: frameBytes, batch, rate, window } } }
}

export function checkAckOrNak(map: WireMap, t: 'ack' | 'nak'): Decoded<HubFrame> {
  const rawS = map.get('s')
  const s = uint(rawS)
  if (s === undefined) return invalid(`s: expected an unsigned integer, got ${describe(rawS)}`)
  if (t === 'ack') return { ok: true, frame: { t: 'ack', s } }
  const e = map.get('e')
  if (e !== 'invalid' && e !== 'rate' && e !== 'seq' && e !== 'too_many') {
    return invalid(`e: expected invalid, rate, seq or too_many, got ${show(e)}`, s)
  }
  return { ok: true, frame: { t: 'nak', s, e } }
}

export function checkCommand(map: WireMap): Decoded<CommandFrame> {
  const id = map.get('id')
  if (typeof id !== 'string' || !COMMAND_ID_PATTERN.test(id)) return invalid(`id: expected 1 to 64 of A-Z a-z 0-9 _ . -, got ${show(id)}`)
  const n = map.get('n')
  if (typeof n !== 'string' || !COMMAND_ID_PATTERN.test(n)) {
    return { ok: false, code: 'invalid', id, reason: `n: expected 1 to 64 of A-Z a-z 0-9 _ . -, got ${show(n)}` }
  }
  const frame: CommandFrame = { t: 'cmd', id, n }
  const rawP = map.get('p')
  if (rawP !== undefined) {
    const p = toJson(rawP)
    if (p instanceof NotJson) return { ok: false, code: 'invalid', id, reason: `p${p.reason}` }
    frame.p = p
  }
  const rawExp = map.get('exp')
  if (rawExp !== undefined) {
    const exp = uint(rawExp)
    if (exp === undefined) return { ok: false, code: 'invalid', id, reason: `exp: expected an unsigned integer (Unix ms), got ${describe(rawExp)}` }
    frame.exp = exp
  }
  return { ok: true, frame }
}

export function checkError(map: WireMap): Decoded<HubFrame> {
  const e = map.get('e')
  if (typeof e !== 'string') return invalid(`e: expected text, got ${describe(e)}`)
  const msg = map.get('msg')
  if (typeof msg !== 'string') return invalid(`msg: expected text, got ${describe(msg)}`)
  return { ok: true, frame: { t: 'err', e, msg } }
}

// Metric and tag maps are built as plain objects from validated keys only. A `__proto__` key is
// refused: assigning it would set the object's prototype instead of adding a field, here or in any
// JavaScript consumer that copies telemetry with `Object.assign` or `obj[k] = v` after JSON.parse
// (MQTT subscribers). Every other key, `constructor` and `prototype` included, becomes an own data
// property that shadows nothing dangerous, so it stays allowed.
/** A metrics map `m` checked and copied, or why not (the text starts with the path below `m`). */
export function checkMetrics(value: unknown): Metrics | string {
  if (!(value instanceof Map)) return `: expected a map of 1 to ${MAX_METRICS} metrics, got ${describe(value)}`
  if (value.size === 0 || value.size > MAX_METRICS) return `: ${value.size} metrics, expected 1 to ${MAX_METRICS}`
  const out: Metrics = {}
  for (const [key, item] of value) {
    const badKey = checkKey(key)
    if (badKey !== undefined) return badKey
    const name = key as string
    switch (typeof item) {
      case 'number':
        if (!Number.isFinite(item)) return `.${name}: not a finite number (${item})`
        out[name] = item
        break
      case 'boolean':
        out[name] = item
        break
      case 'string':
        if (item.length > METRIC_TEXT_SURELY_SHORT) {
          const bytes = utf8ByteLength(item)
          if (bytes > MAX_METRIC_TEXT_BYTES) return `.${name}: text of ${bytes} bytes, at most ${MAX_METRIC_TEXT_BYTES}`
        }
        out[name] = item
        break
      case 'bigint':
        // a 64-bit CBOR integer: kept only when exact as a number; a device wanting a larger
        // value sends a float (InfluxDB stores every metric as a float anyway, docs/telemetry.md)
        if (item < MIN_SAFE_BIGINT || item > MAX_SAFE_BIGINT) return `.${name}: integer ${item} beyond ±(2^53 - 1)`
        out[name] = Number(item)
        break
      default:
        return `.${name}: expected a finite number, a bool or text, got ${describe(item)}`
    }
  }
  return out
}

/** A tags map `g` checked and copied, or why not (the text starts with the path below `g`). */
export function checkTags(value: unknown): Tags | string {
  if (!(value instanceof Map)) return `: expected a map of at most ${MAX_TAGS} tags, got ${describe(value)}`
  if (value.size > MAX_TAGS) return `: ${value.size} tags, at most ${MAX_TAGS}`
  const out: Tags = {}
  for (const [key, item] of value) {
    const badKey = checkKey(key)
    if (badKey !== undefined) return badKey
    const name = key as string
    if (name === RESERVED_TAG_KEY) return `: reserved key "${RESERVED_TAG_KEY}" (the hub sets it)`
    if (typeof item !== 'string') return `.${name}: expected text, got ${describe(item)}`
    if (item.length === 0) return `.${name}: empty text, expected 1 to ${MAX_TAG_VALUE_BYTES} bytes`
    if (item.length > TAG_VALUE_SURELY_SHORT) {
      const bytes = utf8ByteLength(item)
      if (bytes > MAX_TAG_VALUE_BYTES) return `.${name}: text of ${bytes} bytes, at most ${MAX_TAG_VALUE_BYTES}`
    }
    out[name] = item
  }
  return out
}

function checkKey(key: unknown): string | undefined {
  if (typeof key !== 'string') return `: key ${describe(key)} is not text`
  if (!METRIC_KEY_PATTERN.test(key)) return `: bad key ${show(key)}, expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`
  if (key === '__proto__') return ': reserved key "__proto__"'
  return undefined
}

/** Why a decoded value is not JSON; `reason` starts with the path below the field (`.a[2]: ...`). */
class NotJson {
  constructor(public reason: string) {}
}

// Command params and results are JSON (docs/rest.md) and go on to REST and MQTT as JSON, so what
// JSON cannot hold (byte strings, tags, undefined, NaN, non-text keys) is refused here rather than
// breaking JSON.stringify later. Recursion is bounded: cbor-scan refuses nesting deeper than 32 and
// shared references, so no value is visited twice.
function toJson(value: unknown): JsonValue | NotJson {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      return Number.isFinite(value) ? value : new NotJson(`: not a finite number (${value})`)
    case 'bigint':
      return value >= MIN_SAFE_BIGINT && value <= MAX_SAFE_BIGINT ? Number(value) : new NotJson(`: integer ${value} beyond ±(2^53 - 1)`)
    case 'object': {
      if (value === null) return null
      if (isArray(value)) {
        const out: JsonValue[] = []
        for (let i = 0; i < value.length; i++) {
          const item = toJson(value[i])
          if (item instanceof NotJson) {
            item.reason = `[${i}]${item.reason}`
            return item
          }
          out.push(item)
        }
        return out
      }
      if (value instanceof Map) {
        const out: { [key: string]: JsonValue } = {}
        for (const [key, entry] of value) {
          if (typeof key !== 'string') return new NotJson(`: key ${describe(key)} is not text`)
          const item = toJson(entry)
          if (item instanceof NotJson) {
            item.reason = `.${key}${item.reason}`
            return item
          }
          if (key === '__proto__') {
            // an own property, as JSON.parse makes it, not a prototype change
            Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true })
          } else {
            out[key] = item
          }
        }
        return out
      }
      return new NotJson(`: ${describe(value)} is not JSON`)
    }
    default:
      return new NotJson(`: ${describe(value)} is not JSON`)
  }
}

function positive(value: unknown): number | undefined {
  const n = uint(value)
  return n === undefined || n === 0 ? undefined : n
}

function isArray(value: unknown): value is readonly unknown[] {
  return Array.isArray(value)
}

function invalid(reason: string, s?: number): DecodeFailure {
  return s === undefined ? { ok: false, code: 'invalid', reason } : { ok: false, code: 'invalid', s, reason }
}

/** A short description of a decoded value for a failure reason: literal for scalars, a kind otherwise. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'nothing'
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value)
    case 'string':
      return `text ${show(value)}`
    case 'object':
      if (value === null) return 'null'
      if (isArray(value)) return 'an array'
      if (value instanceof Map) return 'a map'
      if (value instanceof Uint8Array) return 'a byte string'
      // what else cbor-x makes of a CBOR tag: Date, Set, typed arrays, Tag
      return 'a tagged value'
    default:
      return `a ${typeof value}`
  }
}

/** Text as a quoted literal cut to 64 characters, anything else as describe() says. */
export function show(value: unknown): string {
  if (typeof value !== 'string') return describe(value)
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)
}
