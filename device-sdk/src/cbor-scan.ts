// A pass over raw CBOR before cbor-x decodes it. cbor-x is fast and correct for well-behaved input,
// but some valid CBOR makes it do far more work than the frame size suggests, or run its own
// extensions: this scan refuses those before decoding, without allocating, in one linear pass.
//
// Refused (each is still valid CBOR, RFC 8949, but has no place in a Fleetgate frame):
// - nesting deeper than MAX_CBOR_NESTING (arrays, maps and tags each count): cbor-x recurses per
//   level, so a 64 KiB frame of 0x81 bytes would overflow the stack; a frame needs 4 levels
//   (tb > r > reading > m), 32 leaves room for command params and results;
// - tags 2 and 3 (bignums) over 8 bytes: cbor-x builds them byte by byte with BigInt shifts,
//   quadratic in the length (a 64 KiB bignum costs about a second of CPU), and any bignum over
//   64 bits is refused anyway (no field takes an integer beyond 2^53);
// - cbor-x's own extension tags: 6 and 51 (packed values), 27 (constructs Error/RegExp), 28 and 29
//   (shared references: one decoded object aliased many times, or cycles), 105 and 0xdff9..0xffff
//   (records, compiled to functions after a few uses, and bundled strings).
// Every other tag is left to cbor-x: it decodes to a Date, Set, typed array or Tag object that the
// field checks then refuse as `invalid`, which lets the hub `nak` the frame (docs/protocol.md).
// Well-formedness (truncation, trailing bytes, reserved additional information, chunks of
// indefinite-length strings) is checked here too, so errors read the same way.
//
// Indefinite-length text and byte strings (RFC 8949 §3.2.3) are valid CBOR that cbor-x refuses to
// decode. The scan accepts them and says so; only then does definiteStrings() copy the item with
// each one joined into a definite-length string, so the common path pays nothing for them.

/** Deepest nesting of arrays and maps accepted in a frame, in levels; default 32. */
export const MAX_CBOR_NESTING = 32

/** scanCbor's answer for a well-formed item that cbor-x decodes as it is. */
export const WELL_FORMED = 0
/** scanCbor's answer for a well-formed item that holds indefinite-length strings: decode definiteStrings(bytes). */
export const INDEFINITE_STRINGS = 1

const INDEFINITE = -1
// The scan keeps the items still expected in the innermost open array, map or tag in `left` (a map
// of n entries expects 2n items; INDEFINITE until a break byte) and the counts of the enclosing ones
// in `outer`. A count never exceeds the bytes left (checked before it is pushed), so it fits in 32
// bits. One module-level stack: decoding is synchronous and not re-entrant.
const outer = new Int32Array(MAX_CBOR_NESTING)

/**
 * Checks that `bytes` hold exactly one well-formed CBOR data item that cbor-x may decode safely.
 * Returns WELL_FORMED or INDEFINITE_STRINGS when they do, else a human reason.
 */
export function scanCbor(bytes: Uint8Array): typeof WELL_FORMED | typeof INDEFINITE_STRINGS | string {
  const end = bytes.length
  let pos = 0
  let depth = 0
  let left = 1
  // Inside an indefinite-length string: its major type (2 or 3), else 0. Such strings do not nest,
  // so the count of the enclosing container waits in `stringOuter` rather than on the stack.
  let chunks = 0
  let stringOuter = 0
  let verdict: typeof WELL_FORMED | typeof INDEFINITE_STRINGS = WELL_FORMED
  for (;;) {
    while (left === 0) {
      if (depth === 0) return pos === end ? verdict : `${end - pos} trailing bytes after the data item`
      left = outer[--depth]!
    }
    if (pos >= end) return 'unexpected end of data'
    const initial = bytes[pos++]!
    if (initial === 0xff) {
      if (left !== INDEFINITE) return `unexpected break byte at offset ${pos - 1}`
      if (chunks !== 0) {
        chunks = 0
        left = stringOuter
      } else {
        left = outer[--depth]!
      }
      continue
    }
    if (left !== INDEFINITE) left--
    const major = initial >> 5
    const info = initial & 0x1f
    // RFC 8949 §3.2.3: the chunks of an indefinite-length string are definite-length strings of its type.
    if (chunks !== 0 && (major !== chunks || info === 31)) {
      return `a chunk of an indefinite-length string at offset ${pos - 1} is not a definite-length string of the same type`
    }
    let arg = info
    if (info >= 24) {
      if (info === 24) {
        if (pos >= end) return 'unexpected end of data'
        arg = bytes[pos++]!
      } else if (info <= 27) {
        const size = 1 << (info - 24)
        if (end - pos < size) return 'unexpected end of data'
        arg = 0
        for (let i = 0; i < size; i++) arg = arg * 256 + bytes[pos++]!
      } else if (info < 31) {
        return `reserved additional information ${info} at offset ${pos - 1}`
      } else if (major === 4 || major === 5) {
        // info 31: indefinite length (the break byte 0xff was handled above)
        if (depth === MAX_CBOR_NESTING) return `nested deeper than ${MAX_CBOR_NESTING} levels`
        outer[depth++] = left
        left = INDEFINITE
        continue
      } else if (major === 2 || major === 3) {
        verdict = INDEFINITE_STRINGS
        chunks = major
        stringOuter = left
        left = INDEFINITE
        continue
      } else {
        return `indefinite length on major type ${major} at offset ${pos - 1}`
      }
    }
    switch (major) {
      case 2:
      case 3:
        if (arg > end - pos) return 'unexpected end of data'
        pos += arg
        break
      case 4:
      case 5: {
        const items = major === 5 ? arg * 2 : arg
        // every item takes at least one byte: refuse impossible lengths before anyone allocates for them
        if (items > end - pos) return 'unexpected end of data'
        if (items > 0) {
          if (depth === MAX_CBOR_NESTING) return `nested deeper than ${MAX_CBOR_NESTING} levels`
          outer[depth++] = left
          left = items
        }
        break
      }
      case 6: {
        const refused = refusedTag(arg, bytes, pos)
        if (refused !== undefined) return refused
        // a tag wraps exactly one item, like an array of one: cbor-x recurses into it, so it counts as a level
        if (depth === MAX_CBOR_NESTING) return `nested deeper than ${MAX_CBOR_NESTING} levels`
        outer[depth++] = left
        left = 1
        break
      }
      case 7:
        // 20..23 false, true, null, undefined; 25..27 floats. Other simple values are unassigned.
        if (info < 20 || info === 24) return `unsupported simple value at offset ${pos - 1}`
        break
      default:
        // 0 and 1: integers, complete with their argument
        break
    }
  }
}

function refusedTag(tag: number, bytes: Uint8Array, pos: number): string | undefined {
  if (tag === 2 || tag === 3) {
    const next = bytes[pos]
    // a byte string (major 2) of 0 to 8 bytes: 0x40..0x48
    return next !== undefined && next >= 0x40 && next <= 0x48 ? undefined : 'bignum over 64 bits'
  }
  if (tag === 6 || tag === 27 || tag === 28 || tag === 29 || tag === 51 || tag === 105) {
    return `unsupported CBOR tag ${tag}`
  }
  if (tag >= 0xdff9 && tag <= 0xffff) return `unsupported CBOR tag ${tag}`
  return undefined
}

/**
 * A copy of `bytes` (a well-formed item, INDEFINITE_STRINGS by scanCbor) with each indefinite-length
 * string joined into one definite-length string; everything else is copied as it is. The copy is
 * never longer than the input (under 4 GiB): the indefinite form spends a head, a break byte and a
 * head per chunk, the definite form one head, which is over 3 bytes only for 65,536 bytes or more:
 * one chunk with a head as long, or several whose heads and break add up to 5 bytes at least.
 */
export function definiteStrings(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length)
  let pos = 0
  let at = 0
  while (pos < bytes.length) {
    const initial = bytes[pos]!
    const major = initial >> 5
    if ((major === 2 || major === 3) && (initial & 0x1f) === 31) {
      let length = 0
      let chunk = pos + 1
      while (bytes[chunk] !== 0xff) {
        const size = stringLength(bytes, chunk)
        length += size
        chunk += headBytes(bytes[chunk]!) + size
      }
      at = writeHead(out, at, major, length)
      for (chunk = pos + 1; bytes[chunk] !== 0xff; ) {
        const size = stringLength(bytes, chunk)
        const from = chunk + headBytes(bytes[chunk]!)
        out.set(bytes.subarray(from, from + size), at)
        at += size
        chunk = from + size
      }
      pos = chunk + 1
      continue
    }
    // Any other head is copied with its argument; a definite string brings its content along.
    // Items inside arrays, maps and tags follow their head, so one flat walk visits them all.
    const size = headBytes(initial) + (major === 2 || major === 3 ? stringLength(bytes, pos) : 0)
    out.set(bytes.subarray(pos, pos + size), at)
    at += size
    pos += size
  }
  return out.subarray(0, at)
}

/** Bytes of the head that starts with `initial`: 1, or 1 plus a 1-, 2-, 4- or 8-byte argument. */
function headBytes(initial: number): number {
  const info = initial & 0x1f
  return info < 24 || info === 31 ? 1 : 1 + (1 << (info - 24))
}

/** The length of the definite string whose head is at `pos` (scanCbor has checked that it fits the input). */
function stringLength(bytes: Uint8Array, pos: number): number {
  const info = bytes[pos]! & 0x1f
  if (info < 24) return info
  let length = 0
  for (let i = 1, size = 1 << (info - 24); i <= size; i++) length = length * 256 + bytes[pos + i]!
  return length
}

/** Writes the shortest head of major type `major` with argument `length` at `at`; returns the offset after it. */
function writeHead(out: Uint8Array, at: number, major: number, length: number): number {
  const type = major << 5
  if (length < 24) {
    out[at] = type | length
    return at + 1
  }
  // additional information 24, 25, 26: a 1-, 2- or 4-byte argument follows, big-endian
  const size = length < 0x100 ? 1 : length < 0x10000 ? 2 : 4
  out[at] = type | (size === 1 ? 24 : size === 2 ? 25 : 26)
  for (let i = size; i >= 1; i--) {
    out[at + i] = length & 0xff
    length = Math.floor(length / 256)
  }
  return at + 1 + size
}
