import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { API_ERROR_CODES } from '@fleetgate/hub'
import { assertHubServes, fuzzSeed, rawHttp, seededRandom, Witness, type RawAnswer, type RawOutcome } from '../support/hostile.js'
import { ADMIN_TOKEN, startTestHub, tempDir, writeTokensFile, type TestHub } from '../support/hub.js'

/**
 * The hostile-input suite of the HTTP side: REST paths, queries, headers and bodies, random and
 * mutated, and raw requests no client library would send, against an in-process hub with a
 * witness device connected. Every request must get a well-formed answer with an expected status
 * (never 500, never a dropped connection), or, for bytes that are not HTTP, what uWS itself does
 * with them; afterwards the hub serves and the witness still gets its acks.
 */

const READER = 'fuzz-reader-token-0123456789'
const ADMIN = `Bearer ${ADMIN_TOKEN}`
/** Statuses the REST API may answer to anything a client sends (docs/rest.md); 500 is never one. */
const STATUSES = new Set([200, 201, 202, 204, 400, 401, 403, 404, 409, 413, 429, 503])
/** Error codes a client may see: every REST code but `internal`, which no hostile request may earn. */
const ERROR_CODES = new Set<string>(API_ERROR_CODES.filter((code) => code !== 'internal'))
const METHODS = ['GET', 'GET', 'GET', 'POST', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS']
const TEMPLATES = [
  '/api/v1/devices',
  '/api/v1/devices/bulk',
  '/api/v1/devices/{id}',
  '/api/v1/devices/{id}/key',
  '/api/v1/devices/{id}/telemetry',
  '/api/v1/devices/{id}/commands',
  '/api/v1/devices/{id}/commands/{id}',
  '/api/v1/devices/{id}/twin',
  '/api/v1/commands',
  '/api/v1/commands/{id}',
  '/api/v1/audit',
  '/api/v1/metrics',
  '/healthz',
  '/readyz',
  '/metrics',
  '/{id}',
  '/api/{id}/{id}',
]
/** Path segments: real ids, escapes good and bad, dot segments, separators, long and non-ASCII text. */
const SEGMENTS = [
  'fuzz-1',
  'fuzz-2',
  'nobody',
  '',
  '%',
  '%E0%A4%A',
  '%zz',
  '%00',
  '%2F',
  '%2f..%2f',
  '..',
  '%2e%2e',
  '.',
  'a'.repeat(65),
  'x'.repeat(300),
  '%C3%A9',
  'é中',
  '%F0%9F%98%80',
  '%ED%A0%80',
  '%C0%AF',
  '+',
  ';',
  '*',
  ':id',
  'null',
  '-1',
  '{}',
  '%7B%7D',
  '\\',
  '%5C',
]
const QUERY_KEYS = ['limit', 'after', 'tag', 'online', 'status', 'from', 'to', 'metrics', 'token', 'wait', '', '%', 'a[b]', 'x'.repeat(100)]
const QUERY_VALUES = [
  '1',
  '0',
  '-1',
  '1001',
  '1e3',
  '1e309',
  'NaN',
  '0x10',
  '',
  'true',
  'false',
  '%',
  '%zz',
  '%E0%A4%A',
  'a:b',
  ':',
  'k:',
  '2026-01-31T12:00:00Z',
  '2026-02-30T25:61:61Z',
  '9999999999999999999999',
  'a,b,,c',
  'queued',
  'é',
  '%00',
  'x'.repeat(500),
]
const TOKENS = [undefined, ADMIN, ADMIN, `Bearer ${READER}`, 'Bearer', 'Bearer wrong', 'Basic YWRtaW46YWRtaW4=', `Bearer ${'z'.repeat(2000)}`, 'bearer \u00ff']
/** Printable ASCII that may stand in a request target, '%' included (space, '?' and '#' have their own roles). */
const PATH_CHARS = '!$&\'()*+,-./0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~%'
const BODY_KEYS = ['id', 'keyType', 'publicKey', 'tags', 'disabled', 'name', 'params', 'timeoutMs', 'ttlMs', 'wait', 'target', 'ids', 'devices', 'graceSec', 'disconnect', 'desired', 'ifVersion', '$set', '__proto__', 'constructor']

/** Picks, builds and mutates inputs from one seeded PRNG. */
class Inputs {
  readonly #random: () => number

  constructor(random: () => number) {
    this.#random = random
  }

  int(below: number): number {
    return Math.floor(this.#random() * below)
  }

  chance(p: number): boolean {
    return this.#random() < p
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)] as T
  }

  /** Up to three random edits: insert, delete, replace a character, or insert a percent-escape, good or bad. */
  mutate(text: string, alphabet = PATH_CHARS): string {
    let out = text
    for (let edits = 1 + this.int(3); edits > 0; edits--) {
      const at = this.int(out.length + 1)
      switch (this.int(4)) {
        case 0:
          out = out.slice(0, at) + this.pick([...alphabet]) + out.slice(at)
          break
        case 1:
          out = out.slice(0, at) + out.slice(at + 1)
          break
        case 2:
          out = out.slice(0, at) + this.pick([...alphabet]) + out.slice(at + 1)
          break
        default:
          out = `${out.slice(0, at)}%${this.pick([...'0123456789ABCDEFabcdefgz%'])}${this.pick([...'0123456789ABCDEFz'])}${out.slice(at)}`
      }
    }
    return out
  }

  segment(): string {
    const base = this.pick(SEGMENTS)
    return this.chance(0.4) ? this.mutate(base) : base
  }

  path(): string {
    if (this.chance(0.1)) return `/${this.mutate(this.pick(TEMPLATES).replace(/\{id\}/g, () => this.segment()))}`
    return this.pick(TEMPLATES).replace(/\{id\}/g, () => this.segment())
  }

  query(): string {
    if (this.chance(0.3)) return ''
    const pairs: string[] = []
    for (let n = 1 + this.int(4); n > 0; n--) {
      const key = this.chance(0.2) ? this.mutate(this.pick(QUERY_KEYS)) : this.pick(QUERY_KEYS)
      const value = this.chance(0.3) ? this.mutate(this.pick(QUERY_VALUES)) : this.pick(QUERY_VALUES)
      pairs.push(this.chance(0.1) ? key : `${key}=${value}`)
    }
    return `?${pairs.join(this.chance(0.9) ? '&' : ';')}`
  }

  /** A JSON value of the shapes the API reads, with hostile leaves. */
  json(depth = 0): unknown {
    const leaf = (): unknown =>
      this.pick([null, true, false, 0, -1, 1e308, 0.5, 2 ** 53 + 1, '', 'fuzz-1', 'x'.repeat(200), 'é', '\u0000', 'hmac', 'ed25519', 'ping', 'sent'])
    if (depth > 3 || this.chance(0.3)) return leaf()
    if (this.chance(0.3)) return Array.from({ length: this.int(4) }, () => this.json(depth + 1))
    const object: Record<string, unknown> = {}
    for (let n = this.int(5); n > 0; n--) object[this.chance(0.85) ? this.pick(BODY_KEYS) : this.mutate('key', 'abc$._-é')] = this.json(depth + 1)
    return object
  }

  /** A request body: JSON of the API's shapes, broken JSON, nesting too deep, or nothing. */
  body(): string | undefined {
    switch (this.int(8)) {
      case 0:
        return undefined
      case 1: {
        const text = JSON.stringify(this.json())
        return text.slice(0, this.int(text.length + 1))
      }
      case 2: {
        const depth = 60 + this.int(3000)
        return `{"name":"ping","params":${'['.repeat(depth)}${']'.repeat(depth)}}`
      }
      case 3:
        return this.mutate(JSON.stringify(this.json()), '{}[]",:\\0123456789aeflnrstu ')
      default:
        return JSON.stringify(this.json())
    }
  }
}

/** What an answer breaks of the rules above, or undefined when it keeps them. */
function problem(outcome: RawOutcome, method: string, path: string): string | undefined {
  if (outcome.kind !== 'answer') return `no answer (${outcome.kind})`
  const { status, headers, body } = outcome.answer
  // `/` and `/console` redirect to the console, whose files are not JSON (docs/console.md).
  const pathname = path.split('?')[0] ?? ''
  if ((pathname === '/' || pathname === '/console') && (status === 301 || status === 302)) return undefined
  if (pathname.startsWith('/console/') && (status === 200 || status === 304)) return undefined
  if (!STATUSES.has(status)) return `status ${status}`
  if (method === 'HEAD' || status === 204) return body === '' ? undefined : `a body on ${status}`
  if ((headers['content-type'] ?? '').startsWith('text/plain')) return status === 200 && /^\/(api\/v1\/)?metrics$/.test(path) ? undefined : 'text'
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return `a body that is not JSON: ${body.slice(0, 80)}`
  }
  if (status < 400) return undefined
  const { error, message, ...rest } = (parsed ?? {}) as Record<string, unknown>
  if (typeof error !== 'string' || !ERROR_CODES.has(error)) return `error code ${String(error)}`
  if (message !== undefined && typeof message !== 'string') return 'a message that is not text'
  return Object.keys(rest).length === 0 ? undefined : `extra keys ${Object.keys(rest).join(',')}`
}

/** One request as bytes: request line, headers and body exactly as given. */
function request(method: string, target: string, headers: ReadonlyArray<[string, string]>, body?: string): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...headers.map(([k, v]) => `${k}: ${v}`)]
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`)
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`)
}

/** A failure message that carries the seed, so that the run can be replayed. */
const replay = (seed: number, what: string): string => `${what} (replay: FLEETGATE_FUZZ_SEED=${seed})`

describe('hostile input on the HTTP side (docs/protocol.md, docs/rest.md)', () => {
  let hub: TestHub
  let witness: Witness
  let port: number
  const tokens = tempDir()
  const seed = fuzzSeed('hostile HTTP', 0x4e77_b0d1)
  const inputs = new Inputs(seededRandom(seed))
  /** The failure limits would turn the fuzz's bad tokens into 429s for the witness too; they have their own tests. */
  const unlimited = { maxFailures: Number.MAX_SAFE_INTEGER, windowMs: 60_000 }

  const send = (bytes: Buffer, head = false): Promise<RawOutcome> => rawHttp(port, bytes, { head, waitMs: 5000 })
  const answered = (outcome: RawOutcome): RawAnswer => {
    if (outcome.kind !== 'answer') throw new Error(`no answer: ${outcome.kind}`)
    return outcome.answer
  }

  beforeAll(async () => {
    const tokensFile = writeTokensFile(tokens.path, { fuzz: { scope: 'reader', token: READER } })
    hub = await startTestHub({ FLEETGATE_TOKENS_FILE: tokensFile }, undefined, { authFailureLimit: unlimited, operatorAuthFailureLimit: unlimited })
    port = hub.hub.ports.http
    witness = await Witness.connect(hub.wsUrl, await hub.provision('witness'))
    await witness.ping()
    await hub.provision('fuzz-1')
    await hub.provision('fuzz-2', { tags: { site: 'a' } })
  })
  afterAll(async () => {
    witness?.close()
    await hub?.stop()
    tokens.cleanup()
  })

  it('answers random and mutated paths, queries and tokens with a well-formed answer and an expected status', async () => {
    for (let i = 0; i < 700; i++) {
      const method = inputs.pick(METHODS)
      const path = inputs.path()
      const token = inputs.pick(TOKENS)
      const headers: Array<[string, string]> = token === undefined ? [] : [['Authorization', token]]
      const target = `${path}${inputs.query()}`
      const outcome = await send(request(method, target, headers), method === 'HEAD')
      expect(problem(outcome, method, path), replay(seed, `${method} ${target} (${token ?? 'no token'})`)).toBeUndefined()
    }
    await assertHubServes(hub.base, witness)
  })

  it('answers random, broken and deeply nested bodies with a well-formed answer and an expected status', async () => {
    for (let i = 0; i < 500; i++) {
      const method = inputs.pick(['POST', 'POST', 'PATCH', 'PUT', 'GET', 'DELETE'])
      const path = inputs.chance(0.8) ? inputs.pick(TEMPLATES).replace(/\{id\}/g, () => inputs.pick(['fuzz-1', 'fuzz-2', 'nobody'])) : inputs.path()
      const body = inputs.body()
      const headers: Array<[string, string]> = [['Authorization', inputs.chance(0.9) ? ADMIN : `Bearer ${READER}`]]
      if (inputs.chance(0.8)) headers.push(['Content-Type', inputs.pick(['application/json', 'text/plain', 'application/json; charset=latin1'])])
      const outcome = await send(request(method, path, headers, body))
      expect(problem(outcome, method, path), replay(seed, `${method} ${path} ${String(body).slice(0, 200)}`)).toBeUndefined()
    }
    await assertHubServes(hub.base, witness)
  })

  it('refuses random device tokens on /v1/connect with 401 before any upgrade', async () => {
    const alphabet = 'v1.abcXYZ019-_%'
    for (let i = 0; i < 150; i++) {
      const token = inputs.chance(0.5) ? inputs.mutate(`v1.fuzz-1.${Math.floor(Date.now() / 1000) + 60}.${'A'.repeat(43)}`, alphabet) : inputs.mutate('', alphabet)
      const viaQuery = inputs.chance(0.5)
      const headers: Array<[string, string]> = [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
        ['Sec-WebSocket-Version', '13'],
      ]
      if (!viaQuery) headers.push(['Authorization', `Bearer ${token}`])
      const outcome = await send(request('GET', viaQuery ? `/v1/connect?token=${token}` : '/v1/connect', headers))
      expect(outcome.kind === 'answer' && [outcome.answer.status, outcome.answer.body], replay(seed, token)).toEqual([401, '{"error":"unauthorized"}'])
    }
    await assertHubServes(hub.base, witness)
  })

  it('answers a JSON body nested deeper than 64 levels 400 invalid, before any handler walks it', async () => {
    const deep = (depth: number): string => `{"name":"ping","params":${'['.repeat(depth)}${']'.repeat(depth)}}`
    const nested = { error: 'invalid', message: 'body: arrays and objects nest at most 64 levels deep' }
    // A device of its own: the fuzz above may have deleted its devices.
    await hub.provision('deep-1')
    // 10,000 levels overflowed JSON.stringify in the command check: a 500 for client garbage.
    for (const depth of [64, 10_000]) {
      const answer = answered(await send(request('POST', '/api/v1/devices/deep-1/commands', [['Authorization', ADMIN]], deep(depth))))
      expect([answer.status, JSON.parse(answer.body)]).toEqual([400, nested])
    }
    // Brackets inside strings are text, not nesting.
    const text = JSON.stringify({ name: 'ping', params: '['.repeat(1000), ttlMs: 1000 })
    expect(answered(await send(request('POST', '/api/v1/devices/deep-1/commands', [['Authorization', ADMIN]], text))).status).toBe(202)
    // Under the router's 64 levels, params meet the command's own limit, 31 levels (docs/security.md, Commands).
    const shallow = `{"name":"ping","ttlMs":1000,"params":${'['.repeat(31)}${']'.repeat(31)}}`
    expect(answered(await send(request('POST', '/api/v1/devices/deep-1/commands', [['Authorization', ADMIN]], shallow))).status).toBe(202)
  })

  it('answers raw requests no client would send, or leaves them to uWS, and never fails', async () => {
    const auth = `Authorization: ${ADMIN}\r\n`
    const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n'
    // uWS answers what it can parse. Bytes it refuses get no answer: it closes the connection, or
    // waits for the rest of a request it has not got whole until its own 10 s timeout, depending on
    // how the bytes arrive; either is `unanswered` here. A part of an answer is never acceptable.
    const cases: Array<[string, string, 'unanswered' | number]> = [
      ['not HTTP', 'GARBAGE\r\n\r\n', 'unanswered'],
      ['no HTTP version', 'GET /healthz\r\n\r\n', 'unanswered'],
      ['TLS hello on the plain port', '\x16\x03\x01\x00\xa5\x01\x00', 'unanswered'],
      ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'unanswered'],
      ['lower-case method', 'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 'unanswered'],
      ['unknown method', 'BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 'unanswered'],
      ['NUL in the path', 'GET /api/v1/dev\x00ices HTTP/1.1\r\nHost: x\r\n\r\n', 'unanswered'],
      ['header of 2 MB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(2_000_000)}\r\n\r\n`, 'unanswered'],
      ['500 headers', `GET /healthz HTTP/1.1\r\nHost: x\r\n${'X-A: b\r\n'.repeat(500)}\r\n`, 'unanswered'],
      ['Authorization of 10 KB', `GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(10_000)}\r\n\r\n`, 401],
      ['content-length not a number', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: abc\r\n\r\n{}`, 'unanswered'],
      ['negative content-length', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: -1\r\n\r\n{}`, 'unanswered'],
      ['content-length of 20 digits', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 99999999999999999999\r\n\r\n{}`, 'unanswered'],
      ['content-length over 1 MiB', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1048577\r\n\r\n{}`, 413],
      ['body shorter than its content-length', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 100\r\n\r\n{}`, 'unanswered'],
      ['content-length and chunked', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`, 'unanswered'],
      ['bad chunk size', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`, 'unanswered'],
      ['chunked body', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`, 400],
      ['POST without a body', `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400],
      ['body on a GET', `GET /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\n\r\nhello`, 200],
      ['malformed escape, no token', 'GET /api/v1/devices/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n', 401],
      ['malformed escape, a token', `GET /api/v1/devices/x/commands/% HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400],
      ['wrong method', `PUT /api/v1/devices HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 2\r\n\r\n{}`, 404],
      ['TRACE', 'TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 404],
      ['URL of 100 KB', `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 404],
      ['upgrade without a key', `GET /v1/connect HTTP/1.1\r\nHost: x\r\n${ws}\r\n`, 404],
      ['upgrade with a bad token escape', `GET /v1/connect?token=%ZZ HTTP/1.1\r\nHost: x\r\n${ws}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, 401],
      ['upgrade with a body', `GET /v1/connect HTTP/1.1\r\nHost: x\r\n${ws}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 5\r\n\r\nhello`, 401],
      ['POST to the device endpoint', 'POST /v1/connect HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 404],
    ]
    const outcomes = await Promise.all(cases.map(([, bytes]) => rawHttp(port, Buffer.from(bytes, 'latin1'), { waitMs: 400 })))
    cases.forEach(([name, , expected], i) => {
      const outcome = outcomes[i] as RawOutcome
      if (expected === 'unanswered') {
        expect(['closed', 'silent'], name).toContain(outcome.kind)
        return
      }
      expect(outcome.kind === 'answer' && outcome.answer.status, name).toBe(expected)
      expect(problem(outcome, 'GET', ''), name).toBeUndefined()
    })
    // What the hub echoes of a request is cut short: a 100 KB URL does not come back whole.
    const long = answered(outcomes[cases.findIndex(([name]) => name === 'URL of 100 KB')] as RawOutcome)
    expect(JSON.parse(long.body)).toEqual({ error: 'not_found', message: `no route GET /${'a'.repeat(255)}...` })
    await assertHubServes(hub.base, witness)
  })

  it('drops a client that pipelines requests and never reads the answers, instead of buffering them', async () => {
    const one = request('GET', '/api/v1/no-such-route', []).toString().replace('Connection: close\r\n', '')
    const burst = Buffer.from(one.repeat(1000))
    const limitBytes = 64 * 1024 * 1024
    const written = await new Promise<number>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' })
      socket.pause()
      let total = 0
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        socket.destroy()
        resolve(total)
      }
      socket.on('error', finish)
      socket.on('close', finish)
      socket.on('connect', async () => {
        while (!done && total < limitBytes) {
          total += burst.length
          if (!socket.write(burst)) await new Promise((resume) => socket.once('drain', resume).once('close', resume))
        }
        finish()
      })
    })
    // Without back-pressure on answers the hub read all 64 MiB and held every answer in memory.
    expect(written).toBeLessThan(limitBytes)
    await assertHubServes(hub.base, witness)
  })

  it('caught no exception anywhere in the run', async () => {
    const metrics = await fetch(`${hub.base}/metrics`, { headers: { authorization: ADMIN } })
    const text = await metrics.text()
    for (const where of ['http', 'upgrade', 'ws']) expect(text).toMatch(new RegExp(`^fleetgate_uncaught_errors_total\\{where="${where}"\\} 0$`, 'm'))
  })
})
