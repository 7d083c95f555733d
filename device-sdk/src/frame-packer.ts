// Packing queued readings into one telemetry frame within the hub's limits (docs/protocol.md): one
// reading is a `tm`, more are a `tb` of at most `maxReadings`, never more than `maxFrameBytes`.
// Pure: the queue decides what waits, this decides what fits.
import type { Reading } from './frames.js'
import { encodeFrame, encodedReadingBytes } from './protocol.js'

/** A reading waiting to be packed; `bytes` caches its encoded size inside a `tb` (-1: not known yet). */
export interface Packable extends Reading {
  bytes: number
}

/** A packed frame: the first `count` readings as `bytes`; `count` 0 when the first reading alone is over the limit (`bytes` is then its `tm`). */
export interface Packed {
  readonly count: number
  readonly bytes: Uint8Array
}

/**
 * Packs the longest run of readings from the front (`at(0)` to `at(available - 1)`) that fits in
 * one frame with seq `s`: at most `maxReadings` readings and `maxFrameBytes` bytes.
 */
export function packFrame(at: (index: number) => Packable, available: number, s: number, maxReadings: number, maxFrameBytes: number): Packed {
  let count = 0
  let body = 0
  while (count < maxReadings && count < available) {
    const reading = at(count)
    if (reading.bytes < 0) reading.bytes = encodedReadingBytes(reading)
    if (batchFrameBytes(s, count + 1, body + reading.bytes) > maxFrameBytes) break
    body += reading.bytes
    count++
  }
  if (count >= 2) {
    const r = Array.from({ length: count }, (_, i) => at(i))
    const bytes = encodeFrame({ t: 'tb', s, r })
    // batchFrameBytes is exact (a unit test holds it to cbor-x); were it ever short, a frame the
    // hub would close the session for (1009) is still never sent: the first reading goes alone
    if (bytes.length <= maxFrameBytes) return { count, bytes }
  }
  const first = at(0)
  const bytes = encodeFrame(first.g === undefined ? { t: 'tm', s, ts: first.ts, m: first.m } : { t: 'tm', s, ts: first.ts, m: first.m, g: first.g })
  return { count: bytes.length <= maxFrameBytes ? 1 : 0, bytes }
}

/**
 * Bytes of a `tb` frame {t, s, r} holding `count` readings of `body` bytes in all (RFC 8949 §3:
 * heads of 1, 2, 3, 5 or 9 bytes by the argument's size): map head 1, "t" 2, "tb" 3, "s" 2, the
 * seq, "r" 2, the array head.
 */
export function batchFrameBytes(s: number, count: number, body: number): number {
  return 10 + cborHeadBytes(s) + cborHeadBytes(count) + body
}

function cborHeadBytes(value: number): number {
  if (value < 24) return 1
  if (value < 0x100) return 2
  if (value < 0x10000) return 3
  if (value < 0x100000000) return 5
  return 9
}
