import { randomInt } from 'node:crypto'
import { connect } from 'node:net'
import { expect } from 'vitest'
import type { Credentials, RawDevice } from './ws.js'
import { connectDevice } from './ws.js'

/**
 * A device that keeps one session open beside an attack and proves, after it, that the hub still
 * serves others: its session was not dropped and a new reading is acked. Every reading it had acked
 * is listed in `acked` (by `ts`), so a test with a store to read back can check none was lost.
 */
export class Witness {
  readonly device: Credentials
  readonly ws: RawDevice
  /** `ts` of every reading the hub acked, in order. */
  readonly acked: number[] = []
  #seq = 0
  #ts: number

  private constructor(device: Credentials, ws: RawDevice) {
    this.device = device
    this.ws = ws
    this.#ts = Date.now()
  }

  /** Connects `device` and takes its `hello`. */
  static async connect(wsUrl: string, device: Credentials): Promise<Witness> {
    const ws = await connectDevice(wsUrl, device)
    const hello = await ws.next()
    if (hello.t !== 'hello') throw new Error(`witness: expected hello, got ${JSON.stringify(hello)}`)
    return new Witness(device, ws)
  }

  /** Sends one reading and waits for its ack; fails the test when the hub answers anything else or nothing. */
  async ping(timeoutMs = 5000): Promise<void> {
    const s = ++this.#seq
    const ts = ++this.#ts
    this.ws.send({ t: 'tm', s, ts, m: { witness: s } })
    const frames = await this.ws.untilAck(s, timeoutMs)
    const refused = frames.filter((frame) => frame.t !== 'ack' && frame.t !== 'cmd')
    expect(refused, 'the witness device got something other than acks').toEqual([])
    this.acked.push(ts)
  }

  close(): void {
    this.ws.close()
  }
}

/**
 * After an attack: the hub answers `/healthz`, the witness's session is still open and gets a new
 * reading acked within `timeoutMs`.
 */
export async function assertHubServes(base: string, witness: Witness, timeoutMs = 5000): Promise<void> {
  const health = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(timeoutMs) })
  expect(health.status).toBe(200)
  expect(witness.ws.ws.readyState, 'the witness session was closed by the attack').toBe(witness.ws.ws.OPEN)
  await witness.ping(timeoutMs)
}

/**
 * A small seeded PRNG (mulberry32): the same seed gives the same inputs, so a fuzz failure is
 * reproduced from the seed it prints. Returns floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A fuzz run's seed: `FLEETGATE_FUZZ_SEED` when set (to replay a failure), else a fresh one; printed either way. */
export function fuzzSeed(suite: string): number {
  const given = process.env['FLEETGATE_FUZZ_SEED']
  const seed = given === undefined ? randomInt(2 ** 32) : Number(given)
  console.info(`${suite}: seed ${seed} (replay with FLEETGATE_FUZZ_SEED=${seed})`)
  return seed
}

/** One HTTP answer as read off the wire. */
export interface RawAnswer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/**
 * How a raw request over TCP ended: a whole answer; the server closing without a byte (`closed`,
 * what uWS does to input it cannot parse); nothing within the wait (`silent`: uWS waits for the
 * rest of a request it has not got whole); or part of an answer and then nothing (`truncated`,
 * never acceptable).
 */
export type RawOutcome =
  | { readonly kind: 'answer'; readonly answer: RawAnswer }
  | { readonly kind: 'closed' | 'silent' }
  | { readonly kind: 'truncated'; readonly received: string }

/**
 * Sends `request` as it is (no client normalizes it) on a new connection to 127.0.0.1:`port` and
 * reads one answer. `head`: the answer has no body whatever its content-length (RFC 9110 §9.3.2).
 */
export function rawHttp(port: number, request: string | Buffer, options: { waitMs?: number; head?: boolean; localAddress?: string } = {}): Promise<RawOutcome> {
  const waitMs = options.waitMs ?? 1000
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) })
    let received = Buffer.alloc(0)
    let settled = false
    const settle = (outcome: RawOutcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => settle(received.length === 0 ? { kind: 'silent' } : { kind: 'truncated', received: received.toString('latin1') }), waitMs)
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      const answer = parseAnswer(received, options.head === true)
      if (answer !== undefined) settle({ kind: 'answer', answer })
    })
    // A reset after the request is the server's way of refusing it: the same as a close.
    socket.on('error', () => undefined)
    socket.on('close', () => settle(received.length === 0 ? { kind: 'closed' } : { kind: 'truncated', received: received.toString('latin1') }))
  })
}

/** One whole HTTP/1.1 answer at the start of `bytes` (content-length framed), or undefined while incomplete. */
function parseAnswer(bytes: Buffer, head: boolean): RawAnswer | undefined {
  const end = bytes.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const [statusLine = '', ...lines] = bytes.toString('latin1', 0, end).split('\r\n')
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? Number.NaN)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const length = head ? 0 : Number(headers['content-length'] ?? 0)
  if (bytes.length < end + 4 + length) return undefined
  return { status, headers, body: bytes.toString('utf8', end + 4, end + 4 + length) }
}
