import { connect } from 'node:net'
import { expect } from 'vitest'
import { ADMIN_TOKEN } from './hub.js'
import type { Influxd } from './influxd.js'
import { eventually, rows } from './telemetry.js'
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

  /** Connects `device` and takes its `hello` and desired twin. */
  static async connect(wsUrl: string, device: Credentials): Promise<Witness> {
    const ws = await connectDevice(wsUrl, device)
    await ws.opening()
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

  /**
   * Waits until every reading the witness had acked is a point of its device in InfluxDB (`db`),
   * then checks that none is missing: nothing acked was lost to the attack.
   */
  async assertLanded(influx: Influxd, db: string, timeoutMs = 20_000): Promise<void> {
    const missing = (times: ReadonlySet<number>): number[] => this.acked.filter((ts) => !times.has(ts))
    const landed = async (): Promise<Set<number>> =>
      new Set((await rows(influx, `SELECT "witness" FROM "telemetry" WHERE "device" = '${this.device.deviceId}'`, db)).map((row) => row['time'] as number))
    const times = await eventually(landed, (found) => missing(found).length === 0, timeoutMs).catch(() => landed())
    expect(missing(times), `acked readings of ${this.device.deviceId} missing from InfluxDB`).toEqual([])
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
 * Resolves once `done()` holds (checked now and on every frame from the hub) or the session has
 * closed; rejects after `timeoutMs`. Event-driven, so a fuzz loop waits no longer than the hub.
 */
export function answeredOrClosed(device: RawDevice, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const ws = device.ws
  return new Promise((resolve, reject) => {
    const finish = (error?: Error): void => {
      clearTimeout(timer)
      ws.off('message', check)
      ws.off('close', check)
      if (error === undefined) resolve()
      else reject(error)
    }
    // RawDevice's own listeners run first: the frame is queued, the socket CLOSED, when these run.
    const check = (): void => {
      if (done() || ws.readyState === ws.CLOSED) finish()
    }
    const timer = setTimeout(() => finish(new Error(`no answer and no close within ${timeoutMs} ms`)), timeoutMs)
    ws.on('message', check)
    ws.on('close', check)
    check()
  })
}

/**
 * A small seeded PRNG (xorshift32): the same seed gives the same inputs on every run and machine.
 * Returns floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state / 2 ** 32
  }
}

/**
 * The seed of a fuzz run: `FLEETGATE_FUZZ_SEED` when set (to replay a failure or explore), else
 * `fallback`, so `npm test` is the same run every time. It is printed, so a failure names it.
 */
export function fuzzSeed(name: string, fallback: number): number {
  const raw = process.env['FLEETGATE_FUZZ_SEED']
  const seed = raw === undefined || raw === '' ? fallback : Number(raw) >>> 0
  console.log(`${name}: seed ${seed} (replay with FLEETGATE_FUZZ_SEED=${seed})`)
  return seed
}

/** The value of one series of the hub's `/metrics` (`name` or `name{labels}` exactly as exposed), 0 when absent. */
export async function hubMetric(base: string, series: string): Promise<number> {
  return (await hubMetrics(base, [series]))[series] ?? 0
}

/** The values of several series from one scrape of the hub's `/metrics`, each read as `hubMetric` does. */
export async function hubMetrics<K extends string>(base: string, names: readonly K[]): Promise<Record<K, number>> {
  const lines = (await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()).split('\n')
  const value = (series: string): number => {
    const line = lines.find((l) => l.startsWith(`${series} `))
    return line === undefined ? 0 : Number(line.slice(series.length + 1))
  }
  return Object.fromEntries(names.map((name) => [name, value(name)])) as Record<K, number>
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
