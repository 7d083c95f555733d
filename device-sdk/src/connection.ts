// One WebSocket to the hub: opened with a token, binary frames decoded, errors turned into
// SdkErrors, one close reported. No reconnecting, timers or events: DeviceClient owns those.
import { CloseCode } from './close-codes.js'
import { SdkError } from './errors.js'
import { decodeHubFrame, type HubFrame } from './protocol.js'
import { withTokenQuery, type AuthMode, type WebSocketConstructor, type WebSocketLike } from './transport.js'

/** What a Connection reports to its owner. After `close`, nothing more. */
export interface ConnectionEvents {
  frame(frame: HubFrame): void
  error(error: SdkError): void
  close(code: number, reason: string): void
}

const OPEN = 1

/** Whether an application may send `code` in a close frame: 1000, or 3000 to 4999 (RFC 6455 §7.4.2). */
export function isSendableCloseCode(code: number): boolean {
  return code === 1000 || (Number.isInteger(code) && code >= 3000 && code <= 4999)
}

// ws rejects a non-101 answer with this message and offers no status field to read instead.
const UNEXPECTED_RESPONSE = /^Unexpected server response: (\d{3})$/

export class Connection {
  readonly #socket: WebSocketLike
  readonly #events: ConnectionEvents
  #opened = false
  #closed = false

  /** Opens the socket; throws what the WebSocket constructor throws (a malformed URL, say). */
  constructor(WebSocket: WebSocketConstructor, endpoint: string, token: string, auth: AuthMode, events: ConnectionEvents) {
    this.#events = events
    const socket =
      auth === 'header'
        ? new WebSocket(endpoint, undefined, { headers: { authorization: `Bearer ${token}` } })
        : new WebSocket(withTokenQuery(endpoint, token))
    this.#socket = socket
    socket.binaryType = 'arraybuffer'
    socket.onopen = () => {
      this.#opened = true
    }
    socket.onmessage = (event: { data: unknown }) => this.#onMessage(event.data)
    socket.onerror = (event: { error?: unknown; message?: unknown }) => this.#onError(event)
    socket.onclose = (event: { code: number; reason: string }) => this.#onClose(event.code, event.reason)
  }

  /** Whether the socket is open for sending. */
  get open(): boolean {
    return !this.#closed && this.#socket.readyState === OPEN
  }

  send(bytes: Uint8Array): void {
    this.#socket.send(bytes)
  }

  /** Starts closing; the `close` event follows once the socket is closed. */
  close(code: number, reason?: string): void {
    if (this.#closed) return
    this.#socket.close(code, reason)
  }

  #onMessage(data: unknown): void {
    if (this.#closed) return
    let bytes: Uint8Array
    if (data instanceof ArrayBuffer) {
      bytes = new Uint8Array(data)
    } else if (ArrayBuffer.isView(data)) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    } else {
      // docs/protocol.md: every message is binary
      this.#fail(new SdkError('SDK_ERR_PROTOCOL', 'the hub sent a text frame'), CloseCode.textFrame)
      return
    }
    const decoded = decodeHubFrame(bytes)
    if (!decoded.ok) {
      this.#fail(new SdkError('SDK_ERR_PROTOCOL', `the hub sent a frame that does not decode (${decoded.code}): ${decoded.reason}`), CloseCode.badFrame)
      return
    }
    this.#events.frame(decoded.frame)
  }

  #onError(event: { error?: unknown; message?: unknown }): void {
    if (this.#closed) return
    const cause = event.error instanceof Error ? event.error : undefined
    const message = cause?.message ?? (typeof event.message === 'string' ? event.message : '')
    if (this.#opened) {
      // ws reports WebSocket protocol violations (bad framing, invalid UTF-8) this way; a plain network loss is just a close
      this.#events.error(new SdkError('SDK_ERR_PROTOCOL', `WebSocket error: ${message || 'unknown'}`, { cause }))
      return
    }
    // A WHATWG WebSocket gives no detail at all; ws names the HTTP status of a refused upgrade.
    const status = UNEXPECTED_RESPONSE.exec(message)?.[1]
    if (status === '401') {
      this.#events.error(new SdkError('SDK_ERR_UNAUTHORIZED', 'the hub refused the token (HTTP 401): unknown or disabled device, wrong key, or clock skew', { cause }))
      return
    }
    this.#events.error(new SdkError('SDK_ERR_HANDSHAKE', `cannot open a session: ${message || 'WebSocket error'}`, { cause }))
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    const socket = this.#socket
    socket.onopen = null
    socket.onmessage = null
    socket.onclose = null
    // not null: ws throws an 'error' event that has no listener
    socket.onerror = () => {}
    this.#events.close(code, reason)
  }

  #fail(error: SdkError, code: number): void {
    this.#events.error(error)
    this.close(code)
  }
}
