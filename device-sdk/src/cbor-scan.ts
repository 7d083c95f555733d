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
// field checks then refuse as `invalid`, which lets the hub `nak` the frame (CONTRACT §3).
// Well-formedness (truncation, trailing bytes, reserved additional information, indefinite-length
// strings, which cbor-x does not support) is checked here too, so errors read the same way.

/** Deepest nesting of arrays and maps accepted in a frame, in levels; default 32. */
export const MAX_CBOR_NESTING = 32

const INDEFINITE = -1
// The scan keeps the items still expected in the innermost open array, map or tag in `left` (a map
// of n entries expects 2n items; INDEFINITE until a break byte) and the counts of the enclosing ones
// in `outer`. A count never exceeds the bytes left (checked before it is pushed), so it fits in 32
// bits. One module-level stack: decoding is synchronous and not re-entrant.
const outer = new Int32Array(MAX_CBOR_NESTING)

/**
 * Checks that `bytes` hold exactly one well-formed CBOR data item that cbor-x may decode safely.
 * Returns undefined when they do, else a human reason.
 */
export function scanCbor(bytes: Uint8Array): string | undefined {
  const end = bytes.length
  let pos = 0
  let depth = 0
  let left = 1
  for (;;) {
    while (left === 0) {
      if (depth === 0) return pos === end ? undefined : `${end - pos} trailing bytes after the data item`
      left = outer[--depth]!
    }
    if (pos >= end) return 'unexpected end of data'
    const initial = bytes[pos++]!
    if (initial === 0xff) {
      if (left !== INDEFINITE) return `unexpected break byte at offset ${pos - 1}`
      left = outer[--depth]!
      continue
    }
    if (left !== INDEFINITE) left--
    const major = initial >> 5
    const info = initial & 0x1f
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
        return 'indefinite-length strings are not supported'
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
