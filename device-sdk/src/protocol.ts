// The Fleetgate wire codec (docs/protocol.md): typed frames <-> CBOR bytes, with validation. Pure: no
// socket, clock or logger, so the hub and the SDK share one definition of the wire format.
import { Decoder, Encoder, type Options as CborOptions } from 'cbor-x'
import { definiteStrings, INDEFINITE_STRINGS, scanCbor } from './cbor-scan.js'
import { SdkError } from './errors.js'
import {
  checkAckOrNak,
  checkBatch,
  checkCommand,
  checkError,
  checkHello,
  checkResult,
  checkTelemetry,
  checkTwinAck,
  checkTwinDesired,
  checkTwinReport,
  describe,
  show,
} from './frame-checks.js'
import type { Decoded, DecodeFailure, DeviceFrame, HubFrame, Metrics, Reading } from './frames.js'
import { readTelemetry } from './telemetry-reader.js'

export * from './frames.js'

// docs/protocol.md: each message is one standard CBOR data item, a map with text keys, readable by any
// decoder. cbor-x defaults to its own extensions, so every one is switched off explicitly: no
// records (tag 105 / 0xdfff), no bundled strings, no packing, no shared references, no tag 64 on
// Uint8Array, no tag 259 on Map. Preferred (shortest) map headers.
const encoderOptions: CborOptions & { useTag259ForMaps: boolean } = {
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  bundleStrings: false,
  pack: false,
  structuredClone: false,
  tagUint8Array: false,
  useTag259ForMaps: false,
  useSelfDescribedHeader: false,
}
const encoder = new Encoder(encoderOptions)

// Decoding yields Map, not plain objects (mapsAsObjects: false), on purpose:
// - keys arrive exactly as sent. With objects, cbor-x renames a `__proto__` key to `__proto_` (its
//   pollution guard) and turns non-text keys into text, so a frame would be silently altered
//   instead of refused;
// - a Map has no prototype chain to pollute;
// - it is faster: about 1.4 µs against 1.7 to 3 µs for a typical `tm` frame (cbor-x 1.6, Node 20).
// The validated frames handed out are plain objects built from the checked fields only.
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false })

/**
 * Encodes one frame as a CBOR map with text keys (RFC 8949). Optional keys that are undefined are
 * left out; keys not in the frame's type are not written. Integers beyond 32 bits go out as CBOR
 * integers (major type 0/1), not floats, so a strict decoder on a device reads `now` or `ts` as a uint.
 * The result may share its ArrayBuffer with earlier results; it is never overwritten.
 * Throws SdkError SDK_ERR_PROTOCOL for a frame that cannot be encoded (unknown `t`, a symbol in `r`).
 */
export function encodeFrame(frame: DeviceFrame | HubFrame): Uint8Array {
  let wire: Record<string, unknown>
  switch (frame.t) {
    case 'tm':
      wire = { t: 'tm', s: wireInt(frame.s) }
      if (frame.ts !== undefined) wire.ts = wireInt(frame.ts)
      wire.m = wireMetrics(frame.m)
      if (frame.g !== undefined) wire.g = frame.g
      break
    case 'tb':
      wire = { t: 'tb', s: wireInt(frame.s), r: frame.r.map(wireReading) }
      break
    case 'res':
      wire = { t: 'res', id: frame.id, ok: frame.ok }
      if (frame.r !== undefined) wire.r = frame.r
      if (frame.e !== undefined) wire.e = frame.e
      break
    case 'hello': {
      const { frame: frameBytes, batch, rate, window } = frame.lim
      wire = { t: 'hello', dev: frame.dev, now: wireInt(frame.now), v: frame.v, lim: { frame: frameBytes, batch, rate, window } }
      break
    }
    case 'ack':
      // The hub's most frequent frame, written byte by byte: the same bytes as the encoder's.
      return encodeAck(frame.s)
    case 'nak':
      wire = { t: 'nak', s: wireInt(frame.s), e: frame.e }
      break
    case 'cmd':
      wire = { t: 'cmd', id: frame.id, n: frame.n }
      if (frame.p !== undefined) wire.p = frame.p
      if (frame.exp !== undefined) wire.exp = wireInt(frame.exp)
      break
    case 'err':
      wire = { t: 'err', e: frame.e, msg: frame.msg }
      break
    case 'twr':
      wire = { t: 'twr', id: frame.id, p: frame.p }
      break
    case 'twd':
      wire = { t: 'twd', v: wireInt(frame.v), d: frame.d }
      break
    case 'twa':
      wire = frame.e === undefined ? { t: 'twa', id: frame.id, v: wireInt(frame.v) } : { t: 'twa', id: frame.id, e: frame.e }
      break
    default: {
      const unknown: never = frame
      throw new SdkError('SDK_ERR_PROTOCOL', `cannot encode a frame with t = ${show((unknown as { t?: unknown }).t)}`)
    }
  }
  try {
    return encoder.encode(wire)
  } catch (cause) {
    throw new SdkError('SDK_ERR_PROTOCOL', `cannot encode a ${frame.t} frame`, { cause })
  }
}

/** The CBOR head of `{t: 'ack', s: ...}` up to the value of `s`: map of 2, "t", "ack", "s". */
const ACK_HEAD = [0xa2, 0x61, 0x74, 0x63, 0x61, 0x63, 0x6b, 0x61, 0x73]

/** `{t: 'ack', s}` as encodeFrame writes it: `s` as the shortest CBOR unsigned integer (RFC 8949 §4.2.1). */
function encodeAck(s: number): Uint8Array {
  if (!Number.isSafeInteger(s) || s < 0) throw new SdkError('SDK_ERR_PROTOCOL', `cannot encode an ack frame: s = ${show(s)}`)
  const size = s < 24 ? 0 : s < 0x100 ? 1 : s < 0x10000 ? 2 : s < 0x100000000 ? 4 : 8
  const out = new Uint8Array(ACK_HEAD.length + 1 + size)
  out.set(ACK_HEAD)
  const at = ACK_HEAD.length
  if (size === 0) {
    out[at] = s
    return out
  }
  out[at] = size === 1 ? 0x18 : size === 2 ? 0x19 : size === 4 ? 0x1a : 0x1b
  // big-endian, most significant byte first; above 2^32 the high word comes from a division
  let rest = s
  for (let i = size; i >= 1; i--) {
    out[at + i] = rest % 256
    rest = Math.floor(rest / 256)
  }
  return out
}

/**
 * Decodes and validates one device-to-hub frame (`tm`, `tb`, `res`, `twr`). Never throws: any input,
 * hostile or not, yields a frame built from validated fields only, or a DecodeFailure. The frame
 * holds no view of `bytes` (byte strings are refused everywhere), so the caller may reuse or
 * detach the buffer at once (uWS neuters message ArrayBuffers when the handler returns).
 */
export function decodeDeviceFrame(bytes: Uint8Array): Decoded<DeviceFrame> {
  // Telemetry in its plain form is read directly (the hub's hot path); everything else, refusals
  // included, the general way, which gives the same answer for any frame the reader takes.
  return (bytes instanceof Uint8Array ? readTelemetry(bytes) : undefined) ?? decodeDeviceFrameGenerally(bytes)
}

/**
 * decodeDeviceFrame the general way, for every input: scan, cbor-x, field checks. Not part of the
 * wire surface; its tests hold the direct telemetry reader to it.
 */
export function decodeDeviceFrameGenerally(bytes: Uint8Array): Decoded<DeviceFrame> {
  const map = decodeMap(bytes)
  if (!(map instanceof Map)) return map
  const t = map.get('t')
  switch (t) {
    case 'tm':
      return checkTelemetry(map)
    case 'tb':
      return checkBatch(map)
    case 'res':
      return checkResult(map)
    case 'twr':
      return checkTwinReport(map)
    default:
      return unknownType(t, 'tm, tb, res or twr')
  }
}

/**
 * Decodes and validates one hub-to-device frame (`hello`, `ack`, `nak`, `cmd`, `err`, `twd`, `twa`). Never throws,
 * like decodeDeviceFrame.
 */
export function decodeHubFrame(bytes: Uint8Array): Decoded<HubFrame> {
  const map = decodeMap(bytes)
  if (!(map instanceof Map)) return map
  const t = map.get('t')
  switch (t) {
    case 'hello':
      return checkHello(map)
    case 'ack':
    case 'nak':
      return checkAckOrNak(map, t)
    case 'cmd':
      return checkCommand(map)
    case 'err':
      return checkError(map)
    case 'twd':
      return checkTwinDesired(map)
    case 'twa':
      return checkTwinAck(map)
    default:
      return unknownType(t, 'hello, ack, nak, cmd, err, twd or twa')
  }
}

function decodeMap(bytes: Uint8Array): Map<unknown, unknown> | DecodeFailure {
  if (!(bytes instanceof Uint8Array)) return { ok: false, code: 'not_cbor', reason: `expected a Uint8Array, got ${kindOf(bytes)}` }
  const scan = scanCbor(bytes)
  if (typeof scan === 'string') return { ok: false, code: 'not_cbor', reason: scan }
  let value: unknown
  try {
    value = decoder.decode(scan === INDEFINITE_STRINGS ? definiteStrings(bytes) : bytes)
  } catch (error) {
    // cbor-x throws Error and RangeError (stack, allocation) alike; none of it may escape
    return { ok: false, code: 'not_cbor', reason: error instanceof Error ? error.message : String(error) }
  }
  if (!(value instanceof Map)) return { ok: false, code: 'not_map', reason: `expected a CBOR map, got ${describe(value)}` }
  return value
}

function kindOf(value: unknown): string {
  // [object ArrayBuffer], [object Array], ... for objects; typeof for the rest (never throws, unlike String(symbol) templates)
  return typeof value === 'object' && value !== null ? Object.prototype.toString.call(value) : typeof value
}

function unknownType(t: unknown, known: string): DecodeFailure {
  const reason = t === undefined ? 't: missing' : `t: expected ${known}, got ${show(t)}`
  return { ok: false, code: 'unknown_type', reason }
}

/**
 * Size in bytes of `reading` encoded as one element of a `tb` frame's `r` array, so a sender can
 * pack frames up to the hub's `lim.frame` without encoding each candidate frame.
 */
export function encodedReadingBytes(reading: Reading): number {
  try {
    return encoder.encode(wireReading(reading)).length
  } catch (cause) {
    throw new SdkError('SDK_ERR_PROTOCOL', 'cannot encode a reading', { cause })
  }
}

// Safe integers beyond what cbor-x writes as a CBOR integer (it writes them as float64) become
// BigInt, which cbor-x writes as a 64-bit integer (major type 0 or 1).
function wireInt(value: number): number | bigint {
  return Number.isSafeInteger(value) && (value > 0xffffffff || value < -0x100000000) ? BigInt(value) : value
}

function wireMetrics(m: Metrics): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const key of Object.keys(m)) {
    const value = m[key]
    if (typeof value === 'number') {
      const wide = wireInt(value)
      if (typeof wide === 'bigint') {
        out ??= { ...m }
        out[key] = wide
      }
    }
  }
  return out ?? m
}

function wireReading(reading: Reading): Record<string, unknown> {
  const wire: Record<string, unknown> = { ts: wireInt(reading.ts), m: wireMetrics(reading.m) }
  if (reading.g !== undefined) wire.g = reading.g
  return wire
}
