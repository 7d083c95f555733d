import { ConsoleError } from './errors.js'

/** One Server-Sent Event (WHATWG HTML §9.2): its type (`message` by default), data and last id. */
export interface SseEvent {
  readonly type: string
  readonly data: string
  readonly id: string
}

/** Longest line the parser holds before giving up on a stream, in characters; default 1 MiB. */
export const MAX_SSE_LINE_CHARS = 1024 * 1024

/**
 * An incremental `text/event-stream` parser (WHATWG HTML §9.2.6): feed it decoded text as it
 * arrives, in chunks of any size, and it returns the events each chunk completes. Lines end with
 * CRLF, LF or CR, also when a CRLF is split across chunks; comments (`:`) are keep-alives.
 */
export class SseParser {
  #pending = ''
  #skipLeadingLf = false
  #data: string[] = []
  #type = ''
  #lastId = ''
  #retryMs: number | undefined
  readonly #maxLineChars: number

  constructor(maxLineChars = MAX_SSE_LINE_CHARS) {
    this.#maxLineChars = maxLineChars
  }

  /** The server's last `retry:` in ms, if it sent one. */
  get retryMs(): number | undefined {
    return this.#retryMs
  }

  /** The last event id seen (for `Last-Event-ID` on reconnect). */
  get lastId(): string {
    return this.#lastId
  }

  /** @throws ConsoleError `CONSOLE_ERR_STREAM` when a line grows past the bound. */
  push(chunk: string): SseEvent[] {
    let text = this.#pending + chunk
    if (this.#skipLeadingLf && text.startsWith('\n')) text = text.slice(1)
    this.#skipLeadingLf = false
    const events: SseEvent[] = []
    let start = 0
    for (;;) {
      const cr = text.indexOf('\r', start)
      const lf = text.indexOf('\n', start)
      const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf)
      if (end === -1) break
      const event = this.#line(text.slice(start, end))
      if (event !== undefined) events.push(event)
      start = end + 1
      if (text[end] === '\r') {
        if (start === text.length) this.#skipLeadingLf = true
        else if (text[start] === '\n') start++
      }
    }
    this.#pending = text.slice(start)
    if (this.#pending.length > this.#maxLineChars) {
      throw new ConsoleError('CONSOLE_ERR_STREAM', `an event-stream line is longer than ${this.#maxLineChars} characters`)
    }
    return events
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') return this.#dispatch()
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    switch (field) {
      case 'event':
        this.#type = value
        break
      case 'data':
        this.#data.push(value)
        break
      case 'id':
        if (!value.includes('\0')) this.#lastId = value
        break
      case 'retry':
        if (/^\d+$/.test(value)) this.#retryMs = Number(value)
        break
      default:
        break
    }
    return undefined
  }

  #dispatch(): SseEvent | undefined {
    const data = this.#data
    const type = this.#type === '' ? 'message' : this.#type
    this.#data = []
    this.#type = ''
    if (data.length === 0) return undefined
    return { type, data: data.join('\n'), id: this.#lastId }
  }
}

/**
 * A stream's state for the UI: `connecting` (first attempt), `live`, `retrying` (lost, waiting to
 * reconnect), `unavailable` (the hub has no event stream: 404 or not `text/event-stream`; never
 * retried), `forbidden` (403), `closed` (by the console).
 */
export type StreamState = 'connecting' | 'live' | 'retrying' | 'unavailable' | 'forbidden' | 'closed'

/** What `EventStream` needs; every bound has a default. */
export interface EventStreamOptions {
  /** Path and query, e.g. `/api/v1/events?type=status`. */
  readonly url: string
  readonly token: string
  readonly onEvent: (event: SseEvent) => void
  readonly onState: (state: StreamState, detail: string) => void
  /** Called on 401; the stream stops. */
  readonly onUnauthorized?: () => void
  /** First reconnect delay, in ms; default 1,000. Doubles per failure, full jitter. */
  readonly initialBackoffMs?: number
  /** Longest reconnect delay, in ms; default 30,000. */
  readonly maxBackoffMs?: number
  /** A connection that stayed live this long resets the backoff, in ms; default 10,000. */
  readonly healthyAfterMs?: number
  readonly fetch?: typeof fetch
  /** Waits `ms` unless `signal` aborts first; injectable for tests. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  readonly random?: () => number
  readonly now?: () => number
}

const realSleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })

/**
 * The live event stream (docs/rest.md) read with `fetch`, because `EventSource` cannot send the
 * `Authorization` header and the token must never travel in a URL. Reconnects with exponential
 * backoff and full jitter; a 404 means the hub has no stream and is never retried, so an old hub
 * sees one request per page, not a polling storm.
 */
export class EventStream {
  readonly #options: EventStreamOptions
  readonly #abort = new AbortController()
  readonly done: Promise<void>

  constructor(options: EventStreamOptions) {
    this.#options = options
    this.done = this.#run()
  }

  close(): void {
    if (this.#abort.signal.aborted) return
    this.#abort.abort()
    this.#options.onState('closed', '')
  }

  async #run(): Promise<void> {
    const o = this.#options
    const signal = this.#abort.signal
    const doFetch = o.fetch ?? ((input, init) => fetch(input, init))
    const sleep = o.sleep ?? realSleep
    const random = o.random ?? Math.random
    const now = o.now ?? Date.now
    const initial = o.initialBackoffMs ?? 1000
    const max = o.maxBackoffMs ?? 30_000
    const healthyAfter = o.healthyAfterMs ?? 10_000
    let failures = 0
    let lastId = ''
    let serverRetryMs: number | undefined
    o.onState('connecting', '')
    while (!signal.aborted) {
      let why: string
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${o.token}`, accept: 'text/event-stream' }
        if (lastId !== '') headers['last-event-id'] = lastId
        const response = await doFetch(o.url, { headers, signal })
        if (response.status === 401) {
          o.onUnauthorized?.()
          o.onState('closed', 'the hub no longer accepts this token')
          return
        }
        if (response.status === 403) {
          o.onState('forbidden', 'this token may not read the event stream')
          return
        }
        const type = response.headers.get('content-type') ?? ''
        if (response.status === 404 || (response.ok && !type.startsWith('text/event-stream'))) {
          await response.body?.cancel()
          o.onState('unavailable', `this hub has no event stream (GET ${o.url.split('?')[0] ?? ''} answered ${response.status})`)
          return
        }
        if (!response.ok || response.body === null) {
          await response.body?.cancel()
          why = `the hub answered ${response.status}`
        } else {
          const opened = now()
          o.onState('live', '')
          const parser = new SseParser()
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
          try {
            for (;;) {
              const { value, done } = await reader.read()
              if (done) break
              for (const event of parser.push(value)) o.onEvent(event)
            }
          } finally {
            lastId = parser.lastId
            serverRetryMs = parser.retryMs
            // Ends the body also when the parser gave up on it; on a finished body it does nothing.
            await reader.cancel().catch(() => undefined)
          }
          if (now() - opened >= healthyAfter) failures = 0
          why = 'the hub closed the stream'
        }
      } catch (err) {
        if (signal.aborted) return
        why = err instanceof Error ? err.message : String(err)
      }
      const ceiling = Math.min(max, initial * 2 ** failures)
      failures++
      const delay = Math.max(serverRetryMs ?? 0, initial, Math.round(random() * ceiling))
      o.onState('retrying', `${why}; reconnecting in ${Math.ceil(delay / 1000)} s`)
      await sleep(delay, signal)
    }
  }
}
