import { createHmac } from 'node:crypto'
import { connect as tcpConnect } from 'node:net'
import { Encoder } from 'cbor-x'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { base64urlEncode, encodeFrame } from '@fleetgate/device-sdk/wire'
import { startTestHub, type TestHub } from './support/hub.js'
import { OpenDevices, connectDevice, connectRaw, tokenFor, type Credentials, type RawDevice } from './support/ws.js'

const UNAUTHORIZED = { ok: false, status: 401, body: '{"error":"unauthorized"}' }
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true })

describe('device endpoint /v1/connect (docs/protocol.md)', () => {
  let hub: TestHub
  const devices = new OpenDevices()
  let address = 1
  // Each refusal test connects from its own loopback address, so the per-address failure limit of
  // one test never answers another's connects with 429.
  const nextAddress = (): string => `127.0.1.${address++}`

  const provision = (id: string, keyType: 'hmac' | 'ed25519' = 'hmac'): Promise<Credentials> => hub.provision(id, { keyType })
  const connect = async (device: Credentials): Promise<RawDevice> => devices.track(await connectDevice(hub.wsUrl, device))

  const refusedWith = async (token: string): Promise<unknown> => connectRaw(hub.wsUrl, { token, localAddress: nextAddress() })

  beforeAll(async () => {
    hub = await startTestHub({ FLEETGATE_MAX_FRAME: '1024' })
  })
  afterEach(() => devices.closeAll())
  afterAll(async () => {
    await hub?.stop()
  })

  it('opens a session with header or query token and sends hello first', async () => {
    for (const keyType of ['hmac', 'ed25519'] as const) {
      const device = await provision(`hello-${keyType}`, keyType)
      for (const query of [false, true]) {
        const ws = await connectDevice(hub.wsUrl, device, { query })
        devices.track(ws)
        const hello = await ws.next()
        expect(hello).toMatchObject({ t: 'hello', dev: device.deviceId, lim: { frame: 1024, batch: 500, rate: 100, window: 64 } })
        expect(hello.t === 'hello' && Math.abs(hello.now - Date.now()) < 5000).toBe(true)
        expect(hello.t === 'hello' && hello.v).toMatch(/^\d+\.\d+\.\d+/)
        // docs/twins.md: the desired twin right after hello, also when empty
        expect(await ws.next()).toStrictEqual({ t: 'twd', v: 0, d: {} })
      }
    }
  })

  it('answers every bad token 401 {"error":"unauthorized"} before any upgrade', async () => {
    const device = await provision('auth-target')
    const now = Math.floor(Date.now() / 1000)
    const sign = (id: string, exp: number, key = device.key): string => {
      const signed = `v1.${id}.${exp}`
      return `${signed}.${base64urlEncode(createHmac('sha256', Buffer.from(key, 'base64url')).update(signed).digest())}`
    }
    const other = await provision('auth-other')
    const cases: Array<[string, string]> = [
      ['garbage', 'hello'],
      ['empty', ''],
      ['wrong version', sign('auth-target', now + 60).replace(/^v1/, 'v2')],
      ['unknown device', sign('nobody', now + 60)],
      ['expired beyond the 30 s skew', sign('auth-target', now - 31)],
      ['more than 24 h ahead', sign('auth-target', now + 24 * 3600 + 60)],
      ["another device's key", sign('auth-target', now + 60, other.key)],
      ['signature of other text', `v1.auth-target.${now + 60}.${sign('auth-target', now + 61).split('.')[3]}`],
      ['truncated signature', sign('auth-target', now + 60).slice(0, -2)],
    ]
    for (const [name, token] of cases) expect(await refusedWith(token), name).toEqual(UNAUTHORIZED)
    // Inside the skew window the token still opens a session.
    const skewed = await connectRaw(hub.wsUrl, { token: sign('auth-target', now - 10) })
    expect(skewed.ok).toBe(true)
    if (skewed.ok) devices.track(skewed.ws)
    const noToken = await connectRaw(hub.wsUrl, { localAddress: nextAddress() })
    expect(noToken).toEqual(UNAUTHORIZED)
  })

  it('refuses a disabled device and lets it in again once enabled', async () => {
    const device = await provision('toggled')
    await hub.api('PATCH', '/api/v1/devices/toggled', { disabled: true })
    expect(await refusedWith(await tokenFor(device))).toEqual(UNAUTHORIZED)
    await hub.api('PATCH', '/api/v1/devices/toggled', { disabled: false })
    expect((await connect(device)).ws.readyState).toBe(1)
  })

  it('answers 429 to an address after repeated failures, and only to that address', async () => {
    const blocked = nextAddress()
    for (let i = 0; i < 20; i++) expect(await connectRaw(hub.wsUrl, { token: 'bad', localAddress: blocked })).toEqual(UNAUTHORIZED)
    const device = await provision('throttled-good')
    const throttled = await connectRaw(hub.wsUrl, { token: await tokenFor(device), localAddress: blocked })
    expect(throttled.ok).toBe(false)
    expect(throttled.ok === false && throttled.status).toBe(429)
    expect((await connectRaw(hub.wsUrl, { token: await tokenFor(device), localAddress: nextAddress() })).ok).toBe(true)
  })

  it('replaces an older session with 4001', async () => {
    const device = await provision('twice')
    const first = await connect(device)
    await first.opening()
    const second = await connect(device)
    expect(await second.next()).toMatchObject({ t: 'hello' })
    expect(await first.closed).toEqual({ code: 4001, reason: 'replaced by a newer session' })
    expect((await hub.api('GET', '/api/v1/devices/twice')).body.online).toBe(true)
  })

  it.each([
    ['disabling', 'PATCH', '/api/v1/devices/revoke-patch', { disabled: true }, 'device disabled'],
    ['deleting', 'DELETE', '/api/v1/devices/revoke-delete', undefined, 'device deleted'],
    ['rotating with disconnect', 'POST', '/api/v1/devices/revoke-key/key', { disconnect: true }, 'device key rotated'],
  ])('closes the live session with 4003 within 1 s when %s', async (_name, method, path, body, reason) => {
    const device = await provision(path.split('/')[4] as string)
    const ws = await connect(device)
    await ws.opening()
    const started = Date.now()
    await hub.api(method, path, body)
    expect(await ws.closed).toEqual({ code: 4003, reason })
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('rotates keys: without grace the old key stops at once, with grace it works until the grace ends', async () => {
    const device = await provision('rotating')
    const live = await connect(device)
    await live.opening()
    const rotated = await hub.api('POST', '/api/v1/devices/rotating/key', {})
    expect(rotated.status).toBe(200)
    expect(Object.keys(rotated.body)).toEqual(['key'])
    expect(rotated.body.key).not.toBe(device.key)
    // docs/protocol.md: the live session does not end without `disconnect`.
    live.send({ t: 'res', id: 'c1', ok: true })
    expect(live.ws.readyState).toBe(1)
    expect(await refusedWith(await tokenFor(device))).toEqual(UNAUTHORIZED)
    const fresh = { ...device, key: rotated.body.key as string }
    expect((await connect(fresh)).ws.readyState).toBe(1)

    const graced = await hub.api('POST', '/api/v1/devices/rotating/key', { graceSec: 2 })
    const newest = { ...device, key: graced.body.key as string }
    expect((await connect(fresh)).ws.readyState).toBe(1)
    expect((await connect(newest)).ws.readyState).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    expect(await refusedWith(await tokenFor(fresh))).toEqual(UNAUTHORIZED)
    expect((await connect(newest)).ws.readyState).toBe(1)

    const edDevice = await provision('rotating-ed', 'ed25519')
    const edRotated = await hub.api('POST', '/api/v1/devices/rotating-ed/key')
    expect(Object.keys(edRotated.body)).toEqual(['privateKey'])
    expect((await connect({ ...edDevice, key: edRotated.body.privateKey })).ws.readyState).toBe(1)
    expect(await refusedWith(await tokenFor(edDevice))).toEqual(UNAUTHORIZED)
  })

  it('closes with 1003 for text, 1007 for non-CBOR, non-map or unknown t, and 1009 over the frame limit', async () => {
    const bystander = await connect(await provision('bystander'))
    await bystander.opening()
    const cases: Array<[string, Uint8Array | string, number, string]> = [
      ['a text frame', 'hello', 1003, 'text'],
      ['bytes that are not CBOR', new Uint8Array([0xff, 0xfe, 0x00]), 1007, 'not_cbor'],
      ['a CBOR array', cbor.encode([1, 2, 3]), 1007, 'not_map'],
      ['a map without t', cbor.encode({ s: 1 }), 1007, 'unknown_type'],
      ['a map with an unknown t', cbor.encode({ t: 'zz', s: 1 }), 1007, 'unknown_type'],
      ['telemetry without a valid s', cbor.encode({ t: 'tm', s: -1, m: { a: 1 } }), 1007, 'invalid'],
    ]
    let n = 0
    for (const [name, data, code, e] of cases) {
      const ws = await connect(await provision(`bad-frame-${n++}`))
      await ws.opening()
      ws.sendRaw(data)
      const err = await ws.next()
      expect(err, name).toMatchObject({ t: 'err', e })
      expect((await ws.closed).code, name).toBe(code)
    }
    const big = await connect(await provision('too-big'))
    await big.opening()
    big.sendRaw(new Uint8Array(1025))
    expect(await big.next()).toEqual({ t: 'err', e: 'too_big', msg: 'a frame is at most 1024 bytes' })
    expect(await big.closed).toEqual({ code: 1009, reason: 'a frame is at most 1024 bytes' })

    // Nothing of that touched another device's session.
    expect(bystander.ws.readyState).toBe(1)
    bystander.send({ t: 'res', id: 'still-here', ok: true })
    expect((await hub.api('GET', '/api/v1/devices/bystander')).body.online).toBe(true)
  })

  it('naks an invalid telemetry frame that has a valid s and keeps the session', async () => {
    const ws = await connect(await provision('nak-me'))
    await ws.opening()
    ws.sendRaw(cbor.encode({ t: 'tm', s: 7, m: { temp: 'x'.repeat(257) } }))
    expect(await ws.next()).toEqual({ t: 'nak', s: 7, e: 'invalid' })
    ws.sendRaw(encodeFrame({ t: 'tb', s: 8, r: [] }))
    expect(await ws.next()).toEqual({ t: 'nak', s: 8, e: 'invalid' })
    expect(ws.ws.readyState).toBe(1)
  })

  it('closes a silent connection after the idle timeout', async () => {
    const idleHub = await startTestHub({ FLEETGATE_IDLE_SEC: '8' })
    try {
      const created = await idleHub.api('POST', '/api/v1/devices', { id: 'silent' })
      const token = await tokenFor({ deviceId: 'silent', keyType: 'hmac', key: created.body.key })
      // A raw TCP client completes the upgrade and then answers nothing, not even pings.
      const socket = tcpConnect(idleHub.hub.ports.http, '127.0.0.1')
      socket.write(
        `GET /v1/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      )
      let received = ''
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
      const started = Date.now()
      await new Promise<void>((resolve) => socket.once('close', () => resolve()))
      const elapsed = Date.now() - started
      expect(received.startsWith('HTTP/1.1 101')).toBe(true)
      // Never before FLEETGATE_IDLE_SEC of silence, at most one 4 s uWS tick after.
      expect(elapsed).toBeGreaterThanOrEqual(8000)
      expect(elapsed).toBeLessThan(14_000)
      expect((await idleHub.api('GET', '/api/v1/devices/silent')).body.online).toBe(false)
    } finally {
      await idleHub.stop()
    }
  }, 40_000)
})
