import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Witness } from '../../test/support/hostile.js'
import { tempDir } from '../../test/support/hub.js'
import { connectDevice, connectRaw, type Credentials } from '../../test/support/ws.js'
import { realClock } from '@fleetgate/device-sdk'
import { DeviceAuthenticator, FailureLimiter, OperatorAuthenticator, tokenDigest } from '../src/auth/index.js'
import { Registry, Sessions } from '../src/devices/index.js'
import { HubMetrics, type UncaughtWhere } from '../src/observability/index.js'
import { openLmdbStores, type HubStores } from '../src/store/index.js'
import { Ingest } from '../src/telemetry/index.js'
import { commitTarget } from '../src/telemetry/commit-target.js'
import { GuardedApp, loadNativeUws, mountDeviceEndpoint, Router } from '../src/transport/index.js'

const uws = loadNativeUws()
const INTERNAL = { error: 'internal', message: 'internal error; see the hub log' }

/** A real uWS app on 127.0.0.1:0 behind the guard, with every caught error kept and counted. */
class GuardedServer {
  readonly app: TemplatedApp = uws.App()
  readonly metrics = new HubMetrics({ sessions: () => 0, spoolBytes: () => 0, pendingFrames: () => 0, historyBytes: () => undefined, eventStreams: () => 0 })
  readonly caught: Array<{ where: UncaughtWhere; err: unknown; detail: Readonly<Record<string, unknown>> }> = []
  readonly guarded = new GuardedApp(this.app, (where, err, detail) => {
    this.metrics.uncaught(where)
    this.caught.push({ where, err, detail })
  })
  #socket: us_listen_socket | undefined
  port = 0

  async listen(): Promise<void> {
    this.#socket = await new Promise<us_listen_socket>((resolve, reject) =>
      this.app.listen('127.0.0.1', 0, (socket) => (socket === false ? reject(new Error('cannot listen')) : resolve(socket))),
    )
    this.port = uws.us_socket_local_port(this.#socket as unknown as us_socket)
  }

  close(): void {
    if (this.#socket !== undefined) uws.us_listen_socket_close(this.#socket)
  }

  async counted(where: UncaughtWhere): Promise<number> {
    const metric = await this.metrics.uncaughtErrors.get()
    return metric.values.find((v) => v.labels['where'] === where)?.value ?? -1
  }
}

describe('the uWS guard: REST routes that throw', () => {
  const server = new GuardedServer()
  const base = (): string => `http://127.0.0.1:${server.port}`
  const get = async (path: string, init?: RequestInit): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${base()}${path}`, init)
    return { status: res.status, body: await res.json() }
  }

  beforeAll(async () => {
    const token = 'router-test-token-0123456789'
    const router = new Router(server.guarded, new OperatorAuthenticator([{ name: 'admin', scope: 'admin', sha256: tokenDigest(token) }]), new FailureLimiter(undefined, realClock))
    const open = { scope: undefined, body: 'none' } as const
    router.route('get', '/ok', open, () => ({ status: 200, body: { ok: true } }))
    router.route('get', '/sync', open, () => {
      throw new Error('thrown synchronously')
    })
    router.route('get', '/async', open, async () => {
      await new Promise((resolve) => setTimeout(resolve, 5))
      throw new Error('thrown after an await')
    })
    router.route('post', '/body', { scope: undefined, body: 'required' }, () => {
      throw new Error('thrown after reading a body')
    })
    // A reply JSON cannot hold: serializing it throws before anything is written.
    router.route('get', '/bigint', open, () => ({ status: 200, body: { n: 1n } }))
    router.route('get', '/things/:id', open, ({ params }) => ({ status: 200, body: { id: params[0] } }))
    server.guarded.http('get', '/unanswered', () => undefined)
    router.fallback()
    await server.listen()
  })
  afterAll(() => server.close())

  it('answers 500 internal to a throw, synchronous, after an await or after a body, and then serves the next request', async () => {
    const cases: Array<[string, RequestInit | undefined, string]> = [
      ['/sync', undefined, 'thrown synchronously'],
      ['/async', undefined, 'thrown after an await'],
      ['/body', { method: 'POST', body: JSON.stringify({ some: 'body'.repeat(10_000) }) }, 'thrown after reading a body'],
      ['/bigint', undefined, 'BigInt'],
      ['/unanswered', undefined, 'GET /unanswered: the handler returned without answering'],
    ]
    for (const [path, init, message] of cases) {
      expect(await get(path, init), path).toEqual({ status: 500, body: INTERNAL })
      expect(await get('/ok'), `after ${path}`).toEqual({ status: 200, body: { ok: true } })
      const last = server.caught.at(-1)
      expect(last?.where).toBe('http')
      expect(last?.detail).toMatchObject({ url: path, address: '127.0.0.1' })
      expect((last?.err as Error).stack).toContain(message)
    }
    expect(await server.counted('http')).toBe(cases.length)
  })

  it('answers a malformed percent-escape in a path 400 invalid', async () => {
    for (const path of ['/things/%E0%A4%A', '/things/%', '/things/a%zz']) {
      expect(await get(path), path).toEqual({ status: 400, body: { error: 'invalid', message: 'path: a malformed percent-escape (RFC 3986 §2.1)' } })
    }
    expect(await get('/things/a%2Fb%20c')).toEqual({ status: 200, body: { id: 'a/b c' } })
  })
})

describe('the uWS guard: a device endpoint whose collaborators throw', () => {
  const server = new GuardedServer()
  const dir = tempDir('fleetgate-guard-')
  let store: HubStores
  let registry: Registry
  let ingest: Ingest
  let witness: Witness
  const logged: Array<Record<string, unknown>> = []
  const wsUrl = (): string => `ws://127.0.0.1:${server.port}/v1/connect`

  const device = async (id: string): Promise<Credentials> => {
    const created = await registry.create({ id, keyType: 'hmac', tags: {} })
    if (created === undefined || !('key' in created.secret)) throw new Error(`cannot create ${id}`)
    return { deviceId: id, keyType: 'hmac', key: created.secret.key as string }
  }

  beforeAll(async () => {
    store = openLmdbStores(dir.path)
    registry = new Registry(store.registry, realClock)
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logged.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
          done()
        },
      }),
    )
    ingest = new Ingest({
      target: commitTarget({ spool: { store: store.spool, maxBytes: 1 << 30 } }),
      log,
      counters: server.metrics,
      publish: () => undefined,
      ratePerSec: 100,
      clock: realClock,
    })
    const authenticator = new DeviceAuthenticator(registry, realClock)
    mountDeviceEndpoint(server.guarded, {
      authenticator: {
        verify(token) {
          if (token === 'v1.throws.1.x') throw new Error('the store failed during a token check')
          if (token === 'v1.rejects.1.x') return Promise.reject(new Error('node:crypto failed'))
          return authenticator.verify(token)
        },
      },
      failures: new FailureLimiter(undefined, realClock),
      sessions: new Sessions({
        online(session) {
          if (session.deviceId === 'open-throws') throw new Error('online hook failed')
          // as the hub does (docs/twins.md): the desired twin after hello
          session.send({ t: 'twd', v: 0, d: {} })
        },
        offline(session) {
          if (session.deviceId === 'close-throws') throw new Error('offline hook failed')
        },
      }),
      ingest: {
        windowFrames: ingest.windowFrames,
        newState: () => ingest.newState(),
        refuseInvalid: (peer, s) => ingest.refuseInvalid(peer, s),
        admitResult: (peer) => ingest.admitResult(peer),
        admitTwinReport: (peer) => ingest.admitTwinReport(peer),
        closed: (peer) => ingest.closed(peer),
        drained: (peer) => ingest.drained(peer),
        accept(peer, frame, raw) {
          if (frame.t === 'tm' && 'boom' in frame.m) throw new Error('ingest failed on a frame')
          ingest.accept(peer, frame, raw)
        },
      },
      commands: {
        result() {
          throw new Error('a command result failed')
        },
        invalidResult: () => undefined,
        drained: () => undefined,
      },
      twins: {
        report() {
          throw new Error('a twin report failed')
        },
        refuse: () => undefined,
        drained: () => undefined,
      },
      metrics: server.metrics,
      log,
      version: '0.0.0-test',
      maxFrameBytes: 65_536,
      deviceRatePerSec: 100,
      idleTimeoutSec: 60,
      clock: realClock,
    })
    await server.listen()
    witness = await Witness.connect(wsUrl(), await device('witness'))
    await witness.ping()
  })
  afterAll(async () => {
    witness?.close()
    server.close()
    await ingest?.drain()
    await store?.close()
    dir.cleanup()
  })

  it('answers 500 to an upgrade whose token check throws or rejects, and keeps serving', async () => {
    for (const token of ['v1.throws.1.x', 'v1.rejects.1.x']) {
      expect(await connectRaw(wsUrl(), { token }), token).toEqual({ ok: false, status: 500, body: JSON.stringify(INTERNAL) })
      await witness.ping()
    }
    expect(await server.counted('upgrade')).toBe(2)
    expect(server.caught.map((c) => (c.err as Error).message)).toEqual(['the store failed during a token check', 'node:crypto failed'])
    // The query string (a token may travel there) never reaches the report.
    expect(server.caught[0]?.detail).toEqual({ method: 'GET', url: '/v1/connect', address: '127.0.0.1' })
  })

  it('closes only the session whose frame, result, report, open or close throws, with 1011, and the witness keeps its acks', async () => {
    const before = server.caught.length
    const acked = witness.acked.length
    const frame = await connectDevice(wsUrl(), await device('frame-throws'))
    expect((await frame.next()).t).toBe('hello')
    frame.send({ t: 'tm', s: 1, m: { boom: 1 } })
    expect(await frame.closed).toEqual({ code: 1011, reason: 'internal error' })
    await witness.ping()

    const result = await connectDevice(wsUrl(), await device('result-throws'))
    expect((await result.next()).t).toBe('hello')
    result.send({ t: 'res', id: 'c1', ok: true })
    expect(await result.closed).toEqual({ code: 1011, reason: 'internal error' })
    await witness.ping()

    const report = await connectDevice(wsUrl(), await device('report-throws'))
    await report.opening()
    report.send({ t: 'twr', id: 'r1', p: { a: 1 } })
    expect(await report.closed).toEqual({ code: 1011, reason: 'internal error' })
    await witness.ping()

    const opened = await connectDevice(wsUrl(), await device('open-throws'))
    expect((await opened.next()).t).toBe('hello')
    expect(await opened.closed).toEqual({ code: 1011, reason: 'internal error' })
    await witness.ping()

    const closing = await connectDevice(wsUrl(), await device('close-throws'))
    expect((await closing.next()).t).toBe('hello')
    closing.ws.close(1000)
    await closing.closed
    await witness.ping()

    const caught = server.caught.slice(before)
    expect(caught.map((c) => [c.where, c.detail['callback'], (c.err as Error).message])).toEqual([
      ['ws', 'message', 'ingest failed on a frame'],
      ['ws', 'message', 'a command result failed'],
      ['ws', 'message', 'a twin report failed'],
      ['ws', 'open', 'online hook failed'],
      ['ws', 'close', 'offline hook failed'],
    ])
    expect(await server.counted('ws')).toBe(5)
    expect(witness.acked).toHaveLength(acked + 5)
  })
})
