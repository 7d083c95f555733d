import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import { scopeAllows, type Operator, type OperatorAuthenticator, type Scope } from '../auth/index.js'
import type { Logger } from '../logger.js'

/** CONTRACT §4: a body over 1 MiB is answered 413. */
export const MAX_BODY_BYTES = 1024 * 1024

/** Stable error codes of REST answers (`{"error": code, "message": text}`). */
export type ApiErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'invalid'
  | 'malformed_json'
  | 'payload_too_large'
  | 'exists'
  | 'device_offline'
  | 'queue_full'
  | 'not_ready'
  | 'internal'

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

/** A route's needs: a token scope (none for health probes) and whether it reads a JSON body. */
export interface RouteOptions {
  readonly scope: Scope | undefined
  readonly body: 'none' | 'required' | 'optional'
}

/** A route handler; a thrown error is logged and answered 500. */
export type Handler = (ctx: RequestContext) => Reply | Promise<Reply>

/** An error answer in the contract's shape. */
export function apiError(status: number, error: ApiErrorCode, message: string): Reply {
  return { status, body: { error, message } }
}

/** 400 `invalid`: a request that breaks a rule; the message names the field and the rule. */
export const invalid = (message: string): Reply => apiError(400, 'invalid', message)

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
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
}

/** Writes a reply; call inside `cork` when not in the request callback's own tick. */
export function writeReply(res: HttpResponse, reply: Reply, closeConnection = false): void {
  res.writeStatus(STATUS_TEXT[reply.status] ?? String(reply.status))
  if (reply.status === 204) {
    res.endWithoutBody(0, closeConnection)
    return
  }
  if (reply.text !== undefined) {
    res.writeHeader('content-type', reply.text.contentType).end(reply.text.body, closeConnection)
    return
  }
  res.writeHeader('content-type', 'application/json').end(JSON.stringify(reply.body ?? {}), closeConnection)
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerToken(header: string): string | undefined {
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header)
  return match?.[1]
}

/** Registers REST routes on a uWS app with auth, body limits, JSON parsing and late-write safety. */
export class Router {
  readonly #app: TemplatedApp
  readonly #operators: OperatorAuthenticator
  readonly #log: Logger
  /** Methods registered per pattern, to answer a wrong method with a specific 404. */
  readonly #methods = new Map<string, string[]>()

  constructor(app: TemplatedApp, operators: OperatorAuthenticator, log: Logger) {
    this.#app = app
    this.#operators = operators
    this.#log = log
  }

  /** Adds `method pattern` (uWS pattern syntax, e.g. `/api/v1/devices/:id`). */
  route(method: 'get' | 'post' | 'patch' | 'del', pattern: string, options: RouteOptions, handler: Handler): void {
    const name = method === 'del' ? 'DELETE' : method.toUpperCase()
    this.#methods.set(pattern, [...(this.#methods.get(pattern) ?? []), name])
    const paramCount = (pattern.match(/\/:/g) ?? []).length
    this.#app[method](pattern, (res, req) => this.#serve(res, req, paramCount, options, handler))
  }

  /** Answers every other request 404; call after the last `route`. */
  fallback(): void {
    for (const [pattern, methods] of this.#methods) {
      this.#app.any(pattern, (res, req) => {
        const message = `${req.getMethod().toUpperCase()} is not a route of ${req.getUrl()}; it takes ${methods.join(', ')}`
        writeReply(res, apiError(404, 'not_found', message))
      })
    }
    this.#app.any('/*', (res, req) => {
      writeReply(res, apiError(404, 'not_found', `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}`))
    })
  }

  #serve(res: HttpResponse, req: HttpRequest, paramCount: number, options: RouteOptions, handler: Handler): void {
    // uWS: `req` dies with this callback, so everything needed later is copied now.
    const params: string[] = []
    for (let i = 0; i < paramCount; i++) params.push(decodeURIComponent(req.getParameter(i)))
    const query = new URLSearchParams(req.getQuery())
    const authorization = req.getHeader('authorization')
    const contentLength = req.getHeader('content-length')
    const where = `${req.getMethod().toUpperCase()} ${req.getUrl()}`

    let operator: Operator | undefined
    if (options.scope !== undefined) {
      const token = bearerToken(authorization)
      operator = token === undefined ? undefined : this.#operators.authenticate(token)
      if (operator === undefined) {
        writeReply(res, apiError(401, 'unauthorized', 'a valid operator token is required (Authorization: Bearer <token>)'))
        return
      }
      if (!scopeAllows(operator.scope, options.scope)) {
        writeReply(res, apiError(403, 'forbidden', `this call needs the ${options.scope} scope; the token has ${operator.scope}`))
        return
      }
    }

    let aborted = false
    res.onAborted(() => {
      aborted = true
    })
    const answer = (reply: Reply, closeConnection = false): void => {
      if (aborted) return
      res.cork(() => writeReply(res, reply, closeConnection))
    }
    const run = (body: unknown): void => {
      let pending: Reply | Promise<Reply>
      try {
        pending = handler({ params, query, operator, body })
      } catch (err) {
        pending = Promise.reject(err)
      }
      Promise.resolve(pending).then(answer, (err: unknown) => {
        this.#log.error({ err, route: where }, 'request failed')
        answer(apiError(500, 'internal', 'internal error; see the hub log'))
      })
    }

    if (options.body === 'none') {
      run(undefined)
      return
    }
    const tooLarge = apiError(413, 'payload_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`)
    if (contentLength !== '' && Number(contentLength) > MAX_BODY_BYTES) {
      // Closing the connection spares reading a body we refuse.
      answer(tooLarge, true)
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    let refused = false
    res.onData((chunk, isLast) => {
      if (refused) return
      size += chunk.byteLength
      if (size > MAX_BODY_BYTES) {
        refused = true
        answer(tooLarge, true)
        return
      }
      // uWS neuters the chunk when this callback returns: copy it.
      chunks.push(Buffer.from(chunk.slice(0)))
      if (!isLast) return
      const text = Buffer.concat(chunks).toString('utf8')
      let body: unknown
      try {
        body = text === '' ? undefined : JSON.parse(text)
      } catch (err) {
        answer(apiError(400, 'malformed_json', `the body is not valid JSON: ${(err as Error).message}`))
        return
      }
      if (body === undefined && options.body === 'required') {
        answer(apiError(400, 'malformed_json', 'a JSON body is required'))
        return
      }
      run(body)
    })
  }
}
