import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { InfluxDB } from 'influx'
import type { DeadLetter } from './dead-letter.js'
import { HubError } from '../errors.js'

/** Options of an `InfluxWriter`; validated when it is built, unknown keys refused. */
export interface InfluxWriterOptions {
  /** Base URL of InfluxDB 1.x, `http(s)://[user:pass@]host:port[/path]`; credentials go to Basic auth. */
  readonly url: string
  /** Database to write to; created when missing. */
  readonly database: string
  /** Where points refused for good go (used by `writeOrDeadLetter`). */
  readonly deadLetter: DeadLetter
  /** Deadline of one HTTP request, in ms; default 10,000. */
  readonly timeoutMs?: number
}

/** Default deadline of one request to InfluxDB, in ms. */
export const INFLUX_TIMEOUT_MS = 10_000

/**
 * How one write ended. `retry: true`: nothing about the data is wrong (InfluxDB down, slow,
 * overloaded, unauthorised): back off and send the same batch again. `retry: false`: InfluxDB refused
 * part of the batch for good (`status` 400) or the body was too large (413, nothing written). After a
 * 400 the good points may or may not have landed: influxd 1.6 writes them around an unparsable line
 * or a conflict with an existing field ("partial write"), but drops the whole batch when the conflict
 * is inside the batch that creates the field.
 */
export type WriteResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly retry: true; readonly error: Error }
  | { readonly ok: false; readonly retry: false; readonly status: 400 | 413; readonly reason: string }

/** One series of an InfluxQL answer: column names and rows. */
export interface QuerySeries {
  readonly name: string
  readonly columns: readonly string[]
  readonly values: ReadonlyArray<readonly unknown[]>
}

/** Lines for `writeOrDeadLetter`, with the device each belongs to (a LineBuffer is one). */
export interface LineBatch {
  /** Lines held. */
  readonly lines: number
  /** Lines `from` to `to` (exclusive) joined by newlines: one request body. */
  body(from: number, to: number): string | Uint8Array<ArrayBuffer>
  /** Line `index` as text. */
  line(index: number): string
  /** The device of line `index`. */
  device(index: number): string
}

/** Outcome of `writeOrDeadLetter`: lines landed, lines dead-lettered, HTTP requests spent; or back off and retry. */
export type ShipResult =
  | { readonly written: number; readonly deadLettered: number; readonly requests: number }
  | { readonly retry: true; readonly error: Error }

const OPTION_KEYS = new Set(['url', 'database', 'deadLetter', 'timeoutMs'])

/** A 404 "database not found": retryable, and `write` creates the database first. */
type MissingDatabase = { readonly ok: false; readonly retry: true; readonly error: Error; readonly missingDatabase: true }

/** Writes line protocol batches to one InfluxDB 1.x database over HTTP (`/write`, `precision=ms`). */
export class InfluxWriter {
  /** Base URL without credentials or trailing slash. */
  readonly url: string
  /** The database written to. */
  readonly database: string
  /** The write request without its body (node:http: fetch spent about 1 ms of CPU per write). */
  readonly #writeRequest: RequestOptions
  readonly #request: typeof httpRequest
  /** Keeps the write connections between writes; `close` ends them. */
  readonly #agent: HttpAgent
  readonly #headers: Record<string, string>
  readonly #timeoutMs: number
  readonly #deadLetter: DeadLetter
  readonly #host: { host: string; port: number; protocol: 'http' | 'https'; path: string }
  readonly #username: string | undefined
  readonly #password: string | undefined

  constructor(options: InfluxWriterOptions) {
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new HubError('HUB_ERR_CONFIG', `InfluxWriter: unknown option "${key}"`)
    }
    let parsed: URL
    try {
      parsed = new URL(options.url)
    } catch (err) {
      throw new HubError('HUB_ERR_CONFIG', `InfluxWriter: url is not a URL: ${options.url}`, { cause: err })
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new HubError('HUB_ERR_CONFIG', `InfluxWriter: url must be http:// or https://, got ${parsed.protocol}`)
    }
    if (options.database.length === 0) throw new HubError('HUB_ERR_CONFIG', 'InfluxWriter: database must not be empty')
    const timeoutMs = options.timeoutMs ?? INFLUX_TIMEOUT_MS
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
      throw new HubError('HUB_ERR_CONFIG', `InfluxWriter: timeoutMs must be a positive whole number, got ${String(timeoutMs)}`)
    }
    const protocol = parsed.protocol === 'https:' ? 'https' : 'http'
    this.#username = parsed.username === '' ? undefined : decodeURIComponent(parsed.username)
    this.#password = parsed.password === '' ? undefined : decodeURIComponent(parsed.password)
    const path = parsed.pathname.replace(/\/+$/, '')
    // fetch refuses URLs that carry credentials: they travel as Basic auth, which InfluxDB 1.x accepts.
    this.url = `${protocol}://${parsed.host}${path}`
    this.database = options.database
    this.#headers = { 'content-type': 'text/plain; charset=utf-8' }
    if (this.#username !== undefined) {
      const basic = Buffer.from(`${this.#username}:${this.#password ?? ''}`).toString('base64')
      this.#headers['authorization'] = `Basic ${basic}`
    }
    this.#timeoutMs = timeoutMs
    this.#deadLetter = options.deadLetter
    const port = parsed.port === '' ? (protocol === 'https' ? 443 : 80) : Number(parsed.port)
    this.#host = { host: parsed.hostname.replace(/^\[|\]$/g, ''), port, protocol, path }
    this.#request = protocol === 'https' ? httpsRequest : httpRequest
    // Connections are kept for the next write (the shipper has a few in flight at most).
    this.#agent = protocol === 'https' ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
    this.#writeRequest = {
      method: 'POST',
      host: this.#host.host,
      port,
      path: `${path}/write?db=${encodeURIComponent(options.database)}&precision=ms`,
      headers: this.#headers,
      agent: this.#agent,
    }
  }

  /**
   * Ends the write connections, the idle ones and those of writes under way (which then resolve as
   * `retry`: their batches stay in the spool). A later write opens a new connection.
   */
  close(): void {
    this.#agent.destroy()
  }

  /** Creates the database when missing (`CREATE DATABASE` is idempotent in InfluxDB 1.x); rejects with the cause wrapped. */
  async ensureDatabase(): Promise<void> {
    // A client per call: node-influx keeps a host in backoff after a failure, and this call is rare.
    const client = new InfluxDB({
      ...this.#host,
      database: this.database,
      ...(this.#username === undefined ? {} : { username: this.#username, password: this.#password ?? '' }),
      pool: { maxRetries: 0, requestTimeout: this.#timeoutMs },
    })
    try {
      await client.createDatabase(this.database)
    } catch (err) {
      throw new HubError('HUB_ERR_INFLUX', `InfluxDB: cannot create database "${this.database}" at ${this.url}`, { cause: err })
    }
  }

  /**
   * Runs one InfluxQL read in the database (`GET /query`, times as Unix ms) and returns the first
   * statement's series. The caller builds the query from validated parts only.
   * Rejects with HubError `HUB_ERR_INFLUX` when InfluxDB is unreachable or refuses the query.
   */
  async query(influxql: string): Promise<QuerySeries[]> {
    const url = `${this.url}/query?db=${encodeURIComponent(this.database)}&epoch=ms&q=${encodeURIComponent(influxql)}`
    let status: number
    let text: string
    try {
      const response = await fetch(url, { headers: this.#headers, signal: AbortSignal.timeout(this.#timeoutMs) })
      status = response.status
      text = await response.text()
    } catch (err) {
      throw new HubError('HUB_ERR_INFLUX', `InfluxDB is unreachable at ${this.url}`, { cause: err })
    }
    if (status !== 200) throw new HubError('HUB_ERR_INFLUX', `InfluxDB answered ${status}: ${errorText(text, status)}`)
    const answer = JSON.parse(text) as { results?: Array<{ series?: QuerySeries[]; error?: string }> }
    const first = answer.results?.[0]
    if (first?.error !== undefined) throw new HubError('HUB_ERR_INFLUX', `InfluxDB refused the query: ${first.error}`)
    return first?.series ?? []
  }

  /** True when `GET /ping` answers 204 within `timeoutMs` (default: the writer's); never rejects. */
  async ping(timeoutMs = this.#timeoutMs): Promise<boolean> {
    try {
      const response = await fetch(`${this.url}/ping`, { headers: this.#headers, signal: AbortSignal.timeout(timeoutMs) })
      await response.arrayBuffer()
      return response.status === 204
    } catch {
      return false
    }
  }

  /**
   * POSTs `lines` (joined with `\n`) in one request and classifies the answer; never rejects.
   * A missing database (404) is created and the batch sent once more.
   */
  async write(lines: readonly string[]): Promise<WriteResult> {
    return lines.length === 0 ? { ok: true } : this.#send(lines.join('\n'))
  }

  /**
   * Writes `batch`; when InfluxDB refuses part of it for good, bisects down to the single lines it
   * refuses, hands those to the dead letter (with InfluxDB's reason), and writes the rest.
   * Rewriting a line that already landed is harmless: it is the same series and time, so the
   * same point. Any retryable failure returns `retry` at once: the caller backs off and ships the
   * whole batch again. Resolves after the dead letters are in their file; never rejects.
   */
  async writeOrDeadLetter(batch: LineBatch): Promise<ShipResult> {
    const tally = { written: 0, deadLettered: 0, requests: 0 }
    const failure = await this.#ship(batch, 0, batch.lines, tally)
    await this.#deadLetter.flush()
    return failure ?? tally
  }

  async #ship(batch: LineBatch, from: number, to: number, tally: { written: number; deadLettered: number; requests: number }): Promise<{ retry: true; error: Error } | undefined> {
    if (to <= from) return undefined
    tally.requests++
    const result = await this.#send(batch.body(from, to))
    if (result.ok) {
      tally.written += to - from
      return undefined
    }
    if (result.retry) return { retry: true, error: result.error }
    if (to - from === 1) {
      this.#deadLetter.add({ device: batch.device(from), reason: 'influx_refused', message: `InfluxDB ${result.status}: ${result.reason}`, line: batch.line(from) })
      tally.deadLettered++
      return undefined
    }
    // InfluxDB 1.x says how many points it dropped, not which: halve until the refused lines stand alone.
    const middle = from + Math.ceil((to - from) / 2)
    return (await this.#ship(batch, from, middle, tally)) ?? (await this.#ship(batch, middle, to, tally))
  }

  /** One body, once more after creating a missing database. */
  async #send(body: string | Uint8Array<ArrayBuffer>): Promise<WriteResult> {
    const first = await this.#post(body)
    if (!('missingDatabase' in first)) return first
    try {
      await this.ensureDatabase()
    } catch (err) {
      return { ok: false, retry: true, error: err as Error }
    }
    return strip(await this.#post(body))
  }

  #post(body: string | Uint8Array<ArrayBuffer>): Promise<WriteResult | MissingDatabase> {
    return new Promise((resolve) => {
      let done = false
      const fail = (err: unknown, what: string): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve({ ok: false, retry: true, error: new HubError('HUB_ERR_INFLUX', `InfluxDB ${what} at ${this.url}`, { cause: err }) })
      }
      const answered = (response: IncomingMessage): void => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('error', (err) => fail(err, 'unreachable'))
        response.on('end', () => {
          if (done) return
          done = true
          clearTimeout(timer)
          resolve(classify(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')))
        })
      }
      const headers = { ...this.#writeRequest.headers, 'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength }
      const request = this.#request({ ...this.#writeRequest, headers }, answered)
      const timer = setTimeout(() => {
        request.destroy()
        fail(new Error('timeout'), `no answer within ${this.#timeoutMs} ms`)
      }, this.#timeoutMs)
      request.on('error', (err) => fail(err, 'unreachable'))
      request.end(body)
    })
  }
}

/** How InfluxDB answered a write. */
function classify(status: number, text: string): WriteResult | MissingDatabase {
  if (status >= 200 && status < 300) return { ok: true }
  const reason = errorText(text, status)
  if (status === 400 || status === 413) return { ok: false, retry: false, status, reason }
  const error = new HubError('HUB_ERR_INFLUX', `InfluxDB answered ${status}: ${reason}`)
  if (status === 404 && reason.startsWith('database not found')) return { ok: false, retry: true, error, missingDatabase: true }
  // 5xx, 429, 401/403 (credentials an operator must fix), anything else: the data is not at fault.
  return { ok: false, retry: true, error }
}

function strip(result: WriteResult | MissingDatabase): WriteResult {
  return result.ok || !result.retry ? result : { ok: false, retry: true, error: result.error }
}

/** InfluxDB 1.x answers errors as `{"error":"..."}`; fall back to the raw body or the status. */
function errorText(text: string, status: number): string {
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed && typeof parsed.error === 'string') return parsed.error
  } catch {
    // not JSON: a proxy's page, say
  }
  const trimmed = text.trim()
  return trimmed === '' ? `HTTP ${status}` : trimmed.slice(0, 1000)
}
