// Frame types and limits of the wire format (docs/protocol.md). Times are Unix milliseconds.

/** Most readings in one `tb` frame; default 500 (docs/protocol.md). */
export const MAX_BATCH_READINGS = 500
/** Most entries in a metrics map `m`, at least 1; default 64 (docs/protocol.md). */
export const MAX_METRICS = 64
/** Most entries in a tags map `g`; default 16 (docs/protocol.md). */
export const MAX_TAGS = 16
/** Longest text metric value, in UTF-8 bytes; default 256 (docs/protocol.md). */
export const MAX_METRIC_TEXT_BYTES = 256
/** Longest tag value, in UTF-8 bytes (at least 1); default 128 (docs/protocol.md). */
export const MAX_TAG_VALUE_BYTES = 128
/**
 * Latest `ts` a reading may carry, in Unix ms: InfluxDB keeps time as int64 nanoseconds, so
 * 9,223,372,036,854 ms (April 2262) is the last whole millisecond it can store (docs/telemetry.md). `ts`
 * is a uint, so this is the only bound; a reading beyond it is refused `invalid` before it is acked.
 */
export const MAX_TS_MS = 9_223_372_036_854
/** Device id: 1 to 64 of `A-Z a-z 0-9 _ -`; safe in a URL path, an MQTT topic level and an InfluxDB tag (docs/protocol.md). */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
/** Metric and tag key: a letter or `_`, then up to 63 of `A-Z a-z 0-9 _ . -` (docs/protocol.md). */
export const METRIC_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/
/** Command id and command name: 1 to 64 of `A-Z a-z 0-9 _ . -` (docs/protocol.md, docs/rest.md). */
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
/** The tag key a reading may not use: the hub sets tag `device` itself (docs/protocol.md, docs/telemetry.md). */
export const RESERVED_TAG_KEY = 'device'

/** Metric values by metric name: a finite number, a bool, or text of at most 256 UTF-8 bytes; 1 to 64 entries. */
export type Metrics = Record<string, number | boolean | string>
/** Tag values by tag name: text of 1 to 128 UTF-8 bytes; at most 16 entries, never `device`. */
export type Tags = Record<string, string>
/** A JSON value: what command params `p` and results `r` carry (docs/rest.md: params are JSON). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** One reading of a `tb` batch: `ts` Unix ms (required), metrics, optional tags. */
export interface Reading {
  ts: number
  m: Metrics
  g?: Tags
}

/** Device to hub, one reading: `s` seq (uint), `ts` Unix ms (optional: the hub's receive time is used). */
export interface TelemetryFrame {
  t: 'tm'
  s: number
  ts?: number
  m: Metrics
  g?: Tags
}

/** Device to hub, 1 to 500 readings under one seq `s`. */
export interface BatchFrame {
  t: 'tb'
  s: number
  r: Reading[]
}

/** Device to hub, the result of command `id`: `ok`, optional result `r` (JSON), optional error text `e`. */
export interface ResultFrame {
  t: 'res'
  id: string
  ok: boolean
  r?: JsonValue
  e?: string
}

/**
 * A twin document (docs/twins.md): a JSON object, at most MAX_TWIN_BYTES as compact JSON, nesting at
 * most MAX_TWIN_DEPTH levels, keys of 1 to 128 UTF-8 bytes not starting with `$`. A merge patch
 * (RFC 7386) has the same shape; in a patch, a `null` member deletes its key.
 */
export type TwinDocument = { [key: string]: JsonValue }

/** Device to hub: merge patch `p` for the twin's `reported` document, under report id `id` (1 to 64 characters). */
export interface TwinReportFrame {
  t: 'twr'
  id: string
  p: TwinDocument
}

/** Any device-to-hub frame, discriminated by `t`. */
export type DeviceFrame = TelemetryFrame | BatchFrame | ResultFrame | TwinReportFrame

/** Session limits the hub announces: `frame` bytes, `batch` readings, `rate` frames/s, `window` unacked frames (default 64). */
export interface HubLimits {
  frame: number
  batch: number
  rate: number
  window: number
}

/** Hub to device, first frame of every session: device id, hub time `now` (Unix ms), hub version, limits. */
export interface HelloFrame {
  t: 'hello'
  dev: string
  now: number
  v: string
  lim: HubLimits
}

/** Hub to device: every frame of this connection with seq <= `s` that was not naked is durably stored. */
export interface AckFrame {
  t: 'ack'
  s: number
}

/** Why the hub refuses a frame (docs/protocol.md); docs/protocol.md and docs/errors.md say what each asks of a device. */
export const NAK_REASONS = ['invalid', 'rate', 'seq', 'too_many'] as const

/** One of NAK_REASONS. */
export type NakReason = (typeof NAK_REASONS)[number]

/** Hub to device: frame `s` is refused and will not be stored; do not resend it. */
export interface NakFrame {
  t: 'nak'
  s: number
  e: NakReason
}

/** Hub to device, a command: id, name `n`, optional params `p` (JSON), optional deadline `exp` (Unix ms). */
export interface CommandFrame {
  t: 'cmd'
  id: string
  n: string
  p?: JsonValue
  exp?: number
}

/**
 * The codes of the `err` frames a hub sends: `text` (a text message, close 1003), `too_big` (over
 * the frame limit, 1009), and the DecodeFailureCode of a message that does not decode (1007).
 */
export const ERROR_FRAME_CODES = ['text', 'not_cbor', 'not_map', 'unknown_type', 'invalid', 'too_big'] as const

/** One of ERROR_FRAME_CODES. */
export type ErrorFrameCode = (typeof ERROR_FRAME_CODES)[number]

/**
 * Hub to device, sent just before the hub closes the session for a protocol error: code `e`, text
 * `msg`. `e` is read as any text, so that a device keeps working with a hub that adds a code.
 */
export interface ErrorFrame {
  t: 'err'
  e: string
  msg: string
}

/** Hub to device: the whole desired document `d` at desired version `v` (after `hello`, and after each change). */
export interface TwinDesiredFrame {
  t: 'twd'
  v: number
  d: TwinDocument
}

/** Why the hub refused a twin report (docs/twins.md); nothing changed. */
export type TwinRefusal = 'invalid' | 'too_large' | 'rate'

/** Every TwinRefusal, in the contract's order. */
export const TWIN_REFUSALS: readonly TwinRefusal[] = Object.freeze(['invalid', 'too_large', 'rate'])

/**
 * Hub to device: the report `id` is durably applied and `reported` is now at version `v`, or it
 * was refused for `e` and nothing changed. Exactly one of `v` and `e` is set.
 */
export type TwinAckFrame = { t: 'twa'; id: string; v: number; e?: undefined } | { t: 'twa'; id: string; e: TwinRefusal; v?: undefined }

/** Any hub-to-device frame, discriminated by `t`. */
export type HubFrame = HelloFrame | AckFrame | NakFrame | CommandFrame | ErrorFrame | TwinDesiredFrame | TwinAckFrame

/**
 * Why bytes did not decode to a frame:
 * - `not_cbor`: not exactly one well-formed CBOR data item (or one this codec refuses to decode);
 * - `not_map`: valid CBOR, but not a map;
 * - `unknown_type`: a map whose `t` is missing or not a type of this direction;
 * - `invalid`: a known `t` with a bad field.
 */
export type DecodeFailureCode = 'not_cbor' | 'not_map' | 'unknown_type' | 'invalid'

/**
 * A frame that did not decode. `s` is set when the frame carried a valid seq (so the hub can
 * `nak` it); `id` when a `res` frame carried a valid command id or a `twr` frame a valid report id
 * (so the hub can answer it), and then `t` says which; `reason` is for humans and logs.
 */
export interface DecodeFailure {
  ok: false
  code: DecodeFailureCode
  s?: number
  id?: string
  t?: 'res' | 'twr'
  reason: string
}

/** The outcome of decoding: a validated frame, or why not. */
export type Decoded<F> = { ok: true; frame: F } | DecodeFailure

/**
 * The stamp of the next reading of a series whose last stamp was `lastMs`, at `nowMs` (Unix ms):
 * `nowMs`, or 1 ms after the last on a tie (or a clock that stepped back). Two readings of one
 * device stamped within one millisecond would otherwise land on one InfluxDB point, the later
 * overwriting the earlier (docs/telemetry.md: time is `ts` in ms).
 */
export function nextStamp(lastMs: number, nowMs: number): number {
  return Math.max(nowMs, lastMs + 1)
}

/**
 * Length of `text` in UTF-8 bytes, counted without encoding it. A lone surrogate counts 3 bytes,
 * as encoders write it as U+FFFD.
 */
export function utf8ByteLength(text: string): number {
  const length = text.length
  let bytes = length
  for (let i = 0; i < length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) continue
    if (unit < 0x800) {
      bytes += 1
    } else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // a surrogate pair: two UTF-16 units, one 4-byte UTF-8 sequence
      bytes += 2
      i++
    } else {
      bytes += 2
    }
  }
  return bytes
}
