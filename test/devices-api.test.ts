import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, api, startTestHub, tempDir, type TestHub, writeTokensFile } from './support/hub.js'
import { connectDevice } from './support/ws.js'

const READER = 'reader-token-0123456789abcdef'
const OPERATOR = 'operator-token-0123456789abcdef'

describe('devices REST API (docs/rest.md)', () => {
  let hub: TestHub
  const tokens = tempDir()

  beforeAll(async () => {
    const tokensFile = writeTokensFile(tokens.path, {
      dashboard: { scope: 'reader', token: READER },
      oncall: { scope: 'operator', token: OPERATOR },
    })
    hub = await startTestHub({ FLEETGATE_TOKENS_FILE: tokensFile })
  })
  afterAll(async () => {
    await hub?.stop()
    tokens.cleanup()
  })

  it('creates an hmac device, shows its key once, and refuses the same id again', async () => {
    const created = await hub.api('POST', '/api/v1/devices', { id: 'thermo-1', tags: { site: 'lyon', floor: '2' } })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ id: 'thermo-1', keyType: 'hmac', tags: { site: 'lyon', floor: '2' }, disabled: false, online: false })
    expect(created.body.key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(new Date(created.body.createdAt).toISOString()).toBe(created.body.createdAt)

    const fetched = await hub.api('GET', '/api/v1/devices/thermo-1')
    expect(fetched.status).toBe(200)
    expect(fetched.body.key).toBeUndefined()
    expect(fetched.body).toEqual({
      id: 'thermo-1',
      keyType: 'hmac',
      tags: { site: 'lyon', floor: '2' },
      disabled: false,
      createdAt: created.body.createdAt,
      online: false,
    })

    const again = await hub.api('POST', '/api/v1/devices', { id: 'thermo-1' })
    expect(again).toEqual({ status: 409, body: { error: 'exists', message: 'device "thermo-1" exists' } })
  })

  it('creates ed25519 devices with a generated pair or an operator-made public key', async () => {
    const generated = await hub.api('POST', '/api/v1/devices', { id: 'ed-gen', keyType: 'ed25519' })
    expect(generated.status).toBe(201)
    expect(generated.body.keyType).toBe('ed25519')
    expect(generated.body.key).toBeUndefined()
    expect(generated.body.privateKey).toMatch(/^[A-Za-z0-9_-]+$/)

    const { generateKeyPairSync } = await import('node:crypto')
    const pair = generateKeyPairSync('ed25519')
    const raw = pair.publicKey.export({ format: 'jwk' }).x as string
    const brought = await hub.api('POST', '/api/v1/devices', { id: 'ed-own', publicKey: raw })
    expect(brought.status).toBe(201)
    expect(brought.body.keyType).toBe('ed25519')
    expect(brought.body.privateKey).toBeUndefined()
    expect(brought.body.key).toBeUndefined()

    const device = await connectDevice(hub.wsUrl, {
      deviceId: 'ed-own',
      keyType: 'ed25519',
      key: pair.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64url'),
    })
    expect(await device.next()).toMatchObject({ t: 'hello', dev: 'ed-own' })
    device.close()
  })

  it.each([
    [{ id: 'bad id' }, 'body.id: a device id is 1 to 64 of A-Z a-z 0-9 _ -'],
    [{ id: 'x'.repeat(65) }, 'body.id: a device id is 1 to 64 of A-Z a-z 0-9 _ -'],
    [{}, 'body.id: a device id is 1 to 64 of A-Z a-z 0-9 _ -'],
    [{ id: 'a', keyType: 'rsa' }, 'body.keyType: "hmac" or "ed25519"'],
    [{ id: 'a', keyType: 'hmac', publicKey: 'AAAA' }, 'body.publicKey: only an ed25519 device takes a public key'],
    [{ id: 'a', publicKey: 'AAAA' }, 'body.publicKey: an Ed25519 public key, 32 raw bytes or SPKI DER, base64url'],
    // The rules of a reading's `g`, checked by the device SDK's own frame check.
    [{ id: 'a', tags: { device: 'x' } }, 'body.tags: reserved key "device" (the hub sets it)'],
    [{ id: 'a', tags: { 'a b': 'x' } }, 'body.tags: bad key "a b", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$'],
    [{ id: 'a', tags: JSON.parse('{"__proto__":"x"}') as unknown }, 'body.tags: reserved key "__proto__"'],
    [{ id: 'a', tags: { site: '' } }, 'body.tags.site: empty text, expected 1 to 128 bytes'],
    [{ id: 'a', tags: { site: 1 } }, 'body.tags.site: expected text, got 1'],
    [{ id: 'a', tags: { site: 'é'.repeat(65) } }, 'body.tags.site: text of 130 bytes, at most 128'],
    [{ id: 'a', tags: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`t${i}`, 'v'])) }, 'body.tags: 17 tags, at most 16'],
    [{ id: 'a', colour: 'red' }, 'body: unknown field "colour"; it takes id, keyType, publicKey, tags'],
    [[], 'body: a device object {id, keyType?, publicKey?, tags?}'],
  ])('refuses %j with 400 invalid', async (body, message) => {
    expect(await hub.api('POST', '/api/v1/devices', body)).toEqual({ status: 400, body: { error: 'invalid', message } })
  })

  it('creates devices in bulk and reports each failure by id', async () => {
    const devices = [
      ...Array.from({ length: 50 }, (_, i) => ({ id: `bulk-${String(i).padStart(3, '0')}`, tags: { batch: i % 2 === 0 ? 'even' : 'odd' } })),
      { id: 'bulk-000' },
      { id: 'thermo-1' },
      { id: 'no good' },
    ]
    const result = await hub.api('POST', '/api/v1/devices/bulk', { devices })
    expect(result.status).toBe(200)
    expect(result.body.created).toHaveLength(50)
    expect(result.body.created[0].key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(result.body.errors).toEqual([
      { id: 'bulk-000', error: 'exists', message: 'device "bulk-000" is listed twice' },
      { id: 'no good', error: 'invalid', message: 'devices[52].id: a device id is 1 to 64 of A-Z a-z 0-9 _ -' },
      { id: 'thermo-1', error: 'exists', message: 'the device exists' },
    ])
    const tooMany = await hub.api('POST', '/api/v1/devices/bulk', { devices: Array.from({ length: 10_001 }, (_, i) => ({ id: `x${i}` })) })
    expect(tooMany).toEqual({ status: 400, body: { error: 'invalid', message: 'devices: at most 10000 per call' } })
  })

  it('lists devices by id with cursor paging, tag filters and the online filter', async () => {
    const pages: string[][] = []
    let after: string | null = null
    do {
      const page: { status: number; body: any } = await hub.api('GET', `/api/v1/devices?tag=batch:even&limit=10${after === null ? '' : `&after=${after}`}`)
      expect(page.status).toBe(200)
      pages.push(page.body.items.map((d: { id: string }) => d.id))
      after = page.body.next
    } while (after !== null)
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5])
    expect(pages.flat()).toEqual(Array.from({ length: 25 }, (_, i) => `bulk-${String(i * 2).padStart(3, '0')}`))

    const all = await hub.api('GET', '/api/v1/devices?limit=1000')
    expect(all.body.next).toBeNull()
    const ids = all.body.items.map((d: { id: string }) => d.id)
    expect(ids).toEqual([...ids].sort())
    expect(ids).toContain('thermo-1')

    const both = await hub.api('GET', '/api/v1/devices?tag=batch:odd&tag=missing:x')
    expect(both.body).toEqual({ items: [], next: null })

    const created = await hub.api('GET', '/api/v1/devices/bulk-001')
    expect(created.body.online).toBe(false)
    const bulk = await hub.api('POST', '/api/v1/devices', { id: 'online-1' })
    const device = await connectDevice(hub.wsUrl, { deviceId: 'online-1', keyType: 'hmac', key: bulk.body.key })
    await device.opening()
    const online = await hub.api('GET', '/api/v1/devices?online=true')
    expect(online.body.items.map((d: { id: string }) => d.id)).toEqual(['online-1'])
    expect(online.body.items[0].online).toBe(true)
    expect(typeof online.body.items[0].connectedAt).toBe('string')
    const offline = await hub.api('GET', '/api/v1/devices?online=false&limit=1000')
    expect(offline.body.items.map((d: { id: string }) => d.id)).not.toContain('online-1')
    device.close()

    for (const bad of ['limit=0', 'limit=1001', 'limit=ten', 'online=yes', 'tag=nocolon', 'after=bad%20id']) {
      const answer = await hub.api('GET', `/api/v1/devices?${bad}`)
      expect(answer.status, bad).toBe(400)
      expect(answer.body.error, bad).toBe('invalid')
    }
  })

  it('patches tags and the disabled flag, deletes, and answers 404 for unknown devices', async () => {
    await hub.api('POST', '/api/v1/devices', { id: 'patch-me', tags: { a: '1' } })
    const patched = await hub.api('PATCH', '/api/v1/devices/patch-me', { tags: { b: '2' }, disabled: true })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ id: 'patch-me', tags: { b: '2' }, disabled: true })
    expect((await hub.api('GET', '/api/v1/devices?tag=a:1')).body.items).toEqual([])
    expect((await hub.api('GET', '/api/v1/devices?tag=b:2')).body.items.map((d: { id: string }) => d.id)).toEqual(['patch-me'])
    expect((await hub.api('PATCH', '/api/v1/devices/patch-me', { disabled: 'no' })).body).toEqual({ error: 'invalid', message: 'disabled: true or false' })

    expect((await hub.api('DELETE', '/api/v1/devices/patch-me')).status).toBe(204)
    expect((await hub.api('GET', '/api/v1/devices?tag=b:2')).body.items).toEqual([])
    expect(await hub.api('GET', '/api/v1/devices/patch-me')).toEqual({ status: 404, body: { error: 'not_found', message: 'no device "patch-me"' } })
    expect((await hub.api('DELETE', '/api/v1/devices/patch-me')).status).toBe(404)
    expect((await hub.api('PATCH', '/api/v1/devices/patch-me', { disabled: false })).status).toBe(404)
    expect((await hub.api('POST', '/api/v1/devices/patch-me/key', {})).status).toBe(404)
  })

  it('answers 401 without a valid token and 403 when the scope is too low', async () => {
    const noToken = await fetch(`${hub.base}/api/v1/devices`)
    expect(noToken.status).toBe(401)
    expect(await noToken.json()).toEqual({ error: 'unauthorized', message: 'a valid operator token is required (Authorization: Bearer <token>)' })
    expect((await hub.api('GET', '/api/v1/devices', undefined, 'not-a-token')).status).toBe(401)

    expect((await hub.api('GET', '/api/v1/devices', undefined, READER)).status).toBe(200)
    expect((await hub.api('GET', '/api/v1/devices/thermo-1', undefined, OPERATOR)).status).toBe(200)
    for (const [method, path, body] of [
      ['POST', '/api/v1/devices', { id: 'nope' }],
      ['POST', '/api/v1/devices/bulk', { devices: [] }],
      ['PATCH', '/api/v1/devices/thermo-1', { disabled: true }],
      ['DELETE', '/api/v1/devices/thermo-1', undefined],
      ['POST', '/api/v1/devices/thermo-1/key', {}],
    ] as const) {
      for (const token of [READER, OPERATOR]) {
        const answer = await hub.api(method, path, body, token)
        expect(answer.status, `${method} ${path}`).toBe(403)
        expect(answer.body.error).toBe('forbidden')
      }
    }
    expect((await hub.api('GET', '/api/v1/devices/thermo-1')).body.disabled).toBe(false)
  })

  it('answers 429 too_many_requests to an address after 20 failed tokens in a window, before the token, and only to that address', async () => {
    const blocked = { localAddress: '127.0.2.1' }
    const other = { localAddress: '127.0.2.2' }
    for (const token of ['wrong-1', '', 'wrong-2']) expect((await api(hub.base, 'GET', '/api/v1/devices', undefined, token, blocked)).status).toBe(401)
    // A scope too low is no failed authentication: it does not count.
    for (let i = 0; i < 30; i++) expect((await api(hub.base, 'POST', '/api/v1/devices', { id: 'x' }, READER, blocked)).status).toBe(403)
    for (let i = 3; i < 20; i++) expect((await api(hub.base, 'GET', '/api/v1/devices/thermo-1', undefined, `wrong-${i}`, blocked)).status).toBe(401)
    const throttled = { error: 'too_many_requests', message: 'too many failed authentications from this address; retry later' }
    expect(await api(hub.base, 'GET', '/api/v1/devices', undefined, 'wrong-20', blocked)).toEqual({ status: 429, body: throttled })
    // A valid token from that address learns nothing either, until the window ends.
    expect(await api(hub.base, 'GET', '/api/v1/devices', undefined, ADMIN_TOKEN, blocked)).toEqual({ status: 429, body: throttled })
    expect((await api(hub.base, 'GET', '/healthz', undefined, ADMIN_TOKEN, blocked)).status).toBe(200)
    expect((await api(hub.base, 'GET', '/api/v1/devices', undefined, ADMIN_TOKEN, other)).status).toBe(200)
    expect((await api(hub.base, 'GET', '/api/v1/devices', undefined, 'wrong', other)).status).toBe(401)
  })

  it('answers a malformed percent-escape in a path 401 without a token and 400 invalid with one', async () => {
    for (const path of ['/api/v1/devices/%E0%A4%A', '/api/v1/devices/x/commands/%', '/api/v1/devices/%zz/telemetry']) {
      const anonymous = await fetch(`${hub.base}${path}`)
      expect(anonymous.status, path).toBe(401)
      expect(await hub.api('GET', path, undefined, READER), path).toEqual({
        status: 400,
        body: { error: 'invalid', message: 'path: a malformed percent-escape (RFC 3986 §2.1)' },
      })
    }
    expect((await fetch(`${hub.base}/healthz`)).status).toBe(200)
  })

  it('answers malformed JSON 400, a body over 1 MiB 413 and an unknown route 404', async () => {
    const malformed = await fetch(`${hub.base}/api/v1/devices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{"id": "x",',
    })
    expect(malformed.status).toBe(400)
    expect(((await malformed.json()) as { error: string }).error).toBe('malformed_json')

    const huge = await fetch(`${hub.base}/api/v1/devices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'big', tags: { a: 'x'.repeat(1024 * 1024) } }),
    })
    expect(huge.status).toBe(413)
    expect(await huge.json()).toEqual({ error: 'payload_too_large', message: 'the body is larger than 1048576 bytes' })

    expect(await hub.api('GET', '/api/v1/nothing-here')).toEqual({ status: 404, body: { error: 'not_found', message: 'no route GET /api/v1/nothing-here' } })
    const wrongMethod = await hub.api('PUT', '/api/v1/devices/thermo-1', {})
    expect(wrongMethod.status).toBe(404)
    expect(wrongMethod.body.error).toBe('not_found')
  })

  it('serves /healthz and /readyz without a token and /metrics to readers', async () => {
    expect(await (await fetch(`${hub.base}/healthz`)).json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${hub.base}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', checks: { store: 'ok', broker: 'off', influxdb: 'off' } })
    expect((await fetch(`${hub.base}/metrics`)).status).toBe(401)
    const metrics = await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${READER}` } })
    expect(metrics.status).toBe(200)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/)
    const text = await metrics.text()
    expect(text).toMatch(/^fleetgate_sessions 0$/m)
    expect(text).toMatch(/^fleetgate_connects_total\{outcome="accepted"\} 2$/m)
  })
})

describe('readiness with an unreachable InfluxDB', () => {
  it('answers /readyz 503 naming InfluxDB unreachable, and nothing of its address', async () => {
    const hub = await startTestHub({ FLEETGATE_INFLUX_URL: 'http://127.0.0.1:9' })
    try {
      const ready = await fetch(`${hub.base}/readyz`)
      expect(ready.status).toBe(503)
      expect(await ready.json()).toEqual({
        error: 'not_ready',
        message: 'influxdb: unreachable',
        checks: { store: 'ok', broker: 'off', influxdb: 'unreachable' },
      })
    } finally {
      await hub.stop()
    }
  })
})

describe('last seen (docs/rest.md: GET /devices/{id} lastSeenAt)', () => {
  const data = tempDir()
  afterAll(() => data.cleanup())

  const offline = async (hub: TestHub, id: string): Promise<any> => {
    const deadline = Date.now() + 2000
    for (;;) {
      const answer = await hub.api('GET', `/api/v1/devices/${id}`)
      if (answer.body.online === false || Date.now() > deadline) return answer.body
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  it('shows lastSeenAt while online, keeps it once the device left, and after a restart', async () => {
    let seen: string
    const first = await startTestHub({}, data.path)
    try {
      const credentials = await first.provision('seen-1')
      expect((await first.api('GET', '/api/v1/devices/seen-1')).body).not.toHaveProperty('lastSeenAt')
      const device = await connectDevice(first.wsUrl, credentials)
      await device.opening()
      const live = (await first.api('GET', '/api/v1/devices/seen-1')).body
      expect(live).toMatchObject({ online: true, lastSeenAt: live.connectedAt })
      device.close()
      await device.closed
      const left = await offline(first, 'seen-1')
      expect(left.online).toBe(false)
      expect(left).not.toHaveProperty('connectedAt')
      seen = left.lastSeenAt
      expect(Date.parse(seen)).toBeGreaterThanOrEqual(Date.parse(live.connectedAt))
      expect((await first.api('GET', '/api/v1/devices?limit=10')).body.items).toEqual([left])
    } finally {
      await first.hub.stop()
    }
    const second = await startTestHub({}, data.path)
    try {
      expect((await second.api('GET', '/api/v1/devices/seen-1')).body).toMatchObject({ online: false, lastSeenAt: seen })
    } finally {
      await second.hub.stop()
    }
  })
})
