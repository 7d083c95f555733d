// The wire codec under fuzzing (seeded, reproducible: the seed is printed; FLEETGATE_FUZZ_SEED replays
// or explores). Whatever the bytes, decoding answers a validated frame or a DecodeFailure with its
// code; it never throws, and a frame it accepts survives its own round trip.
import { describe, expect, it } from 'vitest'
import {
  COMMAND_ID_PATTERN,
  decodeDeviceFrame,
  decodeHubFrame,
  encodeFrame,
  isTwinReportId,
  MAX_BATCH_READINGS,
  MAX_TS_MS,
  twinPatchProblem,
  type Decoded,
  type DecodeFailureCode,
  type DeviceFrame,
} from '@fleetgate/device-sdk/wire'
import { FrameFuzzer } from '../support/cbor-fuzz.js'
import { fuzzSeed, seededRandom } from '../support/hostile.js'

/** Inputs per run, and the time a run may take at most (a slow machine runs fewer, from the same seed). */
const INPUTS = 40_000
const RUN_MS = 4000
const CODES: readonly DecodeFailureCode[] = ['not_cbor', 'not_map', 'unknown_type', 'invalid']

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

/** What is wrong with one answer of decodeDeviceFrame, or undefined. */
function problem(decoded: Decoded<DeviceFrame>): string | undefined {
  if (!decoded.ok) {
    if (!CODES.includes(decoded.code)) return `unknown failure code ${String(decoded.code)}`
    if (typeof decoded.reason !== 'string' || decoded.reason === '') return 'a failure without a reason'
    if (decoded.s !== undefined && (!Number.isSafeInteger(decoded.s) || decoded.s < 0)) return `a failure with s ${decoded.s}`
    if (decoded.id !== undefined && !(decoded.t === 'twr' ? isTwinReportId(decoded.id) : COMMAND_ID_PATTERN.test(decoded.id))) return `a failure with id ${decoded.id}`
    return undefined
  }
  const frame = decoded.frame
  switch (frame.t) {
    case 'tm':
      if (frame.ts !== undefined && frame.ts > MAX_TS_MS) return `ts ${frame.ts} beyond MAX_TS_MS`
      break
    case 'tb':
      if (frame.r.length < 1 || frame.r.length > MAX_BATCH_READINGS) return `${frame.r.length} readings`
      if (frame.r.some((reading) => reading.ts > MAX_TS_MS)) return 'a reading beyond MAX_TS_MS'
      break
    case 'res':
      break
    case 'twr':
      if (twinPatchProblem(frame.p) !== undefined) return `a report breaking the twin rules: ${String(twinPatchProblem(frame.p))}`
      break
    default:
      return `a frame of type ${String((frame as { t: unknown }).t)}`
  }
  const again = decodeDeviceFrame(encodeFrame(frame))
  return JSON.stringify(again) === JSON.stringify(decoded) ? undefined : `does not round-trip: ${JSON.stringify(again)}`
}

describe('device frame codec under fuzzing', () => {
  it('never throws: every answer is a validated frame or a DecodeFailure with its code, for device and hub frames alike', () => {
    const seed = fuzzSeed('codec fuzz', 0x5eed_f00d)
    const fuzzer = new FrameFuzzer(seededRandom(seed))
    const outcomes = new Map<string, number>()
    const failures: string[] = []
    const stopAt = performance.now() + RUN_MS
    let inputs = 0
    for (; inputs < INPUTS && performance.now() < stopAt; inputs++) {
      const bytes = fuzzer.next(inputs)
      let found: string | undefined
      try {
        const decoded = decodeDeviceFrame(bytes)
        found = problem(decoded)
        outcomes.set(decoded.ok ? 'frame' : decoded.code, (outcomes.get(decoded.ok ? 'frame' : decoded.code) ?? 0) + 1)
        const hub = decodeHubFrame(bytes)
        if (!hub.ok && !CODES.includes(hub.code)) found ??= `decodeHubFrame: unknown failure code ${String(hub.code)}`
      } catch (err) {
        found = `threw ${err instanceof Error ? err.message : String(err)}`
      }
      if (found !== undefined && failures.length < 5) failures.push(`input ${inputs} (seed ${seed}) ${hex(bytes)}: ${found}`)
    }
    console.log(`codec fuzz: ${inputs} inputs, ${JSON.stringify(Object.fromEntries(outcomes))}`)
    expect(failures).toStrictEqual([])
    // The inputs reach every answer, valid frames included: a fuzzer refused at the first byte proves nothing.
    expect([...outcomes.keys()].sort()).toStrictEqual(['frame', 'invalid', 'not_cbor', 'not_map', 'unknown_type'])
    expect(inputs).toBeGreaterThanOrEqual(2000)
  })

  it('reads text sent in chunks (indefinite length) as the same text sent whole', () => {
    const seed = fuzzSeed('indefinite-length strings', 0x1d3f)
    const random = seededRandom(seed)
    const alphabet = ['a', 'é', '€', '😀', 'z', ' ']
    for (let i = 0; i < 2000; i++) {
      let text = ''
      for (let n = Math.floor(random() * 400); n > 0; n--) text += alphabet[Math.floor(random() * alphabet.length)]
      // chunk boundaries between characters: RFC 8949 §3.2.3 wants each chunk valid UTF-8
      const chunks: Buffer[] = []
      for (let at = 0; at < text.length; ) {
        let end = Math.min(text.length, at + 1 + Math.floor(random() * 120))
        if (end < text.length && (text.charCodeAt(end) & 0xfc00) === 0xdc00) end++
        chunks.push(Buffer.from(text.slice(at, end)))
        at = end
      }
      const whole = encodeFrame({ t: 'tm', s: i, m: { a: 1 }, g: { k: 'v' } })
      // the same frame with g.k's value replaced by the chunked text: `... 616b 6176` (k: "v") -> k: (_ chunks)
      const tail = Buffer.from('616b6176', 'hex')
      const prefix = Buffer.from(whole.subarray(0, whole.length - tail.length))
      const head = (length: number): Buffer =>
        length < 24 ? Buffer.from([0x60 | length]) : length < 256 ? Buffer.from([0x78, length]) : Buffer.from([0x79, length >> 8, length & 0xff])
      const chunked = Buffer.concat([prefix, Buffer.from('616b7f', 'hex'), ...chunks.flatMap((chunk) => [head(chunk.length), chunk]), Buffer.from([0xff])])
      const decoded = decodeDeviceFrame(Uint8Array.from(chunked))
      const expected = Buffer.byteLength(text) >= 1 && Buffer.byteLength(text) <= 128 ? { ok: true, frame: { t: 'tm', s: i, m: { a: 1 }, g: { k: text } } } : { ok: false }
      expect(decoded, `input ${i} (seed ${seed}): ${chunked.toString('hex')}`).toMatchObject(expected)
    }
  })
})
