// Load shared by the scenarios: the lean Fleetgate device (raw `ws`, CBOR frames from the SDK's own
// codec, the contract's flow control), the fixed-rate pacer, the readings every generator sends,
// and bulk provisioning. Devices run in worker processes (fleet.ts); provisioning in the orchestrator.
import { generateKeyPairSync } from 'node:crypto'
import { request, type Agent } from 'node:http'
import { build, type Histogram } from 'hdr-histogram-js'
import WebSocket from 'ws'
import { type KeyType, type Metrics, type Reading } from '@fleetgate/device-sdk'
import { decodeHubFrame, encodeFrame, isJsonObject, type TwinAckFrame, type TwinDesiredFrame } from '@fleetgate/device-sdk/wire'
import { ADMIN_TOKEN, api } from '../support/hub.js'

/** A provisioned device's credentials, as the hub issued them. */
export interface DeviceCreds {
  readonly id: string
  readonly keyType: KeyType
  readonly key: string
}

/**
 * Client options every generator uses (Fleetgate's devices and the peers' alike): no compression,
 * and all-zero masks, with which `ws` skips the XOR over each payload. RFC 6455 §5.3 asks for
 * unpredictable masks to protect proxies; on loopback there are none, and the hub cannot tell.
 */
export function clientOptions(local?: LocalEnd, headers?: Record<string, string>): WebSocket.ClientOptions {
  return {
    perMessageDeflate: false,
    generateMask: (mask: Buffer) => void mask.fill(0),
    ...(local === undefined ? {} : { localAddress: local.address, localPort: local.port }),
    ...(headers === undefined ? {} : { headers }),
  }
}

/** A connection's source address and port. */
export interface LocalEnd {
  readonly address: string
  readonly port: number
}

/** The next source port per address in this process, shared by every connection it opens. */
const nextPort = new Map<string, number>()

/**
 * Source ends for new connections from `addresses`, round robin, with ports counted up from 10,000
 * on each address (per process, wrapping at 65,535). The explicit port matters: bind() to an address
 * with port 0 makes Linux search its ephemeral range for a free port, which grows slower with every
 * connection held (about 4 ms of CPU per connect with 15,000 held), and the generator, not the hub,
 * would set the pace. A port still taken fails with EADDRINUSE and the connect is retried.
 */
export class LocalPorts {
  readonly #addresses: readonly string[]
  #turn = 0

  constructor(addresses: readonly string[]) {
    this.#addresses = addresses
  }

  /** The next end, or undefined when there are no addresses (the OS picks). */
  next(): LocalEnd | undefined {
    if (this.#addresses.length === 0) return undefined
    const address = this.#addresses[this.#turn++ % this.#addresses.length] as string
    const port = nextPort.get(address) ?? 10_000
    nextPort.set(address, port >= 65_535 ? 10_000 : port + 1)
    return { address, port }
  }
}

/** `count` loopback source addresses from 127.0.0.2 on: each gives ~28k ephemeral ports. */
export function sourceAddresses(count: number): string[] {
  if (count > 250) throw new Error(`sourceAddresses: at most 250, asked for ${count}`)
  return Array.from({ length: count }, (_, i) => `127.0.0.${2 + i}`)
}

/** The metrics of one reading, the same for every generator: three numbers, counted by field `t`. */
export function metricsFor(seq: number): Metrics {
  return { t: 20 + (seq % 50) / 10, h: 45.5, v: 3.3 }
}

/** The field every generator's readings carry, by which InfluxDB counts them. */
export const COUNT_FIELD = 't'

/**
 * The time of reading `i` of frame `s`: unique per device, so that no reading lands on another's
 * InfluxDB point (a device's points differ by time only).
 */
export function readingTime(t0: number, s: number, readingsPerFrame: number, i: number): number {
  return t0 + s * readingsPerFrame + i
}

/** Builds an HDR histogram of latencies in µs (1 µs to 60 s, 3 significant digits). */
export function latencyHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
}

/** Percentiles of a µs histogram, in ms. */
export interface LatencySummary {
  readonly count: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
}

/** Summarises a µs histogram in ms. */
export function summarise(histogram: Histogram): LatencySummary {
  const ms = (us: number): number => Math.round(us) / 1000
  return {
    count: histogram.totalCount,
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
  }
}

/** Counters of one fleet, summed over its devices. */
export interface FleetCounters {
  sentFrames: number
  sentReadings: number
  ackedFrames: number
  ackedReadings: number
  nakedFrames: number
  commandsAnswered: number
  errFrames: number
  /** Desired documents received (`twd`), the hello's included. */
  twdReceived: number
  /** Reports the hub applied (`twa` with a version) and refused. */
  twaApplied: number
  twaRefused: number
  /** Sessions that closed while the fleet ran, by close code. */
  readonly closes: Record<string, number>
}

/** Fresh counters. */
export function newCounters(): FleetCounters {
  return { sentFrames: 0, sentReadings: 0, ackedFrames: 0, ackedReadings: 0, nakedFrames: 0, commandsAnswered: 0, errFrames: 0, twdReceived: 0, twaApplied: 0, twaRefused: 0, closes: {} }
}

/** How a lean device sends. */
export interface LeanDeviceOptions {
  /** 1: `tm` frames; more: `tb` frames of this many readings. */
  readonly readingsPerFrame: number
  /** Base of the readings' times (Unix ms). */
  readonly t0: number
  readonly counters: FleetCounters
  readonly latency: { current: Histogram }
  /** Desired change to `twd` latency (µs), of the changes whose document carries `bench.sentAt` (wallMs). */
  readonly twinLatency: { current: Histogram }
}

/**
 * Wall-clock time in ms with sub-ms precision, comparable across the bench's processes on one
 * machine: the orchestrator stamps a desired change with it, the device measures its `twd` by it.
 */
export function wallMs(): number {
  return performance.timeOrigin + performance.now()
}

/**
 * A lean, correct Fleetgate device on a raw `ws` socket: frames from the SDK's `encodeFrame`, at
 * most `hello.lim.window` telemetry frames unacked (docs/protocol.md), cumulative acks, naks counted,
 * every `cmd` answered `res ok` at once, every changed desired twin reported back as applied
 * (`twr` with the whole document, docs/twins.md). It sends while `backlog` (frames it has to send) allows;
 * `Infinity` means as fast as the hub acks.
 */
export class LeanDevice {
  readonly ws: WebSocket
  readonly id: string
  /** Frames waiting to be sent (the device keeps its data while the window is full). */
  backlog = 0
  /** Whether the device may send telemetry. */
  sending = false
  #window = 0
  #nextSeq = 1
  #inflight = 0
  // Sent frames not yet acked, oldest first: seq and send time (performance.now ms), as a queue.
  #seqs: number[] = []
  #sentAt: number[] = []
  #head = 0
  #naked = new Set<number>()
  /** The report on the wire for the latest desired version, and that version. */
  #report: { readonly id: string; readonly version: number } | undefined
  /** The highest desired version the hub confirmed reported (`twa`); 0 before. */
  convergedVersion = 0
  readonly #options: LeanDeviceOptions
  readonly hello: Promise<void>

  constructor(ws: WebSocket, id: string, options: LeanDeviceOptions) {
    this.ws = ws
    this.id = id
    this.#options = options
    let helloSeen: () => void = () => undefined
    this.hello = new Promise((resolve) => (helloSeen = resolve))
    ws.on('message', (data: Buffer) => {
      const decoded = decodeHubFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
      if (!decoded.ok) throw new Error(`${id}: the hub sent an undecodable frame: ${decoded.reason}`)
      const frame = decoded.frame
      switch (frame.t) {
        case 'hello':
          this.#window = frame.lim.window
          helloSeen()
          this.pump()
          return
        case 'ack':
          this.#acked(frame.s)
          this.pump()
          return
        case 'nak':
          // docs/protocol.md: a naked frame is refused for good and leaves the window.
          this.#naked.add(frame.s)
          this.#inflight--
          this.#options.counters.nakedFrames++
          this.pump()
          return
        case 'cmd':
          this.ws.send(encodeFrame({ t: 'res', id: frame.id, ok: true }))
          this.#options.counters.commandsAnswered++
          return
        case 'err':
          this.#options.counters.errFrames++
          return
        case 'twd':
          this.#desired(frame)
          return
        case 'twa':
          this.#twinAcked(frame)
          return
      }
    })
    ws.on('close', (code: number) => {
      options.counters.closes[String(code)] = (options.counters.closes[String(code)] ?? 0) + 1
    })
  }

  /** Telemetry frames sent and neither acked nor naked. */
  get inflight(): number {
    return this.#inflight
  }

  /** Sends frames while the window and the backlog allow. */
  pump(): void {
    if (!this.sending || this.#window === 0 || this.ws.readyState !== WebSocket.OPEN) return
    const rpf = this.#options.readingsPerFrame
    const counters = this.#options.counters
    while (this.#inflight < this.#window && this.backlog >= 1) {
      const s = this.#nextSeq++
      this.backlog--
      this.#inflight++
      this.#seqs.push(s)
      this.#sentAt.push(performance.now())
      this.ws.send(this.#frame(s))
      counters.sentFrames++
      counters.sentReadings += rpf
    }
  }

  #frame(s: number): Uint8Array {
    const { readingsPerFrame: rpf, t0 } = this.#options
    if (rpf === 1) return encodeFrame({ t: 'tm', s, ts: readingTime(t0, s, 1, 0), m: metricsFor(s) })
    const r: Reading[] = []
    for (let i = 0; i < rpf; i++) r.push({ ts: readingTime(t0, s, rpf, i), m: metricsFor(s + i) })
    return encodeFrame({ t: 'tb', s, r })
  }

  // Applies the desired document at once and reports it whole, so reported equals desired.
  #desired(frame: TwinDesiredFrame): void {
    const now = wallMs()
    this.#options.counters.twdReceived++
    const bench = frame.d['bench']
    const sentAt = isJsonObject(bench) ? bench['sentAt'] : undefined
    if (typeof sentAt === 'number') this.#options.twinLatency.current.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)))
    if (frame.v === 0) return
    this.#report = { id: `v${frame.v}`, version: frame.v }
    this.ws.send(encodeFrame({ t: 'twr', id: this.#report.id, p: frame.d }))
  }

  #twinAcked(frame: TwinAckFrame): void {
    if (frame.e !== undefined) {
      this.#options.counters.twaRefused++
      return
    }
    this.#options.counters.twaApplied++
    if (frame.id === this.#report?.id) this.convergedVersion = Math.max(this.convergedVersion, this.#report.version)
  }

  #acked(s: number): void {
    const counters = this.#options.counters
    const histogram = this.#options.latency.current
    const now = performance.now()
    const rpf = this.#options.readingsPerFrame
    while (this.#head < this.#seqs.length && (this.#seqs[this.#head] as number) <= s) {
      const seq = this.#seqs[this.#head] as number
      const sentAt = this.#sentAt[this.#head] as number
      this.#head++
      if (this.#naked.delete(seq)) continue
      this.#inflight--
      counters.ackedFrames++
      counters.ackedReadings += rpf
      histogram.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)))
    }
    if (this.#head > 1024) {
      this.#seqs = this.#seqs.slice(this.#head)
      this.#sentAt = this.#sentAt.slice(this.#head)
      this.#head = 0
    }
  }
}

/**
 * Offers `ratePerSec` frames a second to `targets`, round robin, on a 5 ms tick: each target's
 * backlog grows by what is due, then it sends what its window allows. A target's backlog stays at
 * most `maxBacklog` (what is due beyond it is not offered): Infinity for devices that keep their
 * data, small for a strict offered rate without catch-up bursts. Returns a stop function.
 */
export function pace(targets: ReadonlyArray<{ backlog: number; pump(): void }>, ratePerSec: number, maxBacklog = Number.POSITIVE_INFINITY): () => void {
  const started = performance.now()
  let issued = 0
  let next = 0
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - started) * ratePerSec) / 1000) - issued
    issued += due
    const touched = Math.min(due, targets.length)
    for (let i = 0; i < due; i++) {
      const target = targets[(next + i) % targets.length] as { backlog: number }
      if (target.backlog < maxBacklog) target.backlog++
    }
    for (let i = 0; i < touched; i++) (targets[(next + i) % targets.length] as { pump(): void }).pump()
    next = (next + due) % targets.length
  }, 5)
  return () => clearInterval(timer)
}

/**
 * Creates `count` devices named `${prefix}-${i}` through `POST /devices/bulk` (10,000 a request)
 * and returns their credentials; throws on any refusal.
 */
export async function provisionBulk(
  base: string,
  prefix: string,
  count: number,
  options: { keyType?: KeyType; tags?: Record<string, string> } = {},
): Promise<DeviceCreds[]> {
  const keyType = options.keyType ?? 'hmac'
  const devices: DeviceCreds[] = []
  for (let start = 0; start < count; start += 10_000) {
    // An ed25519 device makes its own key pair and registers the public key (docs/protocol.md): the
    // hub never sees the private key, and generating pairs is not the hub's work to measure.
    const pairs = new Map<string, string>()
    const batch = Array.from({ length: Math.min(10_000, count - start) }, (_, i) => {
      const id = `${prefix}-${start + i}`
      let publicKey: string | undefined
      if (keyType === 'ed25519') {
        const pair = generateKeyPairSync('ed25519')
        pairs.set(id, pair.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64url'))
        publicKey = pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64url')
      }
      return { id, keyType, ...(publicKey === undefined ? {} : { publicKey }), ...(options.tags === undefined ? {} : { tags: options.tags }) }
    })
    const answer = await api(base, 'POST', '/api/v1/devices/bulk', { devices: batch })
    const created = answer.body?.created as Array<{ id: string; key?: string; privateKey?: string }> | undefined
    if (answer.status !== 200 || created === undefined || created.length !== batch.length) {
      throw new Error(`bulk provisioning ${prefix}: ${answer.status} ${JSON.stringify(answer.body?.errors?.slice(0, 3) ?? answer.body)}`)
    }
    for (const d of created) devices.push({ id: d.id, keyType, key: (d.key ?? d.privateKey ?? pairs.get(d.id)) as string })
  }
  return devices
}

/** One JSON call with the admin token over `agent` (keep-alive: the scenarios time the hub, not connects); resolves status and parsed body. */
export function call(agent: Agent, base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : (JSON.parse(text) as unknown) }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}
