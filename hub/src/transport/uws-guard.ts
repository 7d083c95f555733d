import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js'
import type { UncaughtWhere } from '../observability/index.js'

/** Takes every error a guard caught, to log it with its stack and count it. */
export type UncaughtSink = (where: UncaughtWhere, err: unknown, detail: Readonly<Record<string, unknown>>) => void

/** RFC 6455 §7.4.1: 1011, the server met an unexpected condition. */
const CLOSE_INTERNAL = 1011

/**
 * The answer to a request whose handler threw. A constant, so that writing it cannot fail the way
 * the handler's own answer did (a value JSON cannot hold, say); the shape is docs/rest.md's.
 */
const INTERNAL = { status: '500 Internal Server Error', body: '{"error":"internal","message":"internal error; see the hub log"}' }

/** The WebSocket callbacks the guard wraps (the upgrade is an HTTP request and has an {@link Exchange}). */
type SocketCallback = 'open' | 'message' | 'drain' | 'ping' | 'pong' | 'close' | 'subscription'

/** A body with its content type. */
export interface ReplyBody {
  readonly contentType: string
  /** Text (written as UTF-8) or bytes. */
  readonly text: string | Uint8Array
}

/** How an answer is written beyond its status and body. */
export interface ReplyOptions {
  /** Headers besides `content-type` (which comes from the body); default none. */
  readonly headers?: Readonly<Record<string, string>>
  /** End the connection after the answer (a refused body is not read); default false. */
  readonly closeConnection?: boolean
}

/**
 * A response streamed for as long as the client stays (Server-Sent Events): chunks written as they
 * come, never awaited. uWS buffers whatever the socket does not take at once, without bound, so
 * the caller watches `write`'s answer and ends a stream whose client stopped reading.
 */
export class ResponseStream {
  readonly #res: HttpResponse
  readonly #report: (err: unknown) => void
  readonly #closed: Array<() => void> = []
  #open = true

  constructor(res: HttpResponse, report: (err: unknown) => void) {
    this.#res = res
    this.#report = report
  }

  /** Whether the stream still writes: not ended, and the client has not gone. */
  get open(): boolean {
    return this.#open
  }

  /** Calls `fn` once when the stream ends, whoever ends it. */
  onClose(fn: () => void): void {
    if (this.#open) this.#closed.push(fn)
    else fn()
  }

  /**
   * Writes a chunk (corked: a late write). True when the socket took it all; false when some of it
   * waits in uWS's buffer, or the stream is closed and nothing was written.
   */
  write(chunk: string): boolean {
    if (!this.#open) return false
    let sent = false
    try {
      this.#res.cork(() => {
        sent = this.#res.write(chunk)
      })
    } catch (err) {
      this.#report(err)
      this.#finish()
    }
    return sent
  }

  /** Ends the response cleanly: the last chunk (uWS's `closeConnection` would write a header after the body). */
  end(): void {
    if (!this.#open) return
    try {
      this.#res.cork(() => this.#res.end())
    } catch (err) {
      this.#report(err)
    }
    this.#finish()
  }

  /** Drops the connection at once, without the last chunk: for a client that stopped reading. */
  cut(): void {
    if (!this.#open) return
    try {
      this.#res.close()
    } catch (err) {
      this.#report(err)
    }
    this.#finish()
  }

  /** The client went away (uWS's onAborted). */
  aborted(): void {
    this.#finish()
  }

  #finish(): void {
    if (!this.#open) return
    this.#open = false
    for (const fn of this.#closed.splice(0)) fn()
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

/**
 * One HTTP request and its answer, with the rules of uWS's type file kept in one place: an
 * answer written at most once, never after the client left, corked, and streamed with back-pressure
 * (uWS then stops serving a client that pipelines requests and never reads their answers, and
 * drops it, where whole writes would have buffered its answers without bound). A throw in anything run through it is reported and
 * answered 500 `internal` when nothing was written yet.
 */
export class Exchange {
  /** The client's address as text (IPv4 dotted, IPv6 hex), copied when the request arrived. */
  readonly address: string
  readonly #res: HttpResponse
  readonly #report: (err: unknown) => void
  #aborted = false
  #answered = false
  #waiting = false
  #streamed: ResponseStream | undefined

  constructor(res: HttpResponse, address: string, report: (err: unknown) => void) {
    this.#res = res
    this.address = address
    this.#report = report
  }

  /** Whether an answer may still be written: none was, and the client has not gone. */
  get open(): boolean {
    return !this.#aborted && !this.#answered
  }

  /**
   * Declares that the answer comes after the request callback returns. uWS ends the process when a
   * callback returns without answering or attaching `onAborted`; this attaches it (once).
   * Call it inside the request callback.
   */
  wait(): void {
    if (this.#waiting) return
    this.#waiting = true
    this.#res.onAborted(() => {
      this.#aborted = true
      this.#streamed?.aborted()
    })
  }

  /** Whether the callback may return unanswered (see {@link wait}). */
  get waiting(): boolean {
    return this.#waiting
  }

  /**
   * Writes the answer: a status line (`"404 Not Found"`), headers and a body, or none. False when
   * an answer was written already or the client has gone; nothing is written then.
   */
  reply(status: string, body: ReplyBody | undefined, options: ReplyOptions = {}): boolean {
    const { headers = {}, closeConnection = false } = options
    return this.#respond((res) => {
      res.writeStatus(status)
      for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value)
      if (body === undefined) {
        res.endWithoutBody(0, closeConnection)
        return
      }
      res.writeHeader('content-type', body.contentType)
      if (closeConnection) res.end(body.text, true)
      else this.#stream(res, typeof body.text === 'string' ? Buffer.from(body.text) : body.text)
    })
  }

  /**
   * Answers `200 OK` with `headers` and keeps the response open for `ResponseStream` writes; the
   * first chunk goes out with the headers. Undefined when answered already or the client has gone.
   */
  stream(headers: Readonly<Record<string, string>>, first: string): ResponseStream | undefined {
    this.wait()
    const stream = new ResponseStream(this.#res, this.#report)
    const opened = this.#respond((res) => {
      res.writeStatus('200 OK')
      for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value)
      res.write(first)
    })
    if (!opened) return undefined
    this.#streamed = stream
    return stream
  }

  /** Upgrades to a WebSocket (see uWS `HttpResponse.upgrade`); false when answered already or the client has gone. */
  upgrade<UserData>(userData: UserData, key: string, protocol: string, extensions: string, context: us_socket_context_t): boolean {
    return this.#respond((res) => res.upgrade(userData, key, protocol, extensions, context))
  }

  /** Reads the body: `handler` gets each chunk until an answer is written; a throw in it is answered 500. */
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): void {
    this.wait()
    this.#res.onData((chunk, isLast) => {
      if (this.open) this.run(() => handler(chunk, isLast))
    })
  }

  /** Runs `fn`; a throw is reported and answered 500 `internal` when nothing was written yet. */
  run(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.fail(err)
    }
  }

  /**
   * Takes a value or a promise of one and hands it to `then`, guarded, at once or when it settles;
   * a rejection is reported and answered 500. Call it inside the request callback.
   */
  finish<T>(pending: T | PromiseLike<T>, then: (value: T) => void): void {
    if (!isThenable(pending)) {
      this.run(() => then(pending))
      return
    }
    this.wait()
    pending.then(
      (value) => this.run(() => then(value)),
      (err: unknown) => this.fail(err),
    )
  }

  /** Reports `err` and answers 500 `internal` unless an answer was written or the client has gone. */
  fail(err: unknown): void {
    this.#report(err)
    this.reply(INTERNAL.status, { contentType: 'application/json', text: INTERNAL.body })
  }

  #respond(write: (res: HttpResponse) => void): boolean {
    if (!this.open) return false
    this.#answered = true
    try {
      // STYLE (uWebSockets.js): a late write goes inside cork; inside the request callback cork is a no-op.
      this.#res.cork(() => write(this.#res))
    } catch (err) {
      this.#report(err)
      // Part of an answer may be out: the only honest end left is to drop the connection.
      try {
        this.#res.close()
      } catch {
        // uWS throws on a response it has discarded already: then the connection is gone anyway.
      }
    }
    return true
  }

  #stream(res: HttpResponse, body: Uint8Array): void {
    if (res.tryEnd(body, body.byteLength)[1]) return
    // The client reads slower than the hub writes: the rest follows as its socket drains. uWS ends
    // a client that stops reading after its own idle timeout, and then onAborted runs.
    this.wait()
    res.onWritable((offset) => {
      try {
        return res.tryEnd(body.subarray(offset), body.byteLength)[0]
      } catch (err) {
        // A uWS callback like the others: reported, never thrown back into uWS. Part of the answer
        // is out, so nothing more can be written; uWS's timeout ends the connection.
        this.#report(err)
        return true
      }
    })
  }
}

/** An HTTP handler behind the guard: a throw or a rejection is answered 500 and reported. */
export type GuardedHandler = (exchange: Exchange, req: HttpRequest) => void | Promise<void>

/** uWS's WebSocket behaviour with the upgrade taking an {@link Exchange}. */
export type GuardedBehavior<UserData> = Omit<WebSocketBehavior<UserData>, 'upgrade'> & {
  upgrade?: (exchange: Exchange, req: HttpRequest, context: us_socket_context_t) => void | Promise<void>
}

/** HTTP methods a route may take (uWS's names). */
export type HttpMethod = 'get' | 'post' | 'patch' | 'del' | 'any'

/**
 * The one door to a uWS app: every HTTP route and WebSocket callback registered through it runs
 * guarded, so that no exception in a uWS callback, or in a promise it started, ends the process
 * (ARCHITECTURE: "no exception thrown in a callback ends the process"). uWS hands a callback's
 * throw to Node as an uncaught exception, and a request callback that returns unanswered without
 * `onAborted` makes uWS terminate the process outright; both would drop every device session.
 * A throw is reported to the sink (log with stack, counter) and answered: 500 `internal` on HTTP
 * when nothing was written yet, close 1011 on that one WebSocket.
 */
export class GuardedApp {
  readonly #app: TemplatedApp
  readonly #sink: UncaughtSink

  constructor(app: TemplatedApp, sink: UncaughtSink) {
    this.#app = app
    this.#sink = sink
  }

  /** Registers `handler` for `method pattern` (uWS pattern syntax). */
  http(method: HttpMethod, pattern: string, handler: GuardedHandler): void {
    this.#app[method](pattern, (res, req) => this.#serve('http', res, req, handler))
  }

  /** Registers a WebSocket route; each callback given runs guarded. */
  ws<UserData>(pattern: string, behavior: GuardedBehavior<UserData>): void {
    const { upgrade, open, message, drain, ping, pong, close, subscription, ...settings } = behavior
    this.#app.ws<UserData>(pattern, {
      ...settings,
      ...(upgrade && {
        upgrade: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) =>
          this.#serve('upgrade', res, req, (exchange) => upgrade(exchange, req, context)),
      }),
      ...(open && { open: this.#socket('open', open) }),
      ...(message && { message: this.#socket('message', message) }),
      ...(drain && { drain: this.#socket('drain', drain) }),
      ...(ping && { ping: this.#socket('ping', ping) }),
      ...(pong && { pong: this.#socket('pong', pong) }),
      ...(close && { close: this.#socket('close', close) }),
      ...(subscription && { subscription: this.#socket('subscription', subscription) }),
    })
  }

  #report(where: UncaughtWhere, err: unknown, detail: Readonly<Record<string, unknown>>): void {
    try {
      this.#sink(where, err, detail)
    } catch {
      // The sink is the last word (a log line and a counter); when even it fails, nothing is left to tell.
    }
  }

  #serve(where: 'http' | 'upgrade', res: HttpResponse, req: HttpRequest, handler: GuardedHandler): void {
    // Copied now for a report made after `req` is gone. uWS's getUrl has no query string, so no
    // `?token=` reaches the log.
    const method = req.getMethod().toUpperCase()
    const url = req.getUrl()
    const address = Buffer.from(res.getRemoteAddressAsText()).toString()
    const exchange = new Exchange(res, address, (err) => this.#report(where, err, { method, url, address }))
    exchange.run(() => {
      const returned = handler(exchange, req)
      if (isThenable(returned)) {
        exchange.wait()
        returned.then(undefined, (err: unknown) => exchange.fail(err))
      }
    })
    if (exchange.open && !exchange.waiting) exchange.fail(new Error(`${method} ${url}: the handler returned without answering`))
  }

  #socket<UserData, A extends unknown[]>(
    name: SocketCallback,
    fn: (ws: WebSocket<UserData>, ...args: A) => void | Promise<void>,
  ): (ws: WebSocket<UserData>, ...args: A) => void {
    const failed = (ws: WebSocket<UserData>, err: unknown): void => {
      this.#report('ws', err, { callback: name })
      // In `close` the socket is gone already; elsewhere this one session ends, and no other.
      if (name === 'close') return
      try {
        ws.end(CLOSE_INTERNAL, 'internal error')
      } catch {
        // uWS throws on a socket that closed meanwhile (a late rejection): nothing is left to end.
      }
    }
    return (ws, ...args) => {
      try {
        const returned = fn(ws, ...args)
        if (isThenable(returned)) returned.then(undefined, (err: unknown) => failed(ws, err))
      } catch (err) {
        failed(ws, err)
      }
    }
  }
}
