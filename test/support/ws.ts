import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket from 'ws'
import { type KeyType } from '@fleetgate/device-sdk'
import { decodeHubFrame, encodeFrame, signToken, type DeviceFrame, type HelloFrame, type HubFrame, type TwinDesiredFrame } from '@fleetgate/device-sdk/wire'
import { Inbox } from './inbox.js'

/** How a raw connection attempt ended: upgraded, or refused with an HTTP status and body. */
export type RawConnect =
  | { readonly ok: true; readonly ws: RawDevice }
  | { readonly ok: false; readonly status: number; readonly body: string }

/** A raw device connection for wire tests: every hub frame is queued and decoded. */
export class RawDevice {
  readonly ws: WebSocket
  readonly closed: Promise<{ code: number; reason: string }>
  readonly #inbox = new Inbox<HubFrame>()
  readonly #socket: Duplex

  constructor(ws: WebSocket, socket: Duplex) {
    this.ws = ws
    this.#socket = socket
    ws.on('message', (data: Buffer) => {
      const decoded = decodeHubFrame(new Uint8Array(data))
      if (!decoded.ok) throw new Error(`hub sent an undecodable frame: ${decoded.reason}`)
      this.#inbox.push(decoded.frame)
    })
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  }

  /** Frames received and not yet taken by `next`, oldest first. */
  get frames(): HubFrame[] {
    return this.#inbox.items
  }

  /** The next frame not yet taken, waiting up to `timeoutMs`. */
  async next(timeoutMs = 5000): Promise<HubFrame> {
    return await this.#inbox.next(timeoutMs, 'frame from the hub')
  }

  /**
   * Takes the frames every session opens with: `hello` (docs/protocol.md) and the desired twin right
   * after it (docs/twins.md); fails when the hub sends anything else first.
   */
  async opening(timeoutMs = 5000): Promise<{ hello: HelloFrame; twd: TwinDesiredFrame }> {
    const hello = await this.next(timeoutMs)
    if (hello.t !== 'hello') throw new Error(`expected hello first, got ${JSON.stringify(hello)}`)
    const twd = await this.next(timeoutMs)
    if (twd.t !== 'twd') throw new Error(`expected the desired twin after hello, got ${JSON.stringify(twd)}`)
    return { hello, twd }
  }

  /** Takes frames until an ack covers `s`; returns every frame taken on the way (acks and naks). */
  async untilAck(s: number, timeoutMs = 5000): Promise<HubFrame[]> {
    const seen: HubFrame[] = []
    for (;;) {
      const frame = await this.next(timeoutMs)
      seen.push(frame)
      if (frame.t === 'ack' && frame.s >= s) return seen
    }
  }

  /** Sends one device frame as CBOR. */
  send(frame: DeviceFrame): void {
    this.ws.send(encodeFrame(frame))
  }

  /** Sends raw bytes (binary) or text. */
  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data, { binary: typeof data !== 'string' })
  }

  /**
   * Stops reading the connection (the TCP socket, not only the WebSocket): what the hub sends piles
   * up in the kernel's buffers and then in the hub's own, as with a device on a link slower than
   * the hub's sends. Frames sent from here on still go out.
   */
  pauseReading(): void {
    this.#socket.pause()
  }

  /** Reads the connection again after {@link pauseReading}. */
  resumeReading(): void {
    this.#socket.resume()
  }

  close(): void {
    this.ws.terminate()
  }
}

/** Opens a WebSocket to the device endpoint and reports the upgrade's outcome. */
export function connectRaw(
  url: string,
  options: { token?: string; query?: boolean; localAddress?: string; ca?: Buffer } = {},
): Promise<RawConnect> {
  const target = options.query && options.token !== undefined ? `${url}?token=${encodeURIComponent(options.token)}` : url
  const headers = !options.query && options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}
  const ws = new WebSocket(target, {
    headers,
    ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
  })
  return new Promise((resolve, reject) => {
    ws.once('upgrade', (res: IncomingMessage) => resolve({ ok: true, ws: new RawDevice(ws, res.socket) }))
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => {
        ws.terminate()
        resolve({ ok: false, status: res.statusCode ?? 0, body })
      })
    })
    ws.once('error', (err) => reject(err))
  })
}

/** A device's credentials as the hub issued them. */
export interface Credentials {
  readonly deviceId: string
  readonly keyType: KeyType
  readonly key: string
}

/** Tracks devices a test opened so that `closeAll` ends them after each test. */
export class OpenDevices {
  readonly #open: RawDevice[] = []

  /** Connects the device and takes its `hello` and desired twin (the test fails without them). */
  async connect(url: string, device: Credentials): Promise<RawDevice> {
    const ws = await connectDevice(url, device)
    this.#open.push(ws)
    await ws.opening()
    return ws
  }

  /** Keeps an already connected device for `closeAll`. */
  track(ws: RawDevice): RawDevice {
    this.#open.push(ws)
    return ws
  }

  closeAll(): void {
    for (const ws of this.#open.splice(0)) ws.close()
  }
}

/** Signs a token that expires `inSec` seconds from now (default one hour). */
export function tokenFor(device: Credentials, inSec = 3600): Promise<string> {
  return signToken({ deviceId: device.deviceId, keyType: device.keyType, key: device.key, expSec: Math.floor(Date.now() / 1000) + inSec })
}

/** Connects a device with a valid token; the `hello` is left in its queue. */
export async function connectDevice(
  url: string,
  device: Credentials,
  options: { query?: boolean; ca?: Buffer } = {},
): Promise<RawDevice> {
  const result = await connectRaw(url, { token: await tokenFor(device), ...options })
  if (!result.ok) throw new Error(`device ${device.deviceId} refused: ${result.status} ${result.body}`)
  return result.ws
}
