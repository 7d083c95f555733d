import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DeadLetter } from '../src/telemetry/dead-letter.js'
import { HubError } from '../src/errors.js'
import { appendLine, LineBuffer, seriesKey } from '../src/telemetry/influx-line.js'
import { InfluxWriter, type LineBatch } from '../src/telemetry/influx-writer.js'
import { startInfluxd, type Influxd } from '../../test/support/influxd.js'

/** `devices` x `perDevice` readings of `telemetry` with a float `v`, times from `startMs`. */
function batch(devices: number, perDevice: number, startMs = 1_700_000_000_000): string[] {
  const out: string[] = []
  for (let d = 0; d < devices; d++) {
    for (let i = 0; i < perDevice; i++) {
      const refusal = appendLine(out, 'telemetry', { device: `dev-${d}`, site: 'lab' }, { v: i % 2 === 0 ? i : i + 0.5, ok: true }, startMs + i)
      if (refusal !== undefined) throw new Error(refusal)
    }
  }
  return out
}

/** The single number an InfluxQL aggregate answered, or undefined when there are no points. */
function scalar(answer: unknown): number | undefined {
  const results = (answer as { results: Array<{ series?: Array<{ values: unknown[][] }>; error?: string }> }).results
  const first = results[0]
  if (first?.error !== undefined) throw new Error(first.error)
  const value = first?.series?.[0]?.values[0]?.[1]
  return value === undefined ? undefined : (value as number)
}

/** Lines as text, each with the `device` tag it carries, as the shipper hands them over. */
const textBatch = (lines: readonly string[]): LineBatch => ({
  lines: lines.length,
  body: (from, to) => lines.slice(from, to).join('\n'),
  line: (index) => lines[index] ?? '',
  device: (index) => /,device=([^, ]+)/.exec(lines[index] ?? '')?.[1] ?? '',
})

function databases(answer: unknown): string[] {
  const results = (answer as { results: Array<{ series?: Array<{ values: string[][] }> }> }).results
  return (results[0]?.series?.[0]?.values ?? []).map(([name]) => name ?? '')
}

describe('InfluxWriter against a real influxd 1.x', () => {
  let influx: Influxd
  let dir: string

  beforeAll(async () => {
    influx = await startInfluxd()
    dir = mkdtempSync(join(tmpdir(), 'fleetgate-writer-'))
  })
  afterAll(async () => {
    await influx?.destroy()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  const writer = (database: string, deadLetterFile = `${database}.jsonl`, timeoutMs?: number): { writer: InfluxWriter; deadLetter: DeadLetter } => {
    const deadLetter = new DeadLetter({ dir, fileName: deadLetterFile })
    const url = influx.url
    return { writer: new InfluxWriter({ url, database, deadLetter, ...(timeoutMs === undefined ? {} : { timeoutMs }) }), deadLetter }
  }

  const count = async (database: string, where = ''): Promise<number | undefined> =>
    scalar(await influx.query(`SELECT COUNT(v) FROM telemetry ${where}`, database))

  it('ensureDatabase creates the database, and again is harmless', async () => {
    const { writer: w } = writer('created')
    expect(databases(await influx.query('SHOW DATABASES'))).not.toContain('created')
    await w.ensureDatabase()
    await w.ensureDatabase()
    expect(databases(await influx.query('SHOW DATABASES'))).toContain('created')
    expect(await w.ping()).toBe(true)
  })

  it('a write to a missing database creates it and lands', async () => {
    const { writer: w } = writer('autocreated')
    expect(await w.write(batch(1, 3))).toEqual({ ok: true })
    expect(await count('autocreated')).toBe(3)
  })

  it('a batch of 5,000 lines lands in one request as 5,000 points', async () => {
    const { writer: w, deadLetter } = writer('bulk')
    await w.ensureDatabase()
    const lines = batch(50, 100)
    expect(lines).toHaveLength(5000)
    expect(await w.writeOrDeadLetter(textBatch(lines))).toEqual({ written: 5000, deadLettered: 0, requests: 1 })
    expect(await count('bulk')).toBe(5000)
    expect(deadLetter.count).toBe(0)
  })

  it('a field type conflict and an unparsable line: every good point lands, exactly the bad lines are dead-lettered', async () => {
    const { writer: w, deadLetter } = writer('conflict')
    await w.ensureDatabase()
    const lines = batch(10, 100) // 1,000 float points first: `v` is a float field
    const bad: string[] = []
    for (const at of [100, 555, 999]) {
      const line: string[] = []
      appendLine(line, 'telemetry', { device: 'liar' }, { v: `text ${at}` }, 1_700_000_000_000 + at)
      bad.push(line[0] as string)
      lines.splice(at, 0, line[0] as string)
    }
    const unparsable = 'telemetry,device=junk v= 1700000000000'
    lines.splice(700, 0, unparsable)
    bad.push(unparsable)

    const result = await w.writeOrDeadLetter(textBatch(lines))
    expect(result).toMatchObject({ written: 1000, deadLettered: 4 })
    expect(await count('conflict')).toBe(1000)
    expect(await count('conflict', `WHERE device = 'liar'`)).toBeUndefined()
    expect(deadLetter.count).toBe(4)
    expect(deadLetter.written).toBe(4)
    expect(deadLetter.dropped).toBe(0)

    const entries = readFileSync(deadLetter.path, 'utf8')
      .trimEnd()
      .split('\n')
      .map((text) => JSON.parse(text) as { at: string; device: string; reason: string; message: string; line: string })
    expect(entries.map((entry) => entry.line).sort()).toEqual([...bad].sort())
    for (const entry of entries) {
      expect(Number.isNaN(Date.parse(entry.at))).toBe(false)
      expect(entry.reason).toBe('influx_refused')
      expect(entry.device).toBe(entry.line === unparsable ? 'junk' : 'liar')
      expect(entry.message).toMatch(entry.line === unparsable ? /^InfluxDB 400: unable to parse/ : /^InfluxDB 400: .*field type conflict/)
    }
  })

  it('a LineBuffer lands as its bytes; a line of it InfluxDB refuses is dead-lettered as text with its device', async () => {
    const { writer: w, deadLetter } = writer('buffer', 'buffer.jsonl')
    await w.ensureDatabase()
    const lines = new LineBuffer(256)
    const series = (device: string): Uint8Array => seriesKey('telemetry', { device, site: 'lab' }) as Uint8Array
    for (let i = 0; i < 999; i++) lines.point(`dev-${i % 7}`, series(`dev-${i % 7}`), { v: i + 0.25, note: 'é' }, 1_700_000_000_000 + i)
    lines.point('liar', series('liar'), { v: 'text' }, 1_700_000_001_000)
    expect(await w.writeOrDeadLetter(lines)).toMatchObject({ written: 999, deadLettered: 1 })
    expect(await count('buffer')).toBe(999)
    expect(scalar(await influx.query(`SELECT SUM(v) FROM telemetry WHERE device = 'dev-3'`, 'buffer'))).toBe(Array.from({ length: 999 }, (_, i) => i).filter((i) => i % 7 === 3).reduce((a, i) => a + i + 0.25, 0))
    const entries = readFileSync(deadLetter.path, 'utf8').trimEnd().split('\n').map((text) => JSON.parse(text) as { device: string; line: string })
    expect(entries.map(({ device, line }) => [device, line])).toStrictEqual([['liar', 'telemetry,device=liar,site=lab v="text" 1700000001000']])
  })

  it('a body over the server limit is split, not dead-lettered', async () => {
    const small = await startInfluxd({ maxBodyBytes: 64 * 1024 })
    try {
      const deadLetter = new DeadLetter({ dir, fileName: 'split.jsonl' })
      const w = new InfluxWriter({ url: small.url, database: 'split', deadLetter })
      const lines = batch(20, 100) // about 110 KiB
      expect(await w.write(lines)).toMatchObject({ ok: false, retry: false, status: 413 })
      const result = await w.writeOrDeadLetter(textBatch(lines))
      expect(result).toMatchObject({ written: 2000, deadLettered: 0 })
      expect(scalar(await small.query('SELECT COUNT(v) FROM telemetry', 'split'))).toBe(2000)
    } finally {
      await small.destroy()
    }
  })

  it('influxd down: retry at once; back: the same batch lands; again: no duplicates', async () => {
    const { writer: w, deadLetter } = writer('outage')
    await w.ensureDatabase()
    const lines = batch(5, 200)
    await influx.stop()
    try {
      const started = Date.now()
      const down = await w.write(lines)
      expect(down).toMatchObject({ ok: false, retry: true })
      expect(Date.now() - started).toBeLessThan(2000)
      const shipped = await w.writeOrDeadLetter(textBatch(lines))
      expect(shipped).toMatchObject({ retry: true })
      expect(await w.ping()).toBe(false)
    } finally {
      await influx.restart()
    }
    expect(await w.writeOrDeadLetter(textBatch(lines))).toEqual({ written: 1000, deadLettered: 0, requests: 1 })
    expect(await count('outage')).toBe(1000)
    expect(await w.writeOrDeadLetter(textBatch(lines))).toEqual({ written: 1000, deadLettered: 0, requests: 1 })
    expect(await count('outage')).toBe(1000)
    expect(deadLetter.count).toBe(0)
  })

  it('influxd hung: the write times out as retry, not hanging', async () => {
    const { writer: w } = writer('hung', 'hung.jsonl', 300)
    await w.ensureDatabase()
    influx.pause()
    try {
      const started = Date.now()
      const result = await w.write(batch(1, 10))
      const elapsedMs = Date.now() - started
      expect(result).toMatchObject({ ok: false, retry: true })
      if (result.ok || !result.retry) throw new Error('expected retry')
      expect(result.error.message).toContain('no answer within 300 ms')
      expect(elapsedMs).toBeGreaterThanOrEqual(250)
      expect(elapsedMs).toBeLessThan(2000)
    } finally {
      influx.resume()
    }
    expect(await w.ping()).toBe(true)
  })
})

/**
 * A loopback HTTP server in InfluxDB's place, answering each write as `answer` says, that counts
 * the connections it was opened and keeps them, so a test sees which the writer ended.
 */
async function standIn(answer: (request: IncomingMessage, response: ServerResponse, body: string) => void): Promise<{ url: string; server: Server; sockets: Socket[] }> {
  const sockets: Socket[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => answer(request, response, Buffer.concat(chunks).toString('utf8')))
  })
  server.on('connection', (socket) => sockets.push(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets }
}

const closed = (socket: Socket): Promise<void> => (socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve())))

describe('InfluxWriter over HTTP, against a stand-in server', () => {
  const deadLetter = new DeadLetter({ dir: tmpdir() })
  const servers: Server[] = []
  afterAll(async () => {
    for (const server of servers) {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
  const serve = async (answer: (request: IncomingMessage, response: ServerResponse, body: string) => void): Promise<{ url: string; sockets: Socket[] }> => {
    const stand = await standIn(answer)
    servers.push(stand.server)
    return stand
  }

  it('keeps one connection for successive writes, and close ends it', async () => {
    const { url, sockets } = await serve((_request, response) => response.writeHead(204).end())
    const w = new InfluxWriter({ url, database: 'kept', deadLetter })
    for (let i = 0; i < 3; i++) expect(await w.write([`telemetry,device=d v=${i} 1700000000000`])).toEqual({ ok: true })
    expect(sockets).toHaveLength(1)
    w.close()
    await closed(sockets[0] as Socket)
    expect(sockets[0]?.closed).toBe(true)
  })

  it('close ends a write under way: it resolves as retry without waiting for its deadline', async () => {
    let received: () => void = () => undefined
    const arrived = new Promise<void>((resolve) => (received = resolve))
    // never answers; the writer's deadline is beyond the test's timeout, so only close can end the write
    const { url } = await serve(() => received())
    const w = new InfluxWriter({ url, database: 'held', deadLetter, timeoutMs: 600_000 })
    const result = w.write(['telemetry,device=d v=1 1700000000000'])
    await arrived
    w.close()
    expect(await result).toMatchObject({ ok: false, retry: true, error: expect.objectContaining({ code: 'HUB_ERR_INFLUX', message: expect.stringContaining('unreachable') }) })
  })

  it.each([
    [503, '{"error":"engine overloaded"}', 'InfluxDB answered 503: engine overloaded'],
    [500, '<html>proxy error</html>\n', 'InfluxDB answered 500: <html>proxy error</html>'],
    [429, '', 'InfluxDB answered 429: HTTP 429'],
    [401, '{"error":"authorization failed"}', 'InfluxDB answered 401: authorization failed'],
    [404, '{"error":"page not found"}', 'InfluxDB answered 404: page not found'],
  ])('answers %i as retry with the reason', async (status, body, message) => {
    const { url } = await serve((_request, response) => response.writeHead(status).end(body))
    const w = new InfluxWriter({ url, database: 'x', deadLetter })
    expect(await w.write(['telemetry,device=d v=1 1'])).toMatchObject({ ok: false, retry: true, error: expect.objectContaining({ code: 'HUB_ERR_INFLUX', message }) })
    w.close()
  })

  it.each([400, 413] as const)('answers %i as refused for good, with InfluxDB\'s reason', async (status) => {
    const { url } = await serve((_request, response) => response.writeHead(status).end('{"error":"partial write: field type conflict"}'))
    const w = new InfluxWriter({ url, database: 'x', deadLetter })
    expect(await w.write(['telemetry,device=d v=1 1'])).toEqual({ ok: false, retry: false, status, reason: 'partial write: field type conflict' })
    w.close()
  })

  it('a connection that ends in the middle of the answer is a retry', async () => {
    const { url } = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': '100' })
      response.write('{"err')
      setImmediate(() => response.socket?.destroy())
    })
    const w = new InfluxWriter({ url, database: 'x', deadLetter })
    expect(await w.write(['telemetry,device=d v=1 1'])).toMatchObject({ ok: false, retry: true, error: expect.objectContaining({ message: expect.stringContaining('unreachable') }) })
    w.close()
  })

  it('sends the lines as the body of POST /write with the database, ms precision and Basic auth', async () => {
    const seen: Array<{ method: string | undefined; url: string | undefined; authorization: string | undefined; body: string }> = []
    const { url } = await serve((request, response, body) => {
      seen.push({ method: request.method, url: request.url, authorization: request.headers.authorization, body })
      response.writeHead(204).end()
    })
    const w = new InfluxWriter({ url: url.replace('http://', 'http://ops:s%40cret@') + '/proxy/', database: 'my db', deadLetter })
    expect(await w.write(['a,device=d v=1 1', 'a,device=d v=2 2'])).toEqual({ ok: true })
    w.close()
    expect(seen).toEqual([
      { method: 'POST', url: '/proxy/write?db=my%20db&precision=ms', authorization: `Basic ${Buffer.from('ops:s@cret').toString('base64')}`, body: 'a,device=d v=1 1\na,device=d v=2 2' },
    ])
  })
})

describe('InfluxWriter options', () => {
  const deadLetter = new DeadLetter({ dir: tmpdir() })

  it.each([
    ['unknown key', { url: 'http://127.0.0.1:8086', database: 'x', deadLetter, timeoutMS: 5 }],
    ['not a URL', { url: 'localhost:8086', database: 'x', deadLetter }],
    ['not http', { url: 'ftp://127.0.0.1', database: 'x', deadLetter }],
    ['empty database', { url: 'http://127.0.0.1:8086', database: '', deadLetter }],
    ['zero timeout', { url: 'http://127.0.0.1:8086', database: 'x', deadLetter, timeoutMs: 0 }],
  ])('refuses %s with HUB_ERR_CONFIG', (_name, options) => {
    let caught: unknown
    try {
      new InfluxWriter(options as ConstructorParameters<typeof InfluxWriter>[0])
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(HubError)
    expect((caught as HubError).code).toBe('HUB_ERR_CONFIG')
  })

  it('keeps credentials out of its URL', () => {
    const w = new InfluxWriter({ url: 'https://ops:s3cret@influx.example:8086/proxy/', database: 'x', deadLetter })
    expect(w.url).toBe('https://influx.example:8086/proxy')
  })
})
