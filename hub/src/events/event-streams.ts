import type { Clock } from '@fleetgate/device-sdk'
import type { Logger } from '../logger.js'
import { tune } from '../tuning.js'
import type { EventBus, EventType } from './event-bus.js'

/** The event streams' tuning knobs; defaults in EVENT_STREAMS_DEFAULTS. */
export interface EventStreamsTuning {
  /** Streams open at once per operator token (by its name); default 16. */
  readonly maxStreamsPerToken: number
  /** Streams open at once on the hub; default 1,024. */
  readonly maxStreams: number
  /** A comment line goes to every stream this often, in ms, so that proxies keep it open (docs/rest.md: 15 s); default 15,000. */
  readonly keepaliveMs: number
  /** A stream whose unsent backlog grows past this many bytes (about) is cut; default 1,048,576. */
  readonly maxBacklogBytes: number
  /** A stream that keeps a backlog this long, in ms, without its client catching up, is cut; default 30,000. */
  readonly maxBacklogMs: number
}

/** The defaults of EventStreamsTuning. */
export const EVENT_STREAMS_DEFAULTS: EventStreamsTuning = Object.freeze({
  maxStreamsPerToken: 16,
  maxStreams: 1024,
  keepaliveMs: 15_000,
  maxBacklogBytes: 1_048_576,
  maxBacklogMs: 30_000,
})

/** Figures of the event streams. */
export interface EventStreamCounters {
  /** A stream cut because its client did not read fast enough. */
  eventStreamCut(): void
  /** A stream refused: its token has `maxStreamsPerToken` open (`token`), or the hub `maxStreams` (`hub`). */
  eventStreamRefused(reason: 'token' | 'hub'): void
}

/** Where a stream's text goes (transport's ResponseStream). */
export interface EventSink {
  /** True when the socket took the chunk at once; false when some of it waits in a buffer. */
  write(chunk: string): boolean
  /** Ends the response cleanly. */
  end(): void
  /** Drops the connection. */
  cut(): void
  /** Called once the stream ended, by either side. */
  onClose(fn: () => void): void
}

/** Whether another stream may open: `ok`, or which bound refuses it, or `closed` once the hub stops. */
export type Admission = 'ok' | 'token' | 'hub' | 'closed'

/** What a stream asked for: event types, and the devices it named (undefined: every device). */
export interface StreamFilter {
  readonly types: ReadonlySet<EventType>
  readonly devices: ReadonlySet<string> | undefined
}

/** What the event streams need. */
export interface EventStreamsOptions {
  readonly bus: EventBus
  readonly clock: Clock
  readonly log: Logger
  readonly counters: EventStreamCounters
  readonly tuning?: Partial<EventStreamsTuning>
}

interface Stream {
  readonly token: string
  readonly sink: EventSink
  /** Bytes written since the socket last took a chunk at once. */
  backlogBytes: number
  /** When the backlog began (Unix ms), or undefined while there is none. */
  backlogSince: number | undefined
}

/** The first chunk of every stream: it carries the headers out at once (curl and fetch see the 200). */
export const STREAM_HELLO = ': connected\n\n'
const KEEPALIVE = ': keepalive\n\n'

/**
 * The live event streams of docs/rest.md (Server-Sent Events): each subscribes to the bus with its
 * filter and writes `event: <type>` and `data: <json>` per event, a comment every 15 s. A client
 * that stops reading never slows anything: its backlog is bounded in bytes and in time, and past
 * either it is cut. Streams are bounded per token and per hub; on shutdown each ends cleanly.
 */
export class EventStreams {
  readonly #options: EventStreamsOptions
  readonly #tuning: EventStreamsTuning
  readonly #streams = new Set<Stream>()
  readonly #perToken = new Map<string, number>()
  #keepalive: unknown
  #closed = false

  constructor(options: EventStreamsOptions) {
    this.#options = options
    this.#tuning = tune('EventStreams', EVENT_STREAMS_DEFAULTS, options.tuning)
  }

  /** Streams open now (gauge `fleetgate_event_streams`). */
  get size(): number {
    return this.#streams.size
  }

  /** Whether a stream for `token` may open now; a refusal is counted. */
  admit(token: string): Admission {
    if (this.#closed) return 'closed'
    const reason = (this.#perToken.get(token) ?? 0) >= this.#tuning.maxStreamsPerToken ? 'token' : this.#streams.size >= this.#tuning.maxStreams ? 'hub' : undefined
    if (reason === undefined) return 'ok'
    this.#options.counters.eventStreamRefused(reason)
    return reason
  }

  /** The bounds, for the refusal's message. */
  get limits(): Pick<EventStreamsTuning, 'maxStreamsPerToken' | 'maxStreams'> {
    return this.#tuning
  }

  /** Serves a stream (admitted first) until its client goes, it is cut, or the hub stops. */
  open(token: string, filter: StreamFilter, sink: EventSink): void {
    const stream: Stream = { token, sink, backlogBytes: 0, backlogSince: undefined }
    this.#streams.add(stream)
    this.#perToken.set(token, (this.#perToken.get(token) ?? 0) + 1)
    const unsubscribe = this.#options.bus.subscribe({
      types: filter.types,
      devices: filter.devices,
      deliver: (type, json) => this.#write(stream, `event: ${type}\ndata: ${json}\n\n`),
    })
    sink.onClose(() => {
      unsubscribe()
      this.#streams.delete(stream)
      const left = (this.#perToken.get(token) ?? 1) - 1
      if (left > 0) this.#perToken.set(token, left)
      else this.#perToken.delete(token)
      if (this.#streams.size === 0) this.#stopKeepalive()
    })
    this.#keepalive ??= this.#options.clock.setTimeout(() => this.#tick(), this.#tuning.keepaliveMs)
  }

  /** Ends every stream cleanly and refuses new ones (hub shutdown, before the listener closes). */
  closeAll(): void {
    this.#closed = true
    this.#stopKeepalive()
    for (const stream of [...this.#streams]) stream.sink.end()
  }

  #write(stream: Stream, text: string): void {
    if (stream.sink.write(text)) {
      stream.backlogBytes = 0
      stream.backlogSince = undefined
      return
    }
    const now = this.#options.clock.now()
    stream.backlogSince ??= now
    stream.backlogBytes += Buffer.byteLength(text)
    if (stream.backlogBytes > this.#tuning.maxBacklogBytes || now - stream.backlogSince > this.#tuning.maxBacklogMs) this.#cut(stream)
  }

  #cut(stream: Stream): void {
    this.#options.counters.eventStreamCut()
    this.#options.log.warn({ token: stream.token, backlogBytes: stream.backlogBytes }, 'event stream client reads too slowly; stream cut')
    stream.sink.cut()
  }

  #tick(): void {
    this.#keepalive = undefined
    for (const stream of [...this.#streams]) this.#write(stream, KEEPALIVE)
    if (this.#streams.size > 0) this.#keepalive = this.#options.clock.setTimeout(() => this.#tick(), this.#tuning.keepaliveMs)
  }

  #stopKeepalive(): void {
    if (this.#keepalive === undefined) return
    this.#options.clock.clearTimeout(this.#keepalive)
    this.#keepalive = undefined
  }
}
