// Worker handlers for fleets of Fleetgate devices (and, for the connection peer, plain clients):
// telemetry at the hub's pace or at a fixed offered rate, command answers, connect storms, idle
// sessions. Each worker process holds at most one fleet and one idle set at a time.
import type { IncomingMessage } from 'node:http'
import { connect as tcpConnect, type Socket } from 'node:net'
import WebSocket from 'ws'
import { signToken } from '@fleetgate/device-sdk/wire'
import { clientOptions, latencyHistogram, LeanDevice, LocalPorts, newCounters, type LocalEnd, pace, summarise, type DeviceCreds, type FleetCounters, type LatencySummary } from './load.js'
import type { Handlers } from './procs.js'

/** Parameters of `fleet.connect`. */
export interface FleetConnectParams {
  readonly url: string
  readonly devices: readonly DeviceCreds[]
  readonly readingsPerFrame: number
  /** Base of the readings' times (Unix ms). */
  readonly t0: number
  readonly localAddresses?: readonly string[]
  /** Connects in flight at once; default 200. */
  readonly concurrency?: number
}

/** What `fleet.twins` answers: desired changes seen and reported back. */
export interface FleetTwins {
  readonly twdReceived: number
  readonly twaApplied: number
  readonly twaRefused: number
  /** Devices whose report of desired version `minVersion` (or later) the hub confirmed. */
  readonly converged: number
  /** Change to `twd` latency since the last reset, of changes stamped with `bench.sentAt`. */
  readonly latency: LatencySummary
}

/** What `fleet.sample` and `fleet.stop` answer. */
export interface FleetSample {
  /** Unix ms when the sample was taken. */
  readonly at: number
  readonly counters: FleetCounters
  readonly inflight: number
  readonly backlog: number
  readonly open: number
  /** Ack latency (send to ack) since the last reset. */
  readonly latency: LatencySummary
}

/** Parameters of `storm` and `idle.connect`. */
export interface ConnectManyParams {
  readonly url: string
  /** Devices to sign tokens for (Fleetgate), or none for a bare server. */
  readonly devices?: readonly DeviceCreds[]
  /** Tokens signed beforehand (`tokens.sign`), instead of `devices`. */
  readonly tokens?: readonly string[]
  /** Plain connections when `devices` is absent. */
  readonly count?: number
  readonly localAddresses?: readonly string[]
  readonly concurrency: number
  /** `message`: a session is open once the first frame (Fleetgate's hello) arrives; `open`: at the upgrade. */
  readonly until: 'message' | 'open'
}

/** A fixed Sec-WebSocket-Key: the raw client does not check the accept value it derives. */
const RAW_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

/** Opens a WebSocket session by hand; resolves once the 101 and one whole frame (the hello) arrived. */
function rawSession(url: URL, token: string | undefined, local: LocalEnd | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: url.hostname, port: Number(url.port), ...(local === undefined ? {} : { localAddress: local.address, localPort: local.port }) })
    let received: Buffer = Buffer.alloc(0)
    const fail = (err: Error): void => {
      socket.destroy()
      reject(err)
    }
    socket.once('connect', () => {
      const auth = token === undefined ? '' : `Authorization: Bearer ${token}\r\n`
      socket.write(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${RAW_KEY}\r\nSec-WebSocket-Version: 13\r\n${auth}\r\n`,
      )
    })
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk])
      const end = received.indexOf('\r\n\r\n')
      if (end < 0) return
      if (!received.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) {
        fail(new Error(received.toString('latin1', 0, Math.max(0, received.indexOf('\r\n')))))
        return
      }
      const frame = received.subarray(end + 4)
      if (frame.length < 2) return
      let length = (frame[1] as number) & 0x7f
      let header = 2
      if (length === 126) {
        if (frame.length < 4) return
        length = frame.readUInt16BE(2)
        header = 4
      }
      if (frame.length < header + length) return
      socket.off('data', onData)
      resolve(socket)
    }
    socket.on('data', onData)
    socket.once('error', fail)
    socket.once('close', () => reject(new Error('closed before the first frame')))
  })
}

/** What `storm` and `idle.connect` answer. */
export interface ConnectManyResult {
  readonly connected: number
  readonly failed: number
  readonly firstError: string | undefined
  /** From the first attempt to the last session open, in ms (tokens are signed before). */
  readonly ms: number
  readonly perSec: number
}

interface Fleet {
  readonly devices: LeanDevice[]
  readonly counters: FleetCounters
  readonly latency: { current: ReturnType<typeof latencyHistogram> }
  readonly twinLatency: { current: ReturnType<typeof latencyHistogram> }
  stopPacing: () => void
}

let fleet: Fleet | undefined
let idle: WebSocket[] = []
let stormed: Socket[] = []

async function tokensFor(devices: readonly DeviceCreds[]): Promise<string[]> {
  const expSec = Math.floor(Date.now() / 1000) + 3600
  const tokens: string[] = []
  for (const d of devices) tokens.push(await signToken({ deviceId: d.id, keyType: d.keyType, key: d.key, expSec }))
  return tokens
}

/** Opens `count` sockets, `concurrency` at a time; `open(i)` makes socket i and resolves once it counts as open. */
async function connectMany<T>(count: number, concurrency: number, open: (i: number) => Promise<T>): Promise<{ sockets: T[]; result: ConnectManyResult }> {
  const sockets: T[] = []
  let failed = 0
  let firstError: string | undefined
  let next = 0
  const started = performance.now()
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      // A source port still held by an earlier connection is skipped for the next one.
      for (let attempt = 1; ; attempt++) {
        try {
          sockets.push(await open(i))
          break
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue
          failed++
          firstError ??= err instanceof Error ? err.message : String(err)
          break
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
  const ms = performance.now() - started
  return { sockets, result: { connected: sockets.length, failed, firstError, ms: Math.round(ms), perSec: Math.round((sockets.length / ms) * 1000) } }
}

/** Resolves `ws` once it is open (`until: 'open'`) or has received its first message; rejects on a refusal. */
function opened(ws: WebSocket, until: 'message' | 'open', ready?: Promise<void>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      ws.terminate()
      reject(err)
    }
    if (ready !== undefined) void ready.then(() => resolve(ws))
    else ws.once(until, () => resolve(ws))
    ws.once('error', fail)
    ws.once('close', (code: number) => reject(new Error(`closed with ${code} before it was open`)))
    ws.once('unexpected-response', (_req, res: IncomingMessage) => fail(new Error(`HTTP ${res.statusCode ?? 0}`)))
  })
}

/** The tokens a storm or idle connect uses: given, or signed for the given devices (none: unauthenticated). */
async function paramTokens(params: ConnectManyParams): Promise<{ tokens: readonly string[] | undefined; count: number }> {
  const tokens = params.tokens ?? (params.devices === undefined ? undefined : await tokensFor(params.devices))
  return { tokens, count: tokens?.length ?? params.count ?? 0 }
}

async function connectSessions(params: ConnectManyParams): Promise<{ sockets: WebSocket[]; result: ConnectManyResult }> {
  const { tokens, count } = await paramTokens(params)
  const ends = new LocalPorts(params.localAddresses ?? [])
  return await connectMany(count, params.concurrency, (i) => {
    const headers = tokens === undefined ? undefined : { authorization: `Bearer ${tokens[i] as string}` }
    const ws = new WebSocket(params.url, clientOptions(ends.next(), headers))
    // An idle client still answers the hub's pings (ws does that itself) and keeps nothing.
    return opened(ws, params.until)
  })
}

function sample(resetLatency: boolean): FleetSample {
  if (fleet === undefined) throw new Error('no fleet')
  let inflight = 0
  let backlog = 0
  let open = 0
  for (const d of fleet.devices) {
    inflight += d.inflight
    backlog += Number.isFinite(d.backlog) ? d.backlog : 0
    if (d.ws.readyState === WebSocket.OPEN) open++
  }
  const latency = summarise(fleet.latency.current)
  if (resetLatency) fleet.latency.current = latencyHistogram()
  return { at: Date.now(), counters: { ...fleet.counters, closes: { ...fleet.counters.closes } }, inflight, backlog, open, latency }
}

export const fleetHandlers: Handlers = {
  /** Connects a fleet of lean devices (they send nothing yet); resolves once every hello arrived. */
  async 'fleet.connect'(raw) {
    const params = raw as FleetConnectParams
    if (fleet !== undefined) throw new Error('a fleet is already connected')
    const counters = newCounters()
    const latency = { current: latencyHistogram() }
    const twinLatency = { current: latencyHistogram() }
    const tokens = await tokensFor(params.devices)
    const ends = new LocalPorts(params.localAddresses ?? [])
    const devices: LeanDevice[] = []
    const { result } = await connectMany(params.devices.length, params.concurrency ?? 200, (i) => {
      const creds = params.devices[i] as DeviceCreds
      const ws = new WebSocket(params.url, clientOptions(ends.next(), { authorization: `Bearer ${tokens[i] as string}` }))
      const device = new LeanDevice(ws, creds.id, { readingsPerFrame: params.readingsPerFrame, t0: params.t0, counters, latency, twinLatency })
      return opened(ws, 'message', device.hello).then((open) => {
        devices.push(device)
        return open
      })
    })
    fleet = { devices, counters, latency, twinLatency, stopPacing: () => undefined }
    if (result.failed > 0) throw new Error(`${result.failed} of ${params.devices.length} devices could not connect: ${result.firstError ?? ''}`)
    return { connected: devices.length, ms: result.ms }
  },

  /** Starts telemetry: as fast as the hub acks (no rate), or `ratePerSec` frames a second over the fleet. */
  'fleet.start'(raw) {
    const params = (raw ?? {}) as { ratePerSec?: number }
    if (fleet === undefined) throw new Error('no fleet')
    for (const d of fleet.devices) {
      d.sending = true
      d.backlog = params.ratePerSec === undefined ? Number.POSITIVE_INFINITY : 0
    }
    if (params.ratePerSec !== undefined && params.ratePerSec > 0) fleet.stopPacing = pace(fleet.devices, params.ratePerSec)
    else for (const d of fleet.devices) d.pump()
    return true
  },

  /** The fleet's counters now; `resetLatency` starts a new latency window. */
  'fleet.sample'(raw) {
    return sample((raw as { resetLatency?: boolean } | undefined)?.resetLatency === true)
  },

  /** Twin figures now; `resetLatency` starts a new latency window; `minVersion` (default 1) counts converged devices. */
  'fleet.twins'(raw): FleetTwins {
    const params = (raw ?? {}) as { resetLatency?: boolean; minVersion?: number }
    if (fleet === undefined) throw new Error('no fleet')
    const minVersion = params.minVersion ?? 1
    const { twdReceived, twaApplied, twaRefused } = fleet.counters
    const latency = summarise(fleet.twinLatency.current)
    if (params.resetLatency === true) fleet.twinLatency.current = latencyHistogram()
    return { twdReceived, twaApplied, twaRefused, converged: fleet.devices.filter((d) => d.convergedVersion >= minVersion).length, latency }
  },

  /** Stops offering telemetry and waits (up to `drainMs`) until every frame sent was acked or naked. */
  async 'fleet.stop'(raw) {
    const drainMs = (raw as { drainMs?: number } | undefined)?.drainMs ?? 30_000
    if (fleet === undefined) throw new Error('no fleet')
    fleet.stopPacing()
    for (const d of fleet.devices) d.backlog = 0
    const deadline = performance.now() + drainMs
    const devices = fleet.devices
    const busy = (): boolean => devices.some((d) => d.inflight > 0 && d.ws.readyState === WebSocket.OPEN)
    while (busy() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return sample(false)
  },

  /** Closes every device of the fleet. */
  'fleet.close'() {
    for (const d of fleet?.devices ?? []) d.ws.terminate()
    fleet?.stopPacing()
    fleet = undefined
    return true
  },

  /** Signs a token (valid for an hour) for each device. */
  async 'tokens.sign'(raw) {
    return await tokensFor(raw as readonly DeviceCreds[])
  },

  /**
   * Connects every device at once (up to `concurrency` in flight) and keeps them for `storm.close`:
   * the rate. Each is a hand-written upgrade on a plain socket, open once the 101 and a whole first
   * frame arrived: the `ws` client spends more CPU per handshake than the hub does (its HTTP client,
   * key generation and accept check), so on a small machine it, not the hub, would set the pace.
   */
  async storm(raw) {
    const params = raw as ConnectManyParams
    const { tokens, count } = await paramTokens(params)
    const url = new URL(params.url)
    const ends = new LocalPorts(params.localAddresses ?? [])
    const { sockets, result } = await connectMany(count, params.concurrency, (i) => rawSession(url, tokens?.[i], ends.next()))
    stormed = sockets
    return result
  },

  /** Closes what the last storm opened. */
  'storm.close'() {
    for (const socket of stormed) socket.destroy()
    stormed = []
    return true
  },

  /** Opens sessions and keeps them open (idle) until `idle.close`. */
  async 'idle.connect'(raw) {
    const { sockets, result } = await connectSessions(raw as ConnectManyParams)
    idle.push(...sockets)
    return result
  },

  'idle.close'() {
    for (const ws of idle) ws.terminate()
    idle = []
    return true
  },
}
