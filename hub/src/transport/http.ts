import type { HttpRequest } from 'uWebSockets.js'
import { scopeAllows, type FailureLimiter, type Operator, type OperatorAuthenticator, type Scope } from '../auth/index.js'
import { hasCode } from '../errors.js'
import type { Exchange, GuardedApp, ResponseStream } from './uws-guard.js'

/** docs/rest.md: a body over 1 MiB is answered 413. */
export const MAX_BODY_BYTES = 1024 * 1024
/**
 * Deepest nesting of arrays and objects in a JSON body: 64 levels. JSON.parse takes any depth,
 * but what then walks the value recursively (JSON.stringify, the store's and the wire's encoders)
 * overflows the stack near a few thousand; deeper bodies are answered 400 `invalid` before parsing.
 */
const MAX_BODY_DEPTH = 64
/** Longest piece of a request (its path) echoed back in an error message: 256 characters. */
const MAX_ECHO_CHARS = 256

/**
 * Every error code of a REST answer (`{"error": code, "message": text}`); `internal` is written by
 * the guard alone (uws-guard.ts), never by a handler. The OpenAPI document and docs/errors.md list
 * the same codes (tests hold them to it).
 */
export const API_ERROR_CODES = [
  'unauthorized',
  'forbidden',
  'not_found',
  'invalid',
  'malformed_json',
  'payload_too_large',
  'exists',
  'device_offline',
  'queue_full',
  /** docs/twins.md: `ifVersion` is not the current desired version. */
  'version_conflict',
  /** docs/twins.md: a twin document would pass 32 KiB (a body over 1 MiB is `payload_too_large`). */
  'too_large',
  'too_many_requests',
  'not_ready',
  'internal',
] as const

/** One of API_ERROR_CODES. */
export type ApiErrorCode = (typeof API_ERROR_CODES)[number]

/** A REST answer: status, JSON body (or text with its content type), extra headers. */
export interface Reply {
  readonly status: number
  readonly body?: unknown
  readonly text?: { readonly contentType: string; readonly body: string }
}

/** What a handler sees of the request, copied out of uWS's stack-allocated `req`. */
export interface RequestContext {
  readonly params: readonly string[]
  readonly query: URLSearchParams
  readonly operator: Operator | undefined
  readonly body: unknown
}

/** A registered route, as `Router.routes` lists it. */
export interface RouteInfo {
  /** The HTTP method, upper case (`GET`, `POST`, `PATCH`, `DELETE`). */
  readonly method: string
  /** The uWS pattern (`/api/v1/devices/:id`). */
  readonly pattern: string
  /** The scope its token needs, or undefined when it takes none. */
  readonly scope: Scope | undefined
}

/** A route's needs: a token scope (none for health probes) and whether it reads a JSON body. */
export interface RouteOptions {
  readonly scope: Scope | undefined
  readonly body: 'none' | 'required' | 'optional'
}

/** A route handler; a thrown error or a rejection is logged, counted and answered 500 (uws-guard.ts). */
export type Handler = (ctx: RequestContext) => Reply | Promise<Reply>

/** Opens a streamed `200 OK` with `headers`, `first` its first chunk; undefined when the client has gone. */
export type OpenStream = (headers: Readonly<Record<string, string>>, first: string) => ResponseStream | undefined

/** A streaming route's handler: it answers a Reply (an error, say), or opens the stream and answers undefined. */
export type StreamHandler = (ctx: RequestContext, open: OpenStream) => Reply | undefined

/** An error answer in the contract's shape. */
export function apiError(status: number, error: ApiErrorCode, message: string): Reply {
  return { status, body: { error, message } }
}

/** 400 `invalid`: a request that breaks a rule; the message names the field and the rule. */
export const invalid = (message: string): Reply => apiError(400, 'invalid', message)

/** 404 `not_found` for a device id the registry does not hold. */
export const deviceNotFound = (id: string): Reply => apiError(404, 'not_found', `no device "${id}"`)

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  202: '202 Accepted',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
}

/**
 * Writes a reply through its exchange (at most once). The body is serialized before anything is
 * written, so a value JSON cannot hold throws with nothing written, and the guard answers 500.
 */
function writeReply(exchange: Exchange, reply: Reply, closeConnection = false): void {
  const status = STATUS_TEXT[reply.status] ?? String(reply.status)
  const body =
    reply.status === 204
      ? undefined
      : reply.text !== undefined
        ? { contentType: reply.text.contentType, text: reply.text.body }
        : { contentType: 'application/json', text: JSON.stringify(reply.body ?? {}) }
  exchange.reply(status, body, { closeConnection })
}

/** Request text echoed in a message, cut to {@link MAX_ECHO_CHARS}. */
const echo = (text: string): string => (text.length <= MAX_ECHO_CHARS ? text : `${text.slice(0, MAX_ECHO_CHARS)}...`)

/** Path parameters, percent-decoded; undefined when one holds a malformed escape (`%E0%A4%A`, `%`). */
function decodeParams(raw: readonly string[]): string[] | undefined {
  try {
    return raw.map((param) => decodeURIComponent(param))
  } catch (err) {
    if (err instanceof URIError) return undefined
    throw err
  }
}

/** Whether JSON text nests arrays and objects deeper than `max` levels; strings are skipped. */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // a backslash escapes the next character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerToken(header: string): string | undefined {
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header)
  return match?.[1]
}

/**
 * Registers REST routes on a guarded uWS app with auth, a per-address throttle on failed tokens,
 * body limits and JSON parsing. Every answer goes through the request's {@link Exchange}: written
 * once, never after the client left, and a throw anywhere is answered 500.
 */
export class Router {
  readonly #app: GuardedApp
  readonly #operators: OperatorAuthenticator
  readonly #failures: FailureLimiter
  readonly #writable: () => boolean
  /** Methods registered per pattern, to answer a wrong method with a specific 404. */
  readonly #methods = new Map<string, string[]>()
  readonly #routes: RouteInfo[] = []

  /**
   * `failures` counts failed operator tokens per address (its own instance: device failures are
   * apart). While `writable` says no (a storage engine does not answer), a call that changes
   * something (POST, PATCH, DELETE) is answered 503 `not_ready` before its handler runs; default: always writable.
   */
  constructor(app: GuardedApp, operators: OperatorAuthenticator, failures: FailureLimiter, writable: () => boolean = () => true) {
    this.#app = app
    this.#operators = operators
    this.#failures = failures
    this.#writable = writable
  }

  /** Adds `method pattern` (uWS pattern syntax, e.g. `/api/v1/devices/:id`). */
  route(method: 'get' | 'post' | 'patch' | 'del', pattern: string, options: RouteOptions, handler: Handler): void {
    this.#add(method, pattern, options, this.#storeAware(handler, method !== 'get'))
  }

  /** Adds a GET route whose answer is a stream (Server-Sent Events), with the same auth and throttle as `route`. */
  stream(pattern: string, options: Omit<RouteOptions, 'body'>, handler: StreamHandler): void {
    this.#add('get', pattern, { ...options, body: 'none' }, (ctx, exchange) => handler(ctx, (headers, first) => exchange.stream(headers, first)))
  }

  /** Every route registered, in registration order (the OpenAPI document is held to this list). */
  routes(): readonly RouteInfo[] {
    return [...this.#routes]
  }

  /** Answers every other request 404; call after the last `route`. */
  fallback(): void {
    for (const [pattern, methods] of this.#methods) {
      this.#app.http('any', pattern, (exchange, req) => {
        const message = `${req.getMethod().toUpperCase()} is not a route of ${echo(req.getUrl())}; it takes ${methods.join(', ')}`
        writeReply(exchange, apiError(404, 'not_found', message))
      })
    }
    this.#app.http('any', '/*', (exchange, req) => {
      writeReply(exchange, apiError(404, 'not_found', `no route ${req.getMethod().toUpperCase()} ${echo(req.getUrl())}`))
    })
  }

  #add(
    method: 'get' | 'post' | 'patch' | 'del',
    pattern: string,
    options: RouteOptions,
    handler: (ctx: RequestContext, exchange: Exchange) => Reply | undefined | Promise<Reply>,
  ): void {
    const name = method === 'del' ? 'DELETE' : method.toUpperCase()
    this.#methods.set(pattern, [...(this.#methods.get(pattern) ?? []), name])
    this.#routes.push({ method: name, pattern, scope: options.scope })
    const paramCount = (pattern.match(/\/:/g) ?? []).length
    this.#app.http(method, pattern, (exchange, req) => this.#serve(exchange, req, paramCount, options, (ctx) => handler(ctx, exchange)))
  }

  /**
   * A handler answered 503 `not_ready` when the shared store became unreachable under it, and, for
   * one that changes something (`writes`), refused so at once while the stores cannot take writes:
   * a client may retry both.
   */
  #storeAware(handler: Handler, writes: boolean): Handler {
    const unavailable = apiError(503, 'not_ready', "the hub's storage does not answer now (PostgreSQL, in cluster mode); retry shortly")
    return async (ctx) => {
      if (writes && !this.#writable()) return unavailable
      try {
        return await handler(ctx)
      } catch (err) {
        if (hasCode(err, 'HUB_ERR_STORE_UNAVAILABLE')) return unavailable
        throw err
      }
    }
  }

  #serve(exchange: Exchange, req: HttpRequest, paramCount: number, options: RouteOptions, handler: (ctx: RequestContext) => Reply | undefined | Promise<Reply>): void {
    // uWS: `req` dies with this callback, so everything needed later is copied now.
    const rawParams: string[] = []
    for (let i = 0; i < paramCount; i++) rawParams.push(req.getParameter(i))
    const query = new URLSearchParams(req.getQuery())
    const authorization = req.getHeader('authorization')
    const contentLength = req.getHeader('content-length')

    let operator: Operator | undefined
    if (options.scope !== undefined) {
      // Judged before the token, so that an address that is blocked learns nothing, not even from a valid token.
      if (this.#failures.blocked(exchange.address)) {
        writeReply(exchange, apiError(429, 'too_many_requests', 'too many failed authentications from this address; retry later'))
        return
      }
      const token = bearerToken(authorization)
      operator = token === undefined ? undefined : this.#operators.authenticate(token)
      if (operator === undefined) {
        this.#failures.fail(exchange.address)
        writeReply(exchange, apiError(401, 'unauthorized', 'a valid operator token is required (Authorization: Bearer <token>)'))
        return
      }
      if (!scopeAllows(operator.scope, options.scope)) {
        writeReply(exchange, apiError(403, 'forbidden', `this call needs the ${options.scope} scope; the token has ${operator.scope}`))
        return
      }
    }
    // Decoded after the token check: without a token every path of a route answers the same 401.
    const params = decodeParams(rawParams)
    if (params === undefined) {
      writeReply(exchange, invalid('path: a malformed percent-escape (RFC 3986 §2.1)'))
      return
    }

    // A streaming handler that opened its stream answers undefined: the stream is the answer.
    const run = (body: unknown): void =>
      exchange.finish(handler({ params, query, operator, body }), (reply) => {
        if (reply !== undefined) writeReply(exchange, reply)
      })
    if (options.body === 'none') {
      run(undefined)
      return
    }
    const tooLarge = apiError(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`)
    if (contentLength !== '' && Number(contentLength) > MAX_BODY_BYTES) {
      // Closing the connection spares reading a body we refuse.
      writeReply(exchange, tooLarge, true)
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    exchange.onData((chunk, isLast) => {
      size += chunk.byteLength
      if (size > MAX_BODY_BYTES) {
        writeReply(exchange, tooLarge, true)
        return
      }
      // uWS neuters the chunk when this callback returns: copy it.
      chunks.push(Buffer.from(chunk.slice(0)))
      if (!isLast) return
      const text = Buffer.concat(chunks).toString('utf8')
      if (nestsDeeperThan(text, MAX_BODY_DEPTH)) {
        writeReply(exchange, invalid(`body: arrays and objects nest at most ${MAX_BODY_DEPTH} levels deep`))
        return
      }
      let body: unknown
      try {
        body = text === '' ? undefined : JSON.parse(text)
      } catch (err) {
        writeReply(exchange, apiError(400, 'malformed_json', `the body is not valid JSON: ${(err as Error).message}`))
        return
      }
      if (body === undefined && options.body === 'required') {
        writeReply(exchange, apiError(400, 'malformed_json', 'a JSON body is required'))
        return
      }
      run(body)
    })
  }
}
