import { request, type ClientRequest, type IncomingMessage } from 'node:http'
import { SseParser, type SseEvent } from '../../console/src/lib/sse.js'
import { Inbox } from './inbox.js'

/** How a stream's response ended: `end` after its last chunk (a clean end), `aborted` when the connection dropped. */
export type StreamEnd = 'end' | 'aborted'

/** A reader of `GET /api/v1/events` (docs/rest.md) over node:http, parsed by the console's own SSE parser. */
export class EventStreamClient {
  readonly events = new Inbox<SseEvent>()
  /** Every character received, comments included. */
  raw = ''
  /** Resolves once the response is over, with how it ended. */
  readonly ended: Promise<StreamEnd>
  readonly #req: ClientRequest

  private constructor(req: ClientRequest, res: IncomingMessage) {
    this.#req = req
    const parser = new SseParser()
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => {
      this.raw += chunk
      for (const event of parser.push(chunk)) this.events.push(event)
    })
    this.ended = new Promise((resolve) => {
      res.once('end', () => resolve('end'))
      res.once('aborted', () => resolve('aborted'))
      res.once('error', () => resolve('aborted'))
    })
    void this.ended.then(() => this.events.wake())
  }

  /**
   * Opens a stream at `base` + `path` with `token` (none: no Authorization header). Resolves with the
   * client once the hub answered 200, or with the status and JSON body of a refusal.
   */
  static open(base: string, path: string, token: string | undefined): Promise<EventStreamClient | { status: number; body: { error: string; message: string } }> {
    return new Promise((resolve, reject) => {
      const req = request(`${base}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode !== 200) {
          let text = ''
          res.on('data', (chunk: Buffer) => (text += chunk.toString()))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error: string; message: string } }))
          return
        }
        if (res.headers['content-type'] !== 'text/event-stream') reject(new Error(`not an event stream: ${String(res.headers['content-type'])}`))
        resolve(new EventStreamClient(req, res))
      })
      req.on('error', reject)
      req.end()
    })
  }

  /** Opens a stream that must be accepted (200). */
  static async accepted(base: string, path: string, token: string): Promise<EventStreamClient> {
    const opened = await EventStreamClient.open(base, path, token)
    if (!(opened instanceof EventStreamClient)) throw new Error(`GET ${path}: ${opened.status} ${JSON.stringify(opened.body)}`)
    return opened
  }

  /** The next event, waiting up to `timeoutMs`. */
  next(timeoutMs = 5000): Promise<SseEvent> {
    return this.events.next(timeoutMs, 'event', () => false)
  }

  /** The next `count` events, each as its type and parsed JSON. */
  async take(count: number, timeoutMs = 5000): Promise<Array<{ type: string; data: unknown }>> {
    const out: Array<{ type: string; data: unknown }> = []
    while (out.length < count) {
      const event = await this.next(timeoutMs)
      out.push({ type: event.type, data: JSON.parse(event.data) as unknown })
    }
    return out
  }

  /** Closes the connection from the client's side. */
  close(): void {
    this.#req.destroy()
  }
}
