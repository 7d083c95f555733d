// DeviceClient against a real `ws` server on 127.0.0.1 that plays the hub's side of docs/protocol.md:
// it checks tokens with node:crypto before the upgrade (401 otherwise), sends `hello` as CBOR, and
// records what it sees. An injected clock drives tokens, timeouts and the backoff schedule.
import { createHmac, generateKeyPairSync, randomBytes, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import { SteppingClock } from '../../test/support/clock.js'
import {
  DeviceClient,
  SdkError,
  type DeviceClientEvents,
  type DeviceClientOptions,
  type HelloFrame,
  type ResultFrame,
  type WebSocketConstructor,
} from '../src/index.js'
import { decodeDeviceFrame, encodeFrame, parseToken, type Decoded, type DeviceFrame, type HubFrame } from '../src/wire.js'

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')

// ---------------------------------------------------------------- a clock the test drives

/** A stepping clock on the current whole second: the test hub checks token exps against real time. */
const newClock = (): SteppingClock => new SteppingClock(Math.floor(Date.now() / 1000) * 1000)

// ---------------------------------------------------------------- the hub's side of the wire

interface Upgrade {
  path: string
  via: 'header' | 'query' | 'none'
  token: string
  expSec: number | undefined
  accepted: boolean
}

type DeviceKey = { keyType: 'hmac'; key: Uint8Array } | { keyType: 'ed25519'; publicKey: KeyObject }

const UNAUTHORIZED_BODY = '{"error":"unauthorized"}'

class TestHub {
  readonly upgrades: Upgrade[] = []
  readonly received: Array<Decoded<DeviceFrame>> = []
  readonly closeCodes: number[] = []
  readonly sockets: WebSocket[] = []
  refuseNext = 0
  sayHello = true
  readonly #devices = new Map<string, DeviceKey>()
  readonly #server: Server
  readonly #wss = new WebSocketServer({ noServer: true })
  readonly #connections = new Set<Socket>()
  port = 0

  constructor() {
    this.#server = createServer((_req, res) => {
      res.writeHead(404).end()
    })
    this.#server.on('connection', (socket: Socket) => {
      this.#connections.add(socket)
      socket.on('close', () => this.#connections.delete(socket))
    })
    this.#server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://hub')
      const header = req.headers.authorization
      const query = url.searchParams.get('token')
      const token = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : (query ?? '')
      const parsed = parseToken(token)
      const accepted = url.pathname === '/v1/connect' && parsed !== undefined && this.#verify(parsed) && this.refuseNext === 0
      if (this.refuseNext > 0) this.refuseNext--
      this.upgrades.push({ path: url.pathname, via: header !== undefined ? 'header' : query !== null ? 'query' : 'none', token, expSec: parsed?.expSec, accepted })
      if (!accepted) {
        // docs/protocol.md: 401 before the upgrade, the same body whatever failed
        socket.end(
          `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(UNAUTHORIZED_BODY)}\r\nConnection: close\r\n\r\n${UNAUTHORIZED_BODY}`,
        )
        return
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.push(ws)
        ws.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary) this.received.push(decodeDeviceFrame(new Uint8Array(data)))
        })
        ws.on('close', (code: number) => this.closeCodes.push(code))
        if (this.sayHello) ws.send(encodeFrame(hubHello(parsed.deviceId)))
      })
    })
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.address() as AddressInfo).port
    return this
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/connect`
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  addHmac(deviceId: string): string {
    const key = new Uint8Array(randomBytes(32))
    this.#devices.set(deviceId, { keyType: 'hmac', key })
    return b64url(key)
  }

  addEd25519(deviceId: string): string {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    this.#devices.set(deviceId, { keyType: 'ed25519', publicKey })
    return b64url(privateKey.export({ format: 'der', type: 'pkcs8' }))
  }

  /** The server side of the newest session. */
  get socket(): WebSocket {
    const socket = this.sockets.at(-1)
    if (socket === undefined) throw new Error('no session')
    return socket
  }

  send(frame: HubFrame): void {
    this.socket.send(encodeFrame(frame))
  }

  async stop(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate()
    // every TCP connection, upgraded or not, so server.close() cannot wait for ever
    for (const socket of this.#connections) socket.destroy()
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()))
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #verify(parsed: NonNullable<ReturnType<typeof parseToken>>): boolean {
    const device = this.#devices.get(parsed.deviceId)
    const nowSec = Date.now() / 1000
    if (device === undefined || parsed.expSec < nowSec - 30 || parsed.expSec > nowSec + 86_400) return false
    if (device.keyType === 'hmac') {
      const expected = createHmac('sha256', device.key).update(parsed.signed).digest()
      return parsed.sig.length === expected.length && timingSafeEqual(parsed.sig, expected)
    }
    return parsed.sig.length === 64 && verify(null, Buffer.from(parsed.signed), device.publicKey, parsed.sig)
  }
}

function hubHello(dev: string): HelloFrame {
  return { t: 'hello', dev, now: 1_700_000_000_000, v: 'test-hub', lim: { frame: 65_536, batch: 500, rate: 100, window: 64 } }
}

// ---------------------------------------------------------------- helpers, with cleanup

const hubs: TestHub[] = []
const clients: DeviceClient[] = []

afterEach(async () => {
  const closing = clients.splice(0).map((client) => client.close())
  await Promise.allSettled(closing)
  await Promise.allSettled(hubs.splice(0).map((hub) => hub.stop()))
})

async function startHub(): Promise<TestHub> {
  const hub = new TestHub()
  hubs.push(hub)
  return hub.start()
}

function newClient(options: DeviceClientOptions): DeviceClient {
  const client = new DeviceClient(options)
  clients.push(client)
  return client
}

type Logged = { [K in keyof DeviceClientEvents]: [K, ...DeviceClientEvents[K]] }[keyof DeviceClientEvents]

/** Every event of `client`, in order: errors as their codes, hellos as their device. */
function record(client: DeviceClient): unknown[][] {
  const log: unknown[][] = []
  const push = (entry: Logged): void => {
    const [name, arg] = entry
    log.push([name, arg instanceof SdkError ? arg.code : name === 'connected' ? (arg as HelloFrame).dev : arg])
  }
  client.on('connected', (hello) => push(['connected', hello]))
  client.on('disconnected', (info) => push(['disconnected', info]))
  client.on('reconnecting', (info) => push(['reconnecting', info]))
  client.on('error', (error) => push(['error', error]))
  client.on('command', (command) => push(['command', command]))
  return log
}

function next<K extends keyof DeviceClientEvents>(client: DeviceClient, event: K, timeoutMs = 5000): Promise<DeviceClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${String(event)} event within ${timeoutMs} ms`)), timeoutMs)
    client.once(event, (...args) => {
      clearTimeout(timer)
      resolve(args)
    })
  })
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// A WHATWG-shaped WebSocket for Node: two constructor arguments, no headers, no ping().
class WhatwgWebSocket {
  readonly #ws: WebSocket
  constructor(url: string, protocols?: string | string[]) {
    this.#ws = new WebSocket(url, protocols)
  }
  get binaryType(): string {
    return this.#ws.binaryType
  }
  set binaryType(type: string) {
    this.#ws.binaryType = type as WebSocket['binaryType']
  }
  get readyState(): number {
    return this.#ws.readyState
  }
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount
  }
  set onopen(handler: ((event: never) => void) | null) {
    this.#ws.onopen = handler as WebSocket['onopen']
  }
  set onmessage(handler: ((event: never) => void) | null) {
    this.#ws.onmessage = handler as WebSocket['onmessage']
  }
  set onerror(handler: ((event: never) => void) | null) {
    this.#ws.onerror = handler as WebSocket['onerror']
  }
  set onclose(handler: ((event: never) => void) | null) {
    this.#ws.onclose = handler as WebSocket['onclose']
  }
  get onopen(): null {
    return null
  }
  get onmessage(): null {
    return null
  }
  get onerror(): null {
    return null
  }
  get onclose(): null {
    return null
  }
  send(data: Uint8Array): void {
    this.#ws.send(data)
  }
  close(code?: number, reason?: string): void {
    this.#ws.close(code, reason)
  }
}

// Compile-time checks: ws, the shape above, and lib.dom's WebSocket all fit WebSocketConstructor.
interface DomWebSocket {
  binaryType: 'blob' | 'arraybuffer'
  readonly bufferedAmount: number
  readonly readyState: number
  onclose: ((this: DomWebSocket, ev: { code: number; reason: string; wasClean: boolean }) => unknown) | null
  onerror: ((this: DomWebSocket, ev: { type: string }) => unknown) | null
  onmessage: ((this: DomWebSocket, ev: { data: unknown }) => unknown) | null
  onopen: ((this: DomWebSocket, ev: { type: string }) => unknown) | null
  close(code?: number, reason?: string): void
  send(data: string | ArrayBufferLike | ArrayBufferView): void
}
type DomWebSocketConstructor = new (url: string | URL, protocols?: string | string[]) => DomWebSocket
const typeChecks: WebSocketConstructor[] = [WebSocket, WhatwgWebSocket, null as unknown as DomWebSocketConstructor]

// ---------------------------------------------------------------- tests

describe('DeviceClient sessions', () => {
  it('connects with the token in the Authorization header (Node ws), emits connected and sends frames', async () => {
    expect(typeChecks).toHaveLength(3)
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.httpUrl, deviceId: 'dev-1', key: hub.addHmac('dev-1'), clock, helloTimeoutMs: 60_000 })
    const log = record(client)
    expect(client.url).toBe(`ws://127.0.0.1:${hub.port}/v1/connect`)
    expect(client.connected).toBe(false)

    const hello = await client.connect()
    expect(hello).toStrictEqual(hubHello('dev-1'))
    expect(client.connected).toBe(true)
    expect(client.hello).toStrictEqual(hello)
    expect(await client.connect()).toBe(hello)
    expect(hub.upgrades).toStrictEqual([
      { path: '/v1/connect', via: 'header', token: expect.stringMatching(/^v1\.dev-1\.\d+\.[A-Za-z0-9_-]{43}$/), expSec: clock.nowMs / 1000 + 3600, accepted: true },
    ])
    expect(log).toStrictEqual([['connected', 'dev-1']])
    // the hello timer was set, then cleared by the hello
    expect(clock.scheduled).toStrictEqual([60_000])
    expect(clock.pending()).toStrictEqual([])

    // never acked by this hub: only the frame matters here
    void client.send({ temp: 21.5 }, { ts: 1_700_000_000_500, tags: { room: 'a' } }).catch(() => {})
    await waitFor(() => hub.received.length === 1, 'the tm frame at the hub')
    expect(client.sendFrame({ t: 'res', id: 'c1', ok: true, r: { done: 1 } })).toBe(true)
    await waitFor(() => hub.received.length === 2, 'two frames at the hub')
    expect(hub.received).toStrictEqual([
      { ok: true, frame: { t: 'tm', s: 1, ts: 1_700_000_000_500, m: { temp: 21.5 }, g: { room: 'a' } } },
      { ok: true, frame: { t: 'res', id: 'c1', ok: true, r: { done: 1 } } },
    ])
  })

  it("sends the token as ?token= with auth: 'query'", async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-2', key: hub.addHmac('dev-2'), auth: 'query', clock: newClock() })
    await client.connect()
    expect(hub.upgrades.map(({ path, via, accepted }) => ({ path, via, accepted }))).toStrictEqual([{ path: '/v1/connect', via: 'query', accepted: true }])
  })

  it('defaults to query auth for an injected constructor without headers (WHATWG)', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-3', key: hub.addHmac('dev-3'), WebSocket: WhatwgWebSocket, clock: newClock() })
    expect((await client.connect()).dev).toBe('dev-3')
    expect(hub.upgrades.map((upgrade) => upgrade.via)).toStrictEqual(['query'])
  })

  it('defaults to header auth for an injected ws constructor', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-4', key: hub.addHmac('dev-4'), WebSocket, clock: newClock() })
    await client.connect()
    expect(hub.upgrades.map((upgrade) => upgrade.via)).toStrictEqual(['header'])
  })

  it('connects an ed25519 device', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'ed-1', keyType: 'ed25519', key: hub.addEd25519('ed-1'), clock: newClock() })
    expect((await client.connect()).dev).toBe('ed-1')
    expect(hub.upgrades[0]?.token).toMatch(/^v1\.ed-1\.\d+\.[A-Za-z0-9_-]{86}$/)
  })

  it('reconnects after the hub drops the session, on the injected clock, with events in order', async () => {
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-5', key: hub.addHmac('dev-5'), clock, random: () => 1, helloTimeoutMs: 60_000 })
    const log = record(client)
    await client.connect()

    const reconnecting = next(client, 'reconnecting')
    hub.socket.close(1001, 'going away')
    expect(await reconnecting).toStrictEqual([{ attempt: 1, delayMs: 500 }])
    expect(client.connected).toBe(false)
    expect(client.hello).toBeUndefined()
    expect(clock.pending()).toStrictEqual([500])
    // nothing happens until the clock says so
    await sleep(50)
    expect(hub.upgrades).toHaveLength(1)

    const connected = next(client, 'connected')
    clock.advance(500)
    await connected
    expect(hub.upgrades).toHaveLength(2)
    expect(log).toStrictEqual([
      ['connected', 'dev-5'],
      ['disconnected', { code: 1001, reason: 'going away' }],
      ['reconnecting', { attempt: 1, delayMs: 500 }],
      ['connected', 'dev-5'],
    ])
  })

  it('backs off exactly on failed attempts, with a fresh token (new exp) for each', async () => {
    const hub = await startHub()
    const clock = newClock()
    const key = hub.addHmac('dev-6')
    hub.refuseNext = 3
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-6', key, clock, random: () => 1, backoff: { initialDelayMs: 1000 }, helloTimeoutMs: 60_000 })
    const log = record(client)
    const hello = client.connect()
    hello.catch(() => {}) // awaited below; this only keeps a failing test from adding an unhandled rejection

    for (const delayMs of [1000, 2000, 4000]) {
      const [info] = await next(client, 'reconnecting')
      expect(info.delayMs).toBe(delayMs)
      expect(clock.pending()).toStrictEqual([delayMs])
      clock.advance(delayMs)
    }
    expect((await hello).dev).toBe('dev-6')
    const startSec = clock.nowMs / 1000 - 7
    expect(hub.upgrades.map((upgrade) => upgrade.expSec)).toStrictEqual([startSec + 3600, startSec + 3601, startSec + 3603, startSec + 3607])
    expect(new Set(hub.upgrades.map((upgrade) => upgrade.token)).size).toBe(4)
    expect(hub.upgrades.map((upgrade) => upgrade.accepted)).toStrictEqual([false, false, false, true])
    expect(log).toStrictEqual([
      ['error', 'SDK_ERR_UNAUTHORIZED'],
      ['reconnecting', { attempt: 1, delayMs: 1000 }],
      ['error', 'SDK_ERR_UNAUTHORIZED'],
      ['reconnecting', { attempt: 2, delayMs: 2000 }],
      ['error', 'SDK_ERR_UNAUTHORIZED'],
      ['reconnecting', { attempt: 3, delayMs: 4000 }],
      ['connected', 'dev-6'],
    ])
  })

  it('resets the backoff after a stable session, not after a short one', async () => {
    const hub = await startHub()
    const clock = newClock()
    const key = hub.addHmac('dev-7')
    hub.refuseNext = 2
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-7', key, clock, random: () => 0.5, helloTimeoutMs: 60_000 })
    const delays: number[] = []
    client.on('reconnecting', ({ delayMs }) => delays.push(delayMs))
    const hello = client.connect()
    hello.catch(() => {}) // awaited below; this only keeps a failing test from adding an unhandled rejection
    for (const delayMs of [250, 500]) {
      await next(client, 'reconnecting')
      clock.advance(delayMs)
    }
    await hello

    // a 9.999 s session is not stable: the schedule carries on
    clock.advance(9999)
    let reconnecting = next(client, 'reconnecting')
    hub.socket.terminate()
    expect(await reconnecting).toStrictEqual([{ attempt: 3, delayMs: 1000 }])
    let connected = next(client, 'connected')
    clock.advance(1000)
    await connected

    // a 10 s session is: the next delay starts over
    clock.advance(10_000)
    reconnecting = next(client, 'reconnecting')
    hub.socket.terminate()
    expect(await reconnecting).toStrictEqual([{ attempt: 1, delayMs: 250 }])
    connected = next(client, 'connected')
    clock.advance(250)
    await connected
    expect(delays).toStrictEqual([250, 500, 1000, 250])
  })

  it('close() resolves once the socket is closed, and no reconnect follows', async () => {
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-8', key: hub.addHmac('dev-8'), clock })
    const log = record(client)
    await client.connect()
    await client.close()
    expect(client.connected).toBe(false)
    expect(log).toStrictEqual([
      ['connected', 'dev-8'],
      ['disconnected', { code: 1000, reason: '' }],
    ])
    await waitFor(() => hub.closeCodes.length === 1, 'the hub to see the close')
    expect(hub.closeCodes).toStrictEqual([1000])
    expect(clock.pending()).toStrictEqual([])
    clock.advance(60_000)
    await sleep(50)
    expect(hub.upgrades).toHaveLength(1)
    await expect(client.connect()).rejects.toMatchObject({ code: 'SDK_ERR_CLOSED' })
    await client.close()
  })

  it('close() with a code sends it; an invalid code is refused', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-9', key: hub.addHmac('dev-9'), clock: newClock() })
    await client.connect()
    await expect(client.close(1006)).rejects.toMatchObject({ code: 'SDK_ERR_INVALID_OPTION', message: 'code: expected 1000 or 3000 to 4999, got 1006' })
    expect(client.connected).toBe(true)
    await client.close(4000)
    await waitFor(() => hub.closeCodes.length === 1, 'the hub to see the close')
    expect(hub.closeCodes).toStrictEqual([4000])
  })

  it('close() while waiting to retry cancels the retry and rejects connect()', async () => {
    const hub = await startHub()
    hub.refuseNext = 1
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-10', key: hub.addHmac('dev-10'), clock, random: () => 1 })
    const hello = client.connect().catch((error: unknown) => error)
    await next(client, 'reconnecting')
    expect(clock.pending()).toStrictEqual([500])
    await client.close()
    expect(await hello).toMatchObject({ code: 'SDK_ERR_CLOSED' })
    expect(clock.pending()).toStrictEqual([])
    clock.advance(500)
    await sleep(50)
    expect(hub.upgrades).toHaveLength(1)
  })

  it('close() during the handshake rejects connect() and resolves', async () => {
    const hub = await startHub()
    hub.sayHello = false
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-11', key: hub.addHmac('dev-11'), clock })
    const log = record(client)
    const hello = client.connect().catch((error: unknown) => error)
    await waitFor(() => hub.sockets.length === 1, 'the upgrade')
    await client.close()
    expect(await hello).toMatchObject({ code: 'SDK_ERR_CLOSED' })
    expect(log).toStrictEqual([])
  })
})

describe('DeviceClient failures', () => {
  it('with reconnect: false, connect() rejects with SDK_ERR_HANDSHAKE on a 401 (cause SDK_ERR_UNAUTHORIZED)', async () => {
    const hub = await startHub()
    hub.addHmac('dev-20')
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-20', key: b64url(randomBytes(32)), reconnect: false, clock })
    const log = record(client)
    const error: unknown = await client.connect().catch((rejection: unknown) => rejection)
    expect(error).toBeInstanceOf(SdkError)
    expect(error).toMatchObject({ code: 'SDK_ERR_HANDSHAKE', cause: { code: 'SDK_ERR_UNAUTHORIZED' } })
    expect(log).toStrictEqual([['error', 'SDK_ERR_UNAUTHORIZED']])
    expect(hub.upgrades.map((upgrade) => upgrade.accepted)).toStrictEqual([false])
    expect(clock.pending()).toStrictEqual([])
  })

  it('with reconnect: false, connect() rejects with SDK_ERR_HANDSHAKE when nothing listens', async () => {
    const hub = await startHub()
    const url = hub.wsUrl
    await hub.stop()
    const client = newClient({ url, deviceId: 'dev-21', key: b64url(randomBytes(32)), reconnect: false, clock: newClock() })
    await expect(client.connect()).rejects.toMatchObject({ code: 'SDK_ERR_HANDSHAKE', cause: { code: 'ECONNREFUSED' } })
  })

  it('gives up an attempt without hello after helloTimeoutMs', async () => {
    const hub = await startHub()
    hub.sayHello = false
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-22', key: hub.addHmac('dev-22'), reconnect: false, helloTimeoutMs: 7000, clock })
    const hello = client.connect()
    hello.catch(() => {}) // awaited below; this only keeps a failing test from adding an unhandled rejection
    await waitFor(() => hub.sockets.length === 1, 'the upgrade')
    expect(clock.pending()).toStrictEqual([7000])
    clock.advance(6999)
    await sleep(20)
    expect(hub.closeCodes).toStrictEqual([])
    clock.advance(1)
    await expect(hello).rejects.toMatchObject({ code: 'SDK_ERR_HANDSHAKE', message: 'no hello from the hub within 7000 ms' })
    await waitFor(() => hub.closeCodes.length === 1, 'the hub to see the close')
    expect(hub.closeCodes).toStrictEqual([1002])
  })

  it('on 4001 (replaced) reports SDK_ERR_REPLACED and does not reconnect', async () => {
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-23', key: hub.addHmac('dev-23'), clock })
    const log = record(client)
    await client.connect()
    const disconnected = next(client, 'disconnected')
    hub.socket.close(4001, 'replaced')
    await disconnected
    await sleep(20)
    expect(log).toStrictEqual([
      ['connected', 'dev-23'],
      ['error', 'SDK_ERR_REPLACED'],
      ['disconnected', { code: 4001, reason: 'replaced' }],
    ])
    expect(clock.pending()).toStrictEqual([])
    // connect() starts again on purpose
    expect((await client.connect()).dev).toBe('dev-23')
    expect(hub.upgrades).toHaveLength(2)
  })

  it('on 4003 (disabled) reports SDK_ERR_UNAUTHORIZED and keeps reconnecting with backoff', async () => {
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-24', key: hub.addHmac('dev-24'), clock, random: () => 1 })
    const log = record(client)
    await client.connect()
    const reconnecting = next(client, 'reconnecting')
    hub.socket.close(4003, 'disabled')
    await reconnecting
    expect(log).toStrictEqual([
      ['connected', 'dev-24'],
      ['error', 'SDK_ERR_UNAUTHORIZED'],
      ['disconnected', { code: 4003, reason: 'disabled' }],
      ['reconnecting', { attempt: 1, delayMs: 500 }],
    ])
  })

  it('emits commands, hub errors and naks; garbage from the hub is an error and closes with 1007', async () => {
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-25', key: hub.addHmac('dev-25'), clock, random: () => 1 })
    const log = record(client)
    await client.connect()

    const command = next(client, 'command')
    hub.send({ t: 'cmd', id: 'c-1', n: 'valve.set', p: { open: true }, exp: 1_700_000_010_000 })
    expect(await command).toStrictEqual([{ t: 'cmd', id: 'c-1', n: 'valve.set', p: { open: true }, exp: 1_700_000_010_000 }])

    let error = next(client, 'error')
    hub.send({ t: 'nak', s: 4, e: 'rate' })
    expect((await error)[0]).toMatchObject({ code: 'SDK_ERR_NAK', reason: 'rate', message: 'the hub refused frame 4, which is not in flight: rate' })

    error = next(client, 'error')
    hub.send({ t: 'err', e: 'invalid', msg: 'frame 9 is not a map' })
    expect((await error)[0]).toMatchObject({ code: 'SDK_ERR_HUB', message: 'the hub reports invalid: frame 9 is not a map' })

    hub.send({ t: 'ack', s: 4 })
    error = next(client, 'error')
    const reconnecting = next(client, 'reconnecting')
    hub.socket.send(Uint8Array.of(0x82, 0x01, 0x02))
    expect((await error)[0]).toMatchObject({
      code: 'SDK_ERR_PROTOCOL',
      message: 'the hub sent a frame that does not decode (not_map): expected a CBOR map, got an array',
    })
    await reconnecting
    expect(hub.closeCodes).toStrictEqual([1007])
    expect(log.map(([name, arg]) => (name === 'command' ? name : `${String(name)}:${typeof arg === 'string' ? arg : JSON.stringify(arg)}`))).toStrictEqual([
      'connected:dev-25',
      'command',
      'error:SDK_ERR_NAK',
      'error:SDK_ERR_HUB',
      'error:SDK_ERR_PROTOCOL',
      'disconnected:{"code":1007,"reason":""}',
      'reconnecting:{"attempt":1,"delayMs":500}',
    ])
  })

  it('closes with 1003 on a text frame', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-26', key: hub.addHmac('dev-26'), clock: newClock() })
    await client.connect()
    const error = next(client, 'error')
    hub.socket.send('hello')
    expect((await error)[0]).toMatchObject({ code: 'SDK_ERR_PROTOCOL', message: 'the hub sent a text frame' })
    await waitFor(() => hub.closeCodes.length === 1, 'the hub to see the close')
    expect(hub.closeCodes).toStrictEqual([1003])
  })

  it('refuses a hello for another device', async () => {
    const hub = await startHub()
    hub.sayHello = false
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-27', key: hub.addHmac('dev-27'), reconnect: false, clock })
    const hello = client.connect()
    hello.catch(() => {}) // awaited below; this only keeps a failing test from adding an unhandled rejection
    await waitFor(() => hub.sockets.length === 1, 'the upgrade')
    hub.send(hubHello('someone-else'))
    await expect(hello).rejects.toMatchObject({ code: 'SDK_ERR_HANDSHAKE', cause: { code: 'SDK_ERR_PROTOCOL', message: 'the hub said hello to device someone-else' } })
  })

  it('sendFrame() returns false without a session and refuses telemetry, which send() owns', async () => {
    const client = newClient({ url: 'ws://127.0.0.1:9/v1/connect', deviceId: 'd', key: b64url(randomBytes(32)) })
    expect(client.sendFrame({ t: 'res', id: 'c1', ok: true })).toBe(false)
    const tm: unknown = { t: 'tm', s: 1, m: { a: 1 } }
    expect(() => client.sendFrame(tm as ResultFrame)).toThrow(expect.objectContaining({ code: 'SDK_ERR_PROTOCOL' }))
  })
})

describe('DeviceClient telemetry', () => {
  it('queues offline, sends on hello, resolves at the ack, rejects on a nak, exposes its counters', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-40', key: hub.addHmac('dev-40'), batchMaxReadings: 2, clock: newClock() })
    const errors: SdkError[] = []
    client.on('error', (error) => errors.push(error))
    const offline = client.send({ temp: 20 }, { ts: 1_700_000_000_001 })
    const batch = client.sendBatch([
      { metrics: { temp: 21 }, ts: 1_700_000_000_002, tags: { room: 'b' } },
      { metrics: { temp: 22 }, ts: new Date(1_700_000_000_003) },
    ])
    const naked = client.send({ temp: 23 }, { ts: 1_700_000_000_004 })
    await expect(client.send({ temp: Number.NaN })).rejects.toMatchObject({ code: 'SDK_ERR_INVALID_READING', message: 'metrics.temp: not a finite number (NaN)' })
    expect([client.queued, client.inflight, client.dropped]).toStrictEqual([4, 0, 0])
    await client.connect()
    await waitFor(() => hub.received.length === 2, 'two frames')
    expect(hub.received).toStrictEqual([
      { ok: true, frame: { t: 'tb', s: 1, r: [{ ts: 1_700_000_000_001, m: { temp: 20 } }, { ts: 1_700_000_000_002, m: { temp: 21 }, g: { room: 'b' } }] } },
      { ok: true, frame: { t: 'tb', s: 2, r: [{ ts: 1_700_000_000_003, m: { temp: 22 } }, { ts: 1_700_000_000_004, m: { temp: 23 } }] } },
    ])
    expect([client.queued, client.inflight]).toStrictEqual([0, 4])
    hub.send({ t: 'ack', s: 1 })
    await offline
    const refused = Promise.allSettled([batch, naked])
    hub.send({ t: 'nak', s: 2, e: 'invalid' })
    expect(await refused).toMatchObject([
      { status: 'rejected', reason: { code: 'SDK_ERR_NAK', reason: 'invalid' } },
      { status: 'rejected', reason: { code: 'SDK_ERR_NAK', reason: 'invalid' } },
    ])
    await client.flush()
    expect([client.queued, client.inflight]).toStrictEqual([0, 0])
    // a nak the client has no frame for is news
    hub.send({ t: 'nak', s: 2, e: 'seq' })
    await waitFor(() => errors.length === 1, 'an error')
    expect(errors[0]).toMatchObject({ code: 'SDK_ERR_NAK', reason: 'seq' })
  })

  it('close() rejects unacked readings and pending flushes with SDK_ERR_CLOSED, and refuses new ones', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-41', key: hub.addHmac('dev-41'), clock: newClock() })
    await client.connect()
    const sent = client.send({ a: 1 })
    const flushed = client.flush()
    await waitFor(() => hub.received.length === 1, 'the frame')
    const outcomes = Promise.allSettled([sent, flushed])
    await client.close()
    expect(await outcomes).toMatchObject([
      { status: 'rejected', reason: { code: 'SDK_ERR_CLOSED' } },
      { status: 'rejected', reason: { code: 'SDK_ERR_CLOSED' } },
    ])
    await expect(client.send({ a: 2 })).rejects.toMatchObject({ code: 'SDK_ERR_CLOSED' })
    await expect(client.sendBatch([{ metrics: { a: 3 } }])).rejects.toMatchObject({ code: 'SDK_ERR_CLOSED' })
  })

  it('resends unacked frames with their seq and ts on the next session, before new ones', async () => {
    const hub = await startHub()
    const clock = newClock()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-42', key: hub.addHmac('dev-42'), clock, random: () => 0 })
    await client.connect()
    const first = client.send({ a: 1 })
    await waitFor(() => hub.received.length === 1, 'the first frame')
    const reconnected = next(client, 'connected')
    const reconnecting = next(client, 'reconnecting')
    hub.socket.terminate()
    await reconnecting
    const second = client.send({ a: 2 })
    clock.advance(0)
    await reconnected
    await waitFor(() => hub.received.length === 3, 'the resend and the new frame')
    expect(hub.received.map((decoded) => (decoded.ok ? decoded.frame : decoded))).toStrictEqual([
      { t: 'tm', s: 1, ts: clock.nowMs, m: { a: 1 } },
      { t: 'tm', s: 1, ts: clock.nowMs, m: { a: 1 } },
      { t: 'tm', s: 2, ts: clock.nowMs + 1, m: { a: 2 } },
    ])
    hub.send({ t: 'ack', s: 2 })
    await Promise.all([first, second])
  })
})

describe('DeviceClient options', () => {
  const key = b64url(new Uint8Array(32).fill(1))
  const base: DeviceClientOptions = { url: 'ws://127.0.0.1:8080/v1/connect', deviceId: 'dev-1', key }

  it.each([
    ['an unknown option', { ...base, reconnectDelay: 5 }, 'reconnectDelay: unknown option'],
    ['no url', { ...base, url: undefined }, 'url: expected a ws(s):// or http(s):// URL'],
    ['a relative url', { ...base, url: '/v1/connect' }, 'url: not a URL: "/v1/connect"'],
    ['an ftp url', { ...base, url: 'ftp://hub/v1/connect' }, 'url: expected ws:, wss:, http: or https:, got ftp:'],
    ['a url with a fragment', { ...base, url: 'ws://hub/v1/connect#x' }, 'url: a WebSocket URL has no #fragment'],
    ['a device id with a slash', { ...base, deviceId: 'a/b' }, 'deviceId: expected 1 to 64 of A-Z a-z 0-9 _ -'],
    ['a 65-character device id', { ...base, deviceId: 'a'.repeat(65) }, 'deviceId: expected 1 to 64 of A-Z a-z 0-9 _ -'],
    ['no key', { ...base, key: undefined }, 'key: expected base64url text without padding, or a Uint8Array'],
    ['a short hmac key', { ...base, key: b64url(new Uint8Array(16)) }, 'key: an hmac key is 32 bytes, got 16'],
    ['a key type', { ...base, keyType: 'rsa' }, "keyType: expected 'hmac' or 'ed25519'"],
    ['a WebSocket that is no constructor', { ...base, WebSocket: {} }, 'WebSocket: expected a WebSocket constructor'],
    ['an auth mode', { ...base, auth: 'cookie' }, "auth: expected 'header' or 'query'"],
    ['a token TTL over 24 h', { ...base, tokenTtlSec: 86_401 }, 'tokenTtlSec: expected whole seconds from 1 to 86400'],
    ['a token TTL of 0', { ...base, tokenTtlSec: 0 }, 'tokenTtlSec: expected whole seconds from 1 to 86400'],
    ['a fractional token TTL', { ...base, tokenTtlSec: 1.5 }, 'tokenTtlSec: expected whole seconds from 1 to 86400'],
    ['reconnect as text', { ...base, reconnect: 'yes' }, 'reconnect: expected a boolean'],
    ['an unknown backoff option', { ...base, backoff: { jitter: true } }, 'backoff.jitter: unknown option'],
    ['random inside backoff', { ...base, backoff: { random: () => 1 } }, 'backoff.random: unknown option'],
    ['a backoff factor below 1', { ...base, backoff: { factor: 0 } }, 'backoff.factor: expected a finite number >= 1'],
    ['a backoff beyond a timer', { ...base, backoff: { maxDelayMs: 2 ** 31 } }, 'backoff.maxDelayMs: expected at most 2147483647 ms'],
    ['a negative stableAfterMs', { ...base, stableAfterMs: -1 }, 'stableAfterMs: expected a finite number of ms >= 0'],
    ['a zero helloTimeoutMs', { ...base, helloTimeoutMs: 0 }, 'helloTimeoutMs: expected ms from 1 to 2147483647'],
    ['a clock without timers', { ...base, clock: { now: (): number => 0 } }, 'clock: expected { now(), setTimeout(fn, ms), clearTimeout(handle) }'],
    ['a random that is a number', { ...base, random: 0.5 }, 'random: expected a function returning [0, 1)'],
    ['a batch of 0', { ...base, batchMaxReadings: 0 }, 'batchMaxReadings: expected a whole number from 1 to 500'],
    ['a batch over 500', { ...base, batchMaxReadings: 501 }, 'batchMaxReadings: expected a whole number from 1 to 500'],
    ['a negative linger', { ...base, lingerMs: -1 }, 'lingerMs: expected ms from 0 to 60000'],
    ['a linger over a minute', { ...base, lingerMs: 60_001 }, 'lingerMs: expected ms from 0 to 60000'],
    ['a queue of 0', { ...base, maxQueuedReadings: 0 }, 'maxQueuedReadings: expected a whole number >= 1'],
    ['an overflow policy', { ...base, overflow: 'drop-newest' }, "overflow: expected 'drop-oldest' or 'reject'"],
    ['a store without close', { ...base, store: { load: () => ({ readings: [], nextSeq: 0 }), append() {}, remove() {}, saveNextSeq() {} } }, 'store: expected a QueueStore: { load(), append(readings), remove(ids), saveNextSeq(seq), close() }'],
    ['pacing as text', { ...base, pacing: 'off' }, 'pacing: expected a boolean'],
    ['options that are null', null, 'options: expected an object'],
  ])('refuses %s with SDK_ERR_INVALID_OPTION', (_name, options, message) => {
    expect(() => new DeviceClient(options as DeviceClientOptions)).toThrowError(
      expect.objectContaining({ name: 'SdkError', code: 'SDK_ERR_INVALID_OPTION', message }),
    )
  })

  it.each([
    ['ws://hub:8080', 'ws://hub:8080/v1/connect'],
    ['ws://hub:8080/', 'ws://hub:8080/v1/connect'],
    ['wss://hub/custom/path?x=1', 'wss://hub/custom/path?x=1'],
    ['http://hub:8080', 'ws://hub:8080/v1/connect'],
    ['https://hub/fleet/', 'wss://hub/fleet/v1/connect'],
    ['https://hub/v1/connect', 'wss://hub/v1/connect'],
  ])('derives the endpoint of %s', (url, endpoint) => {
    expect(new DeviceClient({ ...base, url }).url).toBe(endpoint)
  })

  it("leaves the caller's options untouched", () => {
    const bytes = new Uint8Array(32).fill(3)
    const options: DeviceClientOptions = { ...base, key: bytes, backoff: { initialDelayMs: 100 } }
    const client = new DeviceClient(options)
    expect(options).toStrictEqual({ ...base, key: new Uint8Array(32).fill(3), backoff: { initialDelayMs: 100 } })
    expect(Object.isFrozen(options)).toBe(false)
    expect(Object.isFrozen(options.backoff)).toBe(false)
    expect(client.deviceId).toBe('dev-1')
  })
})

describe('DeviceClient waits end on an AbortSignal', () => {
  it('connect(): aborting rejects SDK_ERR_ABORTED with the reason as cause; the client keeps connecting and a later connect() gets the hello', async () => {
    const hub = await startHub()
    hub.sayHello = false
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-70', key: hub.addHmac('dev-70'), clock: newClock(), helloTimeoutMs: 60_000 })
    const controller = new AbortController()
    const aborted = client.connect({ signal: controller.signal }).catch((error: unknown) => error)
    await waitFor(() => hub.sockets.length === 1, 'the upgrade')
    controller.abort('the device gave up waiting')
    expect(await aborted).toMatchObject({ code: 'SDK_ERR_ABORTED', message: 'connect() was aborted; it stopped waiting', cause: 'the device gave up waiting' })
    expect(client.connected).toBe(false)
    const hello = client.connect()
    hub.send(hubHello('dev-70'))
    expect((await hello).dev).toBe('dev-70')
    expect(client.connected).toBe(true)
    expect(hub.sockets).toHaveLength(1)
  })

  it('connect() with a signal already aborted starts nothing', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-71', key: hub.addHmac('dev-71'), clock: newClock() })
    await expect(client.connect({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'SDK_ERR_ABORTED' })
    await sleep(50)
    expect(hub.upgrades).toHaveLength(0)
    expect((await client.connect()).dev).toBe('dev-71')
  })

  it('send(): aborting ends the wait, the reading stays in flight and is acked; an aborted signal queues nothing', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-72', key: hub.addHmac('dev-72'), clock: newClock() })
    await client.connect()
    await expect(client.send({ a: 0 }, { ts: 1_700_000_000_000, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'SDK_ERR_ABORTED' })
    expect([client.queued, client.inflight]).toStrictEqual([0, 0])
    const controller = new AbortController()
    const sent = client.send({ a: 1 }, { ts: 1_700_000_000_001, signal: controller.signal })
    const batch = client.sendBatch([{ metrics: { a: 2 }, ts: 1_700_000_000_002 }], { signal: controller.signal })
    await waitFor(() => hub.received.length >= 1 && client.inflight === 2, 'the frames at the hub')
    controller.abort()
    expect(await Promise.allSettled([sent, batch])).toMatchObject([
      { status: 'rejected', reason: { code: 'SDK_ERR_ABORTED', message: 'send() was aborted; it stopped waiting' } },
      { status: 'rejected', reason: { code: 'SDK_ERR_ABORTED', message: 'sendBatch() was aborted; it stopped waiting' } },
    ])
    expect(client.inflight).toBe(2)
    const last = hub.received.at(-1)
    hub.send({ t: 'ack', s: last?.ok === true && (last.frame.t === 'tm' || last.frame.t === 'tb') ? last.frame.s : -1 })
    await client.flush()
    expect([client.queued, client.inflight]).toStrictEqual([0, 0])
    expect(hub.received.flatMap((decoded) => (decoded.ok && decoded.frame.t === 'tb' ? decoded.frame.r.map((r) => r.m['a']) : []))).toStrictEqual([1, 2])
  })

  it('flush(): aborting rejects that flush only; another flush still resolves at the ack', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-73', key: hub.addHmac('dev-73'), clock: newClock() })
    await client.connect()
    const sent = client.send({ a: 1 })
    await waitFor(() => hub.received.length === 1, 'the frame')
    const controller = new AbortController()
    const aborted = client.flush({ signal: controller.signal })
    const kept = client.flush()
    controller.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'SDK_ERR_ABORTED', message: 'flush() was aborted; it stopped waiting' })
    hub.send({ t: 'ack', s: 1 })
    await Promise.all([sent, kept])
    expect(client.inflight).toBe(0)
  })

  it('close(): aborting ends the wait, not the close', async () => {
    const hub = await startHub()
    const client = newClient({ url: hub.wsUrl, deviceId: 'dev-74', key: hub.addHmac('dev-74'), clock: newClock() })
    await client.connect()
    const controller = new AbortController()
    const closing = client.close(1000, { signal: controller.signal })
    controller.abort()
    await expect(closing).rejects.toMatchObject({ code: 'SDK_ERR_ABORTED', message: 'close() was aborted; it stopped waiting' })
    await waitFor(() => hub.closeCodes.length === 1, 'the hub to see the close')
    expect(hub.closeCodes).toStrictEqual([1000])
    await client.close()
    await expect(client.connect()).rejects.toMatchObject({ code: 'SDK_ERR_CLOSED' })
  })

  it('refuses a signal that is not an AbortSignal', async () => {
    const client = newClient({ url: 'ws://127.0.0.1:9/v1/connect', deviceId: 'dev-75', key: b64url(randomBytes(32)), clock: newClock() })
    const notASignal = { aborted: false } as unknown as AbortSignal
    await expect(client.flush({ signal: notASignal })).rejects.toMatchObject({ code: 'SDK_ERR_INVALID_OPTION', message: 'flush(): signal: expected an AbortSignal' })
  })
})
