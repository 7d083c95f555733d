import { describe, expect, it } from 'vitest'
import { EventStream, SseParser, type SseEvent, type StreamState } from '../src/lib/sse.js'

/** Feeds `chunks` to one parser and returns every event. */
const parse = (chunks: readonly string[]): SseEvent[] => {
  const parser = new SseParser()
  return chunks.flatMap((chunk) => parser.push(chunk))
}

describe('SseParser', () => {
  const cases: ReadonlyArray<readonly [string, readonly string[], readonly SseEvent[]]> = [
    ['one event', ['event: status\ndata: {"a":1}\n\n'], [{ type: 'status', data: '{"a":1}', id: '' }]],
    ['default type message', ['data: x\n\n'], [{ type: 'message', data: 'x', id: '' }]],
    ['data lines joined with LF', ['data: a\ndata: b\n\n'], [{ type: 'message', data: 'a\nb', id: '' }]],
    ['no space after colon', ['event:t\ndata:x\n\n'], [{ type: 't', data: 'x', id: '' }]],
    ['only one leading space is dropped', ['data:  x\n\n'], [{ type: 'message', data: ' x', id: '' }]],
    ['comments are keep-alives', [': ping\n\n', 'data: y\n\n'], [{ type: 'message', data: 'y', id: '' }]],
    ['no data, no event', ['event: status\n\n'], []],
    ['type resets after dispatch', ['event: a\ndata: 1\n\ndata: 2\n\n'], [{ type: 'a', data: '1', id: '' }, { type: 'message', data: '2', id: '' }]],
    ['split in a field name', ['ev', 'ent: s\nda', 'ta: 1\n', '\n'], [{ type: 's', data: '1', id: '' }]],
    ['CRLF line ends', ['data: 1\r\n\r\n'], [{ type: 'message', data: '1', id: '' }]],
    ['CRLF split across chunks', ['data: 1\r', '\n\r', '\ndata: 2\r\n\r\n'], [{ type: 'message', data: '1', id: '' }, { type: 'message', data: '2', id: '' }]],
    ['bare CR line ends', ['data: 1\r\r'], [{ type: 'message', data: '1', id: '' }]],
    ['id is kept for later events', ['id: 7\ndata: a\n\ndata: b\n\n'], [{ type: 'message', data: 'a', id: '7' }, { type: 'message', data: 'b', id: '7' }]],
    ['unknown fields are ignored', ['foo: bar\ndata: z\n\n'], [{ type: 'message', data: 'z', id: '' }]],
    ['an unfinished event waits', ['data: 1\n'], []],
  ]
  for (const [name, chunks, events] of cases) {
    it(name, () => expect(parse(chunks)).toEqual(events))
  }

  it('reads retry: as milliseconds and ignores a non-number', () => {
    const parser = new SseParser()
    parser.push('retry: 2500\n\nretry: soon\n\n')
    expect(parser.retryMs).toBe(2500)
  })

  it('gives up on a line longer than its bound', () => {
    const parser = new SseParser(16)
    parser.push('data: 0123456789')
    expect(() => parser.push('abcdef')).toThrowError(expect.objectContaining({ code: 'CONSOLE_ERR_STREAM' }))
  })
})

/** A fetch that answers each call with the next scripted response and records the requests. */
function scriptedFetch(responses: Array<() => Response>): { fetch: typeof fetch; calls: Array<{ url: string; headers: Record<string, string> }> } {
  const calls: Array<{ url: string; headers: Record<string, string> }> = []
  const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls.push({ url: String(input), headers: { ...(init?.headers as Record<string, string>) } })
    const next = responses.shift()
    if (next === undefined) throw new Error('no more scripted responses')
    return next()
  }
  return { fetch: fetchFn as typeof fetch, calls }
}

const streamOf = (text: string): Response =>
  new Response(
    new ReadableStream({
      start(controller) {
        const bytes = new TextEncoder().encode(text)
        // Two chunks that split a UTF-8 character and a line: the stream must reassemble both.
        controller.enqueue(bytes.slice(0, 9))
        controller.enqueue(bytes.slice(9))
        controller.close()
      },
    }),
    { status: 200, headers: { 'content-type': 'text/event-stream' } },
  )

/** Runs an EventStream until `done` or `stopAfter` events, with sleeps recorded instead of waited. */
async function run(responses: Array<() => Response>, stopAfterSleeps = 10) {
  const scripted = scriptedFetch(responses)
  const states: Array<[StreamState, string]> = []
  const events: SseEvent[] = []
  const sleeps: number[] = []
  let unauthorized = 0
  const stream: EventStream = new EventStream({
    url: '/api/v1/events?type=status',
    token: 'tok-123',
    fetch: scripted.fetch,
    onEvent: (e) => events.push(e),
    onState: (state, detail) => states.push([state, detail]),
    onUnauthorized: () => unauthorized++,
    random: () => 1,
    sleep: async (ms) => {
      sleeps.push(ms)
      if (sleeps.length >= stopAfterSleeps) stream.close()
    },
  })
  await stream.done
  return { calls: scripted.calls, states, events, sleeps, unauthorized: () => unauthorized }
}

describe('EventStream', () => {
  it('sends the token in the Authorization header, never in the URL', async () => {
    const result = await run([() => streamOf('data: é1\n\n')], 1)
    expect(result.calls[0]?.url).toBe('/api/v1/events?type=status')
    expect(result.calls[0]?.headers['authorization']).toBe('Bearer tok-123')
    expect(result.events).toEqual([{ type: 'message', data: 'é1', id: '' }])
  })

  it('stops for good on 404: one request, state unavailable, no retry', async () => {
    const result = await run([() => new Response('{"error":"not_found"}', { status: 404 })])
    expect(result.calls).toHaveLength(1)
    expect(result.sleeps).toEqual([])
    expect(result.states.map(([s]) => s)).toEqual(['connecting', 'unavailable'])
    expect(result.states[1]?.[1]).toContain('answered 404')
  })

  it('treats a 200 that is not an event stream as unavailable', async () => {
    const result = await run([() => new Response('<html>', { status: 200, headers: { 'content-type': 'text/html' } })])
    expect(result.calls).toHaveLength(1)
    expect(result.states.at(-1)?.[0]).toBe('unavailable')
  })

  it('stops on 401 and reports it; on 403 says forbidden', async () => {
    const denied = await run([() => new Response('', { status: 401 })])
    expect(denied.unauthorized()).toBe(1)
    expect(denied.calls).toHaveLength(1)
    const forbidden = await run([() => new Response('', { status: 403 })])
    expect(forbidden.states.at(-1)?.[0]).toBe('forbidden')
    expect(forbidden.calls).toHaveLength(1)
  })

  it('reconnects after errors with doubling delays up to the ceiling, and resumes with Last-Event-ID', async () => {
    const failing = (): Response => new Response('', { status: 503 })
    const result = await run(
      [failing, failing, failing, () => streamOf('id: 41\ndata: a\n\n'), failing, failing, failing, failing, failing, failing],
      8,
    )
    // random() = 1 takes each ceiling: 1 s, 2 s, 4 s, then 8 s after the stream (short-lived, so no reset) ...
    expect(result.sleeps).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
    expect(result.events).toEqual([{ type: 'message', data: 'a', id: '41' }])
    expect(result.calls[4]?.headers['last-event-id']).toBe('41')
    expect(result.states.map(([s]) => s)).toContain('live')
    expect(result.states.at(-1)?.[0]).toBe('closed')
  })
})
