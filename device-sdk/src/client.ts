// DeviceClient: a device's session with the hub (docs/protocol.md). It signs a fresh token for every
// attempt, waits for `hello`, dispatches hub frames, and reconnects with backoff. Telemetry
// (send/sendBatch/flush, the offline queue, the ack window, pacing) lives in TelemetryQueue, twin
// reports in TwinReports (docs/twins.md); the client feeds them the session's hello, acks, naks,
// twin answers and end.
//
// What ends a session, and what happens next:
// - a network loss, 1001 (hub shutting down), 1008 (rate abuse), a hub `err`, a hello timeout:
//   reconnect with backoff;
// - HTTP 401 on the upgrade, or close 4003 (device disabled, deleted, or key rotated with
//   `disconnect`): an `error` with SDK_ERR_UNAUTHORIZED, then keep reconnecting with backoff, which
//   soon reaches its 30 s ceiling. An operator may re-enable the device or the device's key may be
//   updated, and a device that gave up would need a person on site. (A WHATWG WebSocket does not
//   expose the HTTP status: there a 401 is an SDK_ERR_HANDSHAKE like any failed upgrade.)
// - close 4001 (a newer session of the same device replaced this one): an `error` with
//   SDK_ERR_REPLACED, and no reconnect. A socket only receives 4001 while it is alive, so another
//   live instance holds the device id; reconnecting would evict it, and it would evict us, for ever.
//   connect() starts again deliberately.
// - close(): no reconnect, ever; the client is done.
import { abortable, type WaitOptions } from './abort.js'
import { Backoff } from './backoff.js'
import { CloseCode } from './close-codes.js'
import { CommandDispatcher, type CommandHandler } from './command-dispatcher.js'
import type { DeviceClientEvents } from './client-events.js'
import { Connection, isSendableCloseCode } from './connection.js'
import { TypedEmitter } from './emitter.js'
import { SdkError } from './errors.js'
import { encodeFrame, type ErrorFrame, type HelloFrame, type HubFrame, type JsonValue, type Metrics, type ResultFrame, type TwinDesiredFrame } from './protocol.js'
import { resolveDeviceClientOptions, type DeviceClientOptions, type ResolvedDeviceClientOptions } from './options.js'
import { loadQueueStore } from './queue-store.js'
import type { SendOptions, TelemetryReading } from './reading.js'
import { TelemetryQueue } from './telemetry-queue.js'
import { DeviceTwin } from './twin.js'
import { TwinReports } from './twin-reports.js'
import { signToken } from './token.js'
import { acceptsHeaders, defaultWebSocket, type AuthMode, type WebSocketConstructor } from './transport.js'

type State = 'idle' | 'connecting' | 'open' | 'waiting' | 'closing' | 'closed'

interface Waiter {
  resolve(hello: HelloFrame): void
  reject(error: SdkError): void
}

/**
 * A device's connection to the hub. Errors are reported as `error` events, never thrown from event
 * handlers; an `error` without listeners is dropped, so listen to it to log them. The promises of
 * send() and sendBatch() reject on naks, drops and close(): handle them, even when fired and forgotten.
 */
export class DeviceClient extends TypedEmitter<DeviceClientEvents> {
  readonly #options: ResolvedDeviceClientOptions
  readonly #backoff: Backoff
  #state: State = 'idle'
  #connection: Connection | undefined
  #hello: HelloFrame | undefined
  #connectedAt = 0
  // the first thing that went wrong in the current attempt, reported once when it ends
  #attemptFailure: SdkError | undefined
  #helloTimer: unknown
  #retryTimer: unknown
  // bumped by each attempt and by close(), so an attempt still signing its token knows it is stale
  #generation = 0
  #waiters: Waiter[] = []
  #closeWaiters: Array<() => void> = []
  #webSocket: Promise<{ WebSocket: WebSocketConstructor; auth: AuthMode }> | undefined
  readonly #telemetry: TelemetryQueue
  readonly #reports: TwinReports
  #deliverDesired: (frame: TwinDesiredFrame) => void = () => undefined
  readonly #commands: CommandDispatcher
  /** Hub time minus device time, from the last `hello` (commands' deadlines are hub time). */
  #hubOffsetMs = 0

  /**
   * The device's twin (docs/twins.md): the desired document from the hub, its `desired` event, and
   * report() for the device's reported state.
   */
  readonly twin: DeviceTwin

  /**
   * Validates `options` at once (throws SdkError SDK_ERR_INVALID_OPTION naming the first bad one)
   * and loads the queue store (SDK_ERR_STORE): readings and twin reports it holds from an earlier
   * run are sent first.
   */
  constructor(options: DeviceClientOptions) {
    super()
    this.#options = resolveDeviceClientOptions(options)
    const { backoff, random } = this.#options
    this.#backoff = new Backoff({ ...backoff, random })
    const loaded = loadQueueStore(this.#options.store)
    const transmit = (bytes: Uint8Array): boolean => this.#transmit(bytes)
    const onError = (error: SdkError): void => this.emit('error', error)
    this.#reports = new TwinReports({ clock: this.#options.clock, store: this.#options.store, loaded: loaded.reports, transmit, onError })
    this.#telemetry = new TelemetryQueue({
      ...this.#options,
      loaded,
      transmit,
      onError,
      yieldTo: () => this.#reports.waitingForPace,
    })
    this.twin = new DeviceTwin(this.#reports, (deliver) => (this.#deliverDesired = deliver))
    this.#commands = new CommandDispatcher({
      send: (frame) => this.sendFrame(frame),
      hubNow: () => this.#options.clock.now() + this.#hubOffsetMs,
      report: (error) => this.#report(error),
    })
  }

  /**
   * Runs `handler` for every command named `name` (docs/protocol.md `cmd`); its result, or its thrown
   * error's message as `ok: false`, goes back to the hub. A name without a handler is answered
   * `unknown_command`; a command past its deadline is not run; results wait for the next session.
   * `P` names the params the handler expects (default any JSON value). The hub checks only that
   * params are JSON, so `P` is the handler's assumption: check what it relies on.
   */
  handle<P extends JsonValue | undefined = JsonValue | undefined>(name: string, handler: CommandHandler<P>): this {
    this.#commands.handle(name, handler as CommandHandler)
    return this
  }

  /** The device id this client connects as. */
  get deviceId(): string {
    return this.#options.deviceId
  }

  /** The device endpoint URL (without token). */
  get url(): string {
    return this.#options.url
  }

  /** Whether a session is open (the hub's `hello` arrived and the socket has not closed). */
  get connected(): boolean {
    return this.#state === 'open'
  }

  /** The `hello` of the open session; undefined while there is none. */
  get hello(): HelloFrame | undefined {
    return this.#hello
  }

  /** Readings waiting to be sent for the first time (offline, or held back by the window or the rate). */
  get queued(): number {
    return this.#telemetry.queued
  }

  /** Readings sent and not yet acked or naked, including those waiting to be resent after a reconnect. */
  get inflight(): number {
    return this.#telemetry.inflight
  }

  /** Readings dropped by overflow `'drop-oldest'` since the client was built. */
  get dropped(): number {
    return this.#telemetry.dropped
  }

  /**
   * Queues one reading stamped `options.ts` or now (strictly increasing); resolves at the ack of its
   * frame. Rejects with SDK_ERR_INVALID_READING or SDK_ERR_QUEUE_FULL at once, later SDK_ERR_NAK
   * (`reason` set), SDK_ERR_DROPPED or SDK_ERR_CLOSED. Offline, readings wait for the next session.
   * `options.signal` ends the wait (SDK_ERR_ABORTED); the reading, once queued, is still delivered.
   */
  send(metrics: Metrics, options: SendOptions & WaitOptions = {}): Promise<void> {
    if (typeof options !== 'object' || options === null) return Promise.reject(new SdkError('SDK_ERR_INVALID_READING', 'options: expected { ts?, tags?, signal? }'))
    const { signal, ...reading } = options
    return abortable(signal, 'send()', () => this.#telemetry.add([{ ...reading, metrics }], false))
  }

  /**
   * Queues readings in order, all or none (an invalid one rejects the call naming its index, as
   * `'reject'` overflow does); resolves once all are acked, rejects as send() when one fails.
   * `options.signal` ends the wait (SDK_ERR_ABORTED); queued readings are still delivered.
   */
  sendBatch(readings: readonly TelemetryReading[], options: WaitOptions = {}): Promise<void> {
    if (!Array.isArray(readings)) return Promise.reject(new SdkError('SDK_ERR_INVALID_READING', 'readings: expected an array'))
    return abortable(options.signal, 'sendBatch()', () => this.#telemetry.add(readings, true))
  }

  /**
   * Resolves once every reading queued so far is acked or naked (or dropped); SDK_ERR_CLOSED on
   * close(), SDK_ERR_ABORTED when `options.signal` aborts first.
   */
  flush(options: WaitOptions = {}): Promise<void> {
    return this.#telemetry.flush(options.signal)
  }

  /**
   * Starts connecting (and reconnecting) if not started, and resolves with the next `hello`, or the
   * current one when a session is open. Rejects with SDK_ERR_HANDSHAKE when `reconnect` is false and
   * the attempt fails, SDK_ERR_CLOSED when close() comes first, and SDK_ERR_INVALID_OPTION or
   * SDK_ERR_TOKEN when no token can be signed or no WebSocket found (retrying would not help).
   * `options.signal` ends the wait (SDK_ERR_ABORTED); the client goes on connecting until close().
   */
  connect(options: WaitOptions = {}): Promise<HelloFrame> {
    let waiter: Waiter | undefined
    return abortable(
      options.signal,
      'connect()',
      () => {
        if (this.#state === 'closing' || this.#state === 'closed') {
          return Promise.reject(new SdkError('SDK_ERR_CLOSED', 'the client is closed'))
        }
        if (this.#state === 'open' && this.#hello !== undefined) return Promise.resolve(this.#hello)
        const hello = new Promise<HelloFrame>((resolve, reject) => {
          waiter = { resolve, reject }
          this.#waiters.push(waiter)
        })
        if (this.#state === 'idle') void this.#attempt()
        return hello
      },
      () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
      },
    )
  }

  /**
   * Stops reconnecting, closes the socket with `code` (1000, or 3000 to 4999) and resolves once it
   * is closed. A pending connect(), send() or flush() rejects with SDK_ERR_CLOSED (call flush()
   * first to wait for acks); the store is closed and keeps unacked readings for the next run.
   * The client cannot connect again. `options.signal` ends the wait (SDK_ERR_ABORTED), not the close.
   */
  close(code: number = CloseCode.normal, options: WaitOptions = {}): Promise<void> {
    if (!isSendableCloseCode(code)) {
      return Promise.reject(new SdkError('SDK_ERR_INVALID_OPTION', `code: expected 1000 or 3000 to 4999, got ${code}`))
    }
    return abortable(options.signal, 'close()', () => this.#close(code))
  }

  #close(code: number): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve()
    const closed = new Promise<void>((resolve) => this.#closeWaiters.push(resolve))
    if (this.#state === 'closing') return closed
    this.#generation++
    this.#clearTimers()
    this.#rejectWaiters(new SdkError('SDK_ERR_CLOSED', 'close() was called before the hub said hello'))
    this.#telemetry.close(new SdkError('SDK_ERR_CLOSED', 'close() was called before the hub acked the reading; it may or may not be stored'))
    this.#reports.close(new SdkError('SDK_ERR_CLOSED', 'close() was called before the hub answered the twin report; the store keeps it for the next run'))
    const connection = this.#connection
    if (connection === undefined) {
      this.#finishClose()
    } else {
      this.#state = 'closing'
      connection.close(code)
    }
    return closed
  }

  /**
   * Sends a command result (`res`) on the open session; false, sending nothing, when there is none.
   * Throws SdkError SDK_ERR_PROTOCOL when it cannot be encoded. Telemetry goes through send(),
   * which owns the seqs.
   */
  sendFrame(frame: ResultFrame): boolean {
    if (frame.t !== 'res') throw new SdkError('SDK_ERR_PROTOCOL', 'sendFrame() sends `res` frames; telemetry goes through send() and sendBatch()')
    return this.#transmit(encodeFrame(frame))
  }

  #transmit(bytes: Uint8Array): boolean {
    const connection = this.#connection
    if (this.#state !== 'open' || connection === undefined || !connection.open) return false
    connection.send(bytes)
    return true
  }

  async #attempt(): Promise<void> {
    const generation = ++this.#generation
    this.#state = 'connecting'
    this.#attemptFailure = undefined
    const { url, deviceId, key, keyType, tokenTtlSec, clock, helloTimeoutMs } = this.#options
    let WebSocket: WebSocketConstructor
    let auth: AuthMode
    let token: string
    try {
      ;({ WebSocket, auth } = await this.#resolveWebSocket())
      // docs/protocol.md: exp in Unix seconds; a fresh token per attempt
      token = await signToken({ deviceId, keyType, key, expSec: Math.floor(clock.now() / 1000) + tokenTtlSec })
    } catch (error) {
      if (generation !== this.#generation) return
      // a missing WebSocket or a key WebCrypto refuses: the same next time, so stop here
      this.#giveUp(error instanceof SdkError ? error : new SdkError('SDK_ERR_TOKEN', 'cannot sign a token', { cause: error }))
      return
    }
    if (generation !== this.#generation) return
    let connection: Connection
    try {
      connection = new Connection(WebSocket, url, token, auth, {
        frame: (frame) => {
          if (this.#connection === connection) this.#onFrame(connection, frame)
        },
        error: (error) => {
          if (this.#connection === connection) this.#report(error)
        },
        close: (code, reason) => {
          if (this.#connection === connection) this.#onClose(code, reason)
        },
      })
    } catch (cause) {
      this.#attemptFailure = new SdkError('SDK_ERR_HANDSHAKE', 'the WebSocket constructor threw', { cause })
      this.#onClose(1006, '')
      return
    }
    this.#connection = connection
    this.#helloTimer = clock.setTimeout(() => {
      this.#helloTimer = undefined
      if (this.#connection !== connection || this.#state !== 'connecting') return
      this.#report(new SdkError('SDK_ERR_HANDSHAKE', `no hello from the hub within ${helloTimeoutMs} ms`))
      connection.close(CloseCode.protocolError)
    }, helloTimeoutMs)
  }

  // The one switch on the hub's frame types (docs/protocol.md).
  #onFrame(connection: Connection, frame: HubFrame): void {
    // after close(), what is still in flight no longer matters
    if (this.#state === 'closing') return
    switch (frame.t) {
      case 'hello':
        this.#onHello(connection, frame)
        break
      case 'ack':
        if (this.#expectSession(connection, frame.t)) this.#telemetry.ack(frame.s)
        break
      case 'nak':
        // a nak rejects the readings of its frame; one for a frame the client did not send is news
        if (this.#expectSession(connection, frame.t) && !this.#telemetry.nak(frame.s, frame.e)) {
          this.emit('error', new SdkError('SDK_ERR_NAK', `the hub refused frame ${frame.s}, which is not in flight: ${frame.e}`, { cause: frame, reason: frame.e }))
        }
        break
      case 'cmd':
        if (!this.#expectSession(connection, frame.t)) break
        this.emit('command', frame)
        this.#commands.dispatch(frame)
        break
      case 'err':
        this.#onHubError(frame)
        break
      case 'twd':
        if (this.#expectSession(connection, frame.t)) this.#deliverDesired(frame)
        break
      case 'twa':
        if (this.#expectSession(connection, frame.t) && !this.#reports.acked(frame)) {
          this.emit('error', new SdkError('SDK_ERR_PROTOCOL', `the hub answered twin report ${frame.id}, which is not on the wire`, { cause: frame }))
        }
        break
    }
  }

  #onHello(connection: Connection, hello: HelloFrame): void {
    if (this.#state !== 'connecting') {
      this.#protocolError(connection, 'the hub sent a second hello')
      return
    }
    if (hello.dev !== this.#options.deviceId) {
      this.#protocolError(connection, `the hub said hello to device ${hello.dev}`)
      return
    }
    this.#clearHelloTimer()
    this.#state = 'open'
    this.#hello = hello
    this.#connectedAt = this.#options.clock.now()
    this.#hubOffsetMs = hello.now - this.#connectedAt
    const waiters = this.#waiters
    this.#waiters = []
    // docs/protocol.md: unacked frames go again first, with their seq and ts; waiting twin reports share their pace
    this.#telemetry.open(hello.lim)
    this.#reports.open(hello.lim, this.#telemetry.pace)
    this.#commands.resend()
    this.emit('connected', hello)
    for (const waiter of waiters) waiter.resolve(hello)
  }

  #onHubError(frame: ErrorFrame): void {
    this.#report(new SdkError('SDK_ERR_HUB', `the hub reports ${frame.e}: ${frame.msg}`, { cause: frame }))
  }

  // docs/protocol.md: hello is the first frame of every session.
  #expectSession(connection: Connection, t: string): boolean {
    if (this.#state === 'open') return true
    this.#protocolError(connection, `the hub sent ${t} before hello`)
    return false
  }

  #protocolError(connection: Connection, message: string): void {
    this.#report(new SdkError('SDK_ERR_PROTOCOL', message))
    connection.close(CloseCode.protocolError)
  }

  // During a session an error is news now; during an attempt it explains the failure, reported once when the attempt ends.
  #report(error: SdkError): void {
    if (this.#state === 'open') this.emit('error', error)
    else if (this.#state === 'connecting') this.#attemptFailure ??= error
  }

  #onClose(code: number, reason: string): void {
    this.#connection = undefined
    this.#clearHelloTimer()
    const hello = this.#hello
    this.#hello = undefined
    const failure = this.#attemptFailure
    this.#attemptFailure = undefined
    const closing = this.#state === 'closing'
    if (!closing) this.#state = 'idle'

    if (hello !== undefined) {
      this.#telemetry.lost()
      this.#reports.lost()
      if (code === CloseCode.revoked) {
        this.emit('error', new SdkError('SDK_ERR_UNAUTHORIZED', 'the hub ended the session (4003): device disabled, deleted or its key rotated'))
      } else if (code === CloseCode.replaced) {
        this.emit('error', new SdkError('SDK_ERR_REPLACED', 'a newer session of this device replaced this one (4001); not reconnecting'))
      }
      if (this.#options.clock.now() - this.#connectedAt >= this.#options.stableAfterMs) this.#backoff.reset()
      this.emit('disconnected', { code, reason })
    } else if (!closing) {
      const error =
        failure ?? new SdkError('SDK_ERR_HANDSHAKE', `the connection closed before hello (${code}${reason === '' ? '' : `: ${reason}`})`)
      this.emit('error', error)
      if (!this.#options.reconnect) {
        this.#rejectWaiters(error.code === 'SDK_ERR_HANDSHAKE' ? error : new SdkError('SDK_ERR_HANDSHAKE', error.message, { cause: error }))
      }
    }

    // a listener may have called close() or connect() meanwhile
    if (this.#state === 'closing') {
      this.#finishClose()
      return
    }
    if (this.#state !== 'idle') return
    if (!this.#options.reconnect || (hello !== undefined && code === CloseCode.replaced)) return
    this.#scheduleRetry()
  }

  #scheduleRetry(): void {
    const attempt = this.#backoff.attempt + 1
    const delayMs = this.#backoff.next()
    this.#state = 'waiting'
    const generation = this.#generation
    this.#retryTimer = this.#options.clock.setTimeout(() => {
      this.#retryTimer = undefined
      if (this.#state === 'waiting' && this.#generation === generation) void this.#attempt()
    }, delayMs)
    this.emit('reconnecting', { attempt, delayMs })
  }

  // A failure retrying cannot fix: reject connect(), report, and stop.
  #giveUp(error: SdkError): void {
    this.#state = 'idle'
    this.emit('error', error)
    this.#rejectWaiters(error)
  }

  #resolveWebSocket(): Promise<{ WebSocket: WebSocketConstructor; auth: AuthMode }> {
    this.#webSocket ??= (async () => {
      const WebSocket = this.#options.WebSocket ?? (await defaultWebSocket())
      return { WebSocket, auth: this.#options.auth ?? (acceptsHeaders(WebSocket) ? 'header' : 'query') }
    })()
    // not cached when it failed, so connect() after installing ws works
    this.#webSocket.catch(() => {
      this.#webSocket = undefined
    })
    return this.#webSocket
  }

  #rejectWaiters(error: SdkError): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const waiter of waiters) waiter.reject(error)
  }

  #clearTimers(): void {
    this.#clearHelloTimer()
    if (this.#retryTimer !== undefined) this.#options.clock.clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
  }

  #clearHelloTimer(): void {
    if (this.#helloTimer !== undefined) this.#options.clock.clearTimeout(this.#helloTimer)
    this.#helloTimer = undefined
  }

  #finishClose(): void {
    this.#state = 'closed'
    const waiters = this.#closeWaiters
    this.#closeWaiters = []
    for (const resolve of waiters) resolve()
  }
}
