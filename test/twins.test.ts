// Device twins through the wire and REST (docs/twins.md, the `twin.desired` audit of docs/rest.md,
// the retained topic of docs/mqtt.md): a real hub in-process, raw devices speaking CBOR frames, a real MQTT client.
import { encodeFrame, type HubFrame, type TwinDocument } from '@fleetgate/device-sdk/wire'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hubMetrics } from './support/hostile.js'
import { startTestHub, tempDir, writeTokensFile, type TestHub } from './support/hub.js'
import { connectMqtt } from './support/mqtt-client.js'
import { eventually } from './support/telemetry.js'
import { connectDevice, OpenDevices, type RawDevice } from './support/ws.js'

const READER = 'twin-reader-token-0123456789'
const OPERATOR = 'twin-operator-token-0123456789'

const dir = tempDir()
let hub: TestHub
const devices = new OpenDevices()

beforeAll(async () => {
  hub = await startTestHub({
    FLEETGATE_MQTT_PORT: '0',
    FLEETGATE_TOKENS_FILE: writeTokensFile(dir.path, { viewer: { scope: 'reader', token: READER }, ops: { scope: 'operator', token: OPERATOR } }),
  })
})
afterEach(() => devices.closeAll())
afterAll(async () => {
  await hub.stop()
  dir.cleanup()
})

const twinPath = (id: string): string => `/api/v1/devices/${id}/twin`
const patch = (id: string, body: unknown, token = OPERATOR) => hub.api('PATCH', twinPath(id), body, token)
const getTwin = async (id: string, token = READER): Promise<Record<string, unknown>> => {
  const answer = await hub.api('GET', twinPath(id), undefined, token)
  expect(answer.status).toBe(200)
  return answer.body as Record<string, unknown>
}

/** Connects a device and takes its hello and the twd after it. */
async function online(id: string): Promise<{ ws: RawDevice; twd: HubFrame }> {
  const ws = devices.track(await connectDevice(hub.wsUrl, credentials(id)))
  const { twd } = await ws.opening()
  return { ws, twd }
}
const keys = new Map<string, string>()
async function provisioned(id: string): Promise<{ deviceId: string; keyType: 'hmac'; key: string }> {
  const creds = await hub.provision(id)
  keys.set(id, creds.key)
  return { deviceId: id, keyType: 'hmac', key: creds.key }
}
function credentials(id: string): { deviceId: string; keyType: 'hmac'; key: string } {
  const key = keys.get(id)
  if (key === undefined) throw new Error(`no key for ${id}`)
  return { deviceId: id, keyType: 'hmac', key }
}

/** Sends a twr and returns the twa for it. */
async function report(ws: RawDevice, id: string, p: TwinDocument): Promise<HubFrame> {
  ws.send({ t: 'twr', id, p })
  return await ws.next()
}

describe('twins over REST (docs/twins.md)', () => {
  it('a device that never changed has the empty twin; an unknown device is 404', async () => {
    await provisioned('tw-empty')
    expect(await getTwin('tw-empty')).toStrictEqual({ device: 'tw-empty', desired: {}, desiredVersion: 0, reported: {}, reportedVersion: 0, delta: {} })
    expect(await hub.api('GET', twinPath('tw-nobody'), undefined, READER)).toMatchObject({ status: 404, body: { error: 'not_found' } })
    expect(await patch('tw-nobody', { desired: { a: 1 } })).toMatchObject({ status: 404, body: { error: 'not_found' } })
  })

  it('readers read, operators change desired, readers may not', async () => {
    await provisioned('tw-scope')
    expect(await patch('tw-scope', { desired: { a: 1 } }, READER)).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    expect(await hub.api('GET', twinPath('tw-scope'), undefined, 'wrong-token-0123456789')).toMatchObject({ status: 401 })
    expect((await getTwin('tw-scope'))['desiredVersion']).toBe(0)
    const changed = await patch('tw-scope', { desired: { a: 1 } })
    expect(changed.status).toBe(200)
    expect(changed.body).toMatchObject({ device: 'tw-scope', desired: { a: 1 }, desiredVersion: 1, delta: { a: 1 } })
    expect(Date.parse(changed.body.desiredAt as string)).toBeGreaterThan(Date.now() - 60_000)
    expect(changed.body.reportedAt).toBeUndefined()
  })

  it('merges per RFC 7386, keeps the version on a patch that changes nothing, and checks ifVersion', async () => {
    await provisioned('tw-merge')
    expect((await patch('tw-merge', { desired: { mode: 'eco', fan: { speed: 2, timer: 30 }, list: [1, 2] } })).body.desiredVersion).toBe(1)
    const merged = await patch('tw-merge', { desired: { mode: null, fan: { timer: null, swing: true }, list: [3] }, ifVersion: 1 })
    expect(merged.body).toMatchObject({ desired: { fan: { speed: 2, swing: true }, list: [3] }, desiredVersion: 2 })
    expect(merged.body.desired).toStrictEqual({ fan: { speed: 2, swing: true }, list: [3] })
    for (const noop of [{}, { mode: null }, { list: [3] }, { fan: { speed: 2 } }]) {
      expect((await patch('tw-merge', { desired: noop })).body.desiredVersion, JSON.stringify(noop)).toBe(2)
    }
    const conflict = await patch('tw-merge', { desired: { mode: 'x' }, ifVersion: 1 })
    expect(conflict).toMatchObject({ status: 409, body: { error: 'version_conflict' } })
    expect(conflict.body.message).toBe('ifVersion 1 is not the current desired version 2')
    expect(await patch('tw-merge', { desired: {}, ifVersion: 7 })).toMatchObject({ status: 409, body: { error: 'version_conflict' } })
    expect((await getTwin('tw-merge'))['desired']).toStrictEqual({ fan: { speed: 2, swing: true }, list: [3] })
  })

  it('holds documents to 32 KiB, 8 levels, keys of 1 to 128 bytes without $; refuses bad bodies with what is wrong', async () => {
    await provisioned('tw-limits')
    const nested = (levels: number): TwinDocument => {
      let value: TwinDocument = { leaf: 1 }
      for (let i = 1; i < levels; i++) value = { n: value }
      return value
    }
    // {"k":"..."}: 8 bytes around the text
    const exact = { k: 'x'.repeat(32 * 1024 - 8) }
    expect((await patch('tw-limits', { desired: exact })).status).toBe(200)
    const over = await patch('tw-limits', { desired: { k: 'x'.repeat(32 * 1024 - 7) } })
    expect(over).toMatchObject({ status: 413, body: { error: 'too_large', message: 'the desired document would be 32769 bytes as compact JSON, more than 32768' } })
    // the limit is on the document after the merge: a small patch onto a full one is too large too
    expect(await patch('tw-limits', { desired: { more: 1 } })).toMatchObject({ status: 413, body: { error: 'too_large' } })
    expect((await patch('tw-limits', { desired: { k: null } })).body.desiredVersion).toBe(2)
    expect((await patch('tw-limits', { desired: nested(8) })).status).toBe(200)
    expect((await patch('tw-limits', { desired: { [`${'é'.repeat(64)}`]: 1 } })).status).toBe(200)
    const refused: ReadonlyArray<readonly [unknown, string]> = [
      [{ desired: nested(9) }, 'desired.n.n.n.n.n.n.n.n: nests deeper than 8 levels'],
      [{ desired: { [`${'é'.repeat(64)}x`]: 1 } }, `desired: key "${'é'.repeat(64)}" is 129 bytes, expected 1 to 128 bytes`],
      [{ desired: { '': 1 } }, 'desired: key "" is 0 bytes, expected 1 to 128 bytes'],
      [{ desired: { a: { $set: 1 } } }, 'desired.a: key "$set" starts with $ (reserved)'],
      [{ desired: [1] }, 'desired: expected a JSON object, got an array'],
      [{ desired: null }, 'desired: expected a JSON object, got null'],
      [{}, 'desired: required, a merge patch (a JSON object)'],
      [{ desired: {}, ifVersion: -1 }, 'ifVersion: a whole number from 0 to 9007199254740991'],
      [{ desired: {}, ifVersion: 1.5 }, 'ifVersion: a whole number from 0 to 9007199254740991'],
      [{ desired: {}, reported: {} }, 'body: unknown field "reported"; it takes desired, ifVersion'],
      [[], 'body: an object {desired, ifVersion?}'],
    ]
    for (const [body, message] of refused) expect(await patch('tw-limits', body), JSON.stringify(body).slice(0, 80)).toMatchObject({ status: 400, body: { error: 'invalid', message } })
    expect((await getTwin('tw-limits'))['desiredVersion']).toBe(4)
  })

  it('keeps a __proto__ key as an own member, in REST and on MQTT alike', async () => {
    await provisioned('tw-proto')
    const body = '{"desired":{"__proto__":{"x":1},"a":{"__proto__":2}}}'
    const answer = await fetch(`${hub.base}${twinPath('tw-proto')}`, { method: 'PATCH', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body })
    expect(answer.status).toBe(200)
    const text = await (await fetch(`${hub.base}${twinPath('tw-proto')}`, { headers: { authorization: `Bearer ${READER}` } })).text()
    expect(text).toContain('"desired":{"__proto__":{"x":1},"a":{"__proto__":2}}')
  })

  it('audits every desired change as twin.desired, with its outcome', async () => {
    await provisioned('tw-audit')
    await patch('tw-audit', { desired: { a: 1 } })
    await patch('tw-audit', { desired: { a: 1 } })
    await patch('tw-audit', { desired: { a: 2 }, ifVersion: 0 })
    await patch('tw-audit', { desired: { a: 'x'.repeat(40_000) } })
    await patch('tw-audit', { desired: { $a: 1 } })
    const entries = await eventually(
      async () => ((await hub.api('GET', '/api/v1/audit?limit=1000')).body.items as Array<Record<string, unknown>>).filter((e) => e['target'] === 'tw-audit' && e['action'] === 'twin.desired'),
      (found) => found.length === 4,
    )
    expect(entries.map((e) => [e['actor'], e['action'], e['outcome']])).toEqual([
      ['ops', 'twin.desired', 'version 1'],
      ['ops', 'twin.desired', 'unchanged (version 1)'],
      ['ops', 'twin.desired', 'version_conflict (version 1)'],
      ['ops', 'twin.desired', 'too_large (40008 bytes)'],
    ])
  })
})

describe('twins on the wire (docs/twins.md)', () => {
  it('sends twd {v 0, d {}} right after hello, before queued commands', async () => {
    await provisioned('tw-hello')
    const queued = await hub.api('POST', '/api/v1/devices/tw-hello/commands', { name: 'reboot', ttlMs: 60_000 })
    expect(queued.status).toBe(202)
    const { ws, twd } = await online('tw-hello')
    expect(twd).toStrictEqual({ t: 'twd', v: 0, d: {} })
    expect(await ws.next()).toMatchObject({ t: 'cmd', n: 'reboot' })
  })

  it('sends the whole desired document after each change, never for a patch that changes nothing', async () => {
    await provisioned('tw-live')
    await patch('tw-live', { desired: { a: 1 } })
    const { ws, twd } = await online('tw-live')
    expect(twd).toStrictEqual({ t: 'twd', v: 1, d: { a: 1 } })
    await patch('tw-live', { desired: { b: { c: true } } })
    expect(await ws.next()).toStrictEqual({ t: 'twd', v: 2, d: { a: 1, b: { c: true } } })
    await patch('tw-live', { desired: { a: 1, gone: null } })
    await patch('tw-live', { desired: { a: null } })
    // the no-op sent nothing: the next frame is the change after it
    expect(await ws.next()).toStrictEqual({ t: 'twd', v: 3, d: { b: { c: true } } })
  })

  it('a device offline while desired changes three times sees only the latest, once, after hello', async () => {
    await provisioned('tw-offline')
    const first = await online('tw-offline')
    expect(first.twd).toStrictEqual({ t: 'twd', v: 0, d: {} })
    first.ws.close()
    await eventually(async () => (await hub.api('GET', '/api/v1/devices/tw-offline')).body.online as boolean, (online) => !online)
    for (const setpoint of [18, 19, 20]) expect((await patch('tw-offline', { desired: { setpoint } })).status).toBe(200)
    const again = await online('tw-offline')
    expect(again.twd).toStrictEqual({ t: 'twd', v: 3, d: { setpoint: 20 } })
    await patch('tw-offline', { desired: { setpoint: 21 } })
    expect(await again.ws.next()).toStrictEqual({ t: 'twd', v: 4, d: { setpoint: 21 } })
  })

  it('applies reports in the order received, answers each with its version once stored, and a no-op keeps the version', async () => {
    await provisioned('tw-report')
    await patch('tw-report', { desired: { setpoint: 21, mode: 'eco' } })
    const { ws } = await online('tw-report')
    expect(await report(ws, 'r1', { setpoint: 21 })).toStrictEqual({ t: 'twa', id: 'r1', v: 1 })
    expect((await getTwin('tw-report'))['delta']).toStrictEqual({ mode: 'eco' })
    expect(await report(ws, 'r2', { setpoint: 21 })).toStrictEqual({ t: 'twa', id: 'r2', v: 1 })
    // 40 reports at once: applied and answered in order
    const expected: TwinDocument = { setpoint: 21 }
    for (let i = 0; i < 40; i++) {
      const p: TwinDocument = i % 3 === 0 ? { counter: i, [`k${i % 5}`]: null } : { counter: i, [`k${i % 5}`]: { at: i } }
      ws.send({ t: 'twr', id: `burst-${i}`, p })
      for (const [key, value] of Object.entries(p)) {
        if (value === null) delete expected[key]
        else expected[key] = value
      }
    }
    const answers: HubFrame[] = []
    for (let i = 0; i < 40; i++) answers.push(await ws.next())
    expect(answers.map((a) => (a.t === 'twa' ? a.id : a.t))).toEqual(Array.from({ length: 40 }, (_, i) => `burst-${i}`))
    expect(answers.map((a) => (a.t === 'twa' ? a.v : undefined))).toEqual(Array.from({ length: 40 }, (_, i) => i + 2))
    const twin = await getTwin('tw-report')
    expect(twin['reported']).toStrictEqual(expected)
    expect(twin['reportedVersion']).toBe(41)
    expect(Date.parse(twin['reportedAt'] as string)).toBeGreaterThan(Date.now() - 60_000)
    expect(await report(ws, 'sync', { mode: 'eco' })).toStrictEqual({ t: 'twa', id: 'sync', v: 42 })
    expect((await getTwin('tw-report'))['delta']).toStrictEqual({})
  })

  it('refuses a report that is invalid or would make reported too large; nothing changes, the session lives', async () => {
    await provisioned('tw-refuse')
    const { ws } = await online('tw-refuse')
    expect(await report(ws, 'base', { k: 'x'.repeat(30_000) })).toStrictEqual({ t: 'twa', id: 'base', v: 1 })
    expect(await report(ws, 'big', { more: 'y'.repeat(3000) })).toStrictEqual({ t: 'twa', id: 'big', e: 'too_large' })
    ws.sendRaw(encodeFrame({ t: 'twr', id: 'dollar', p: { $x: 1 } }))
    expect(await ws.next()).toStrictEqual({ t: 'twa', id: 'dollar', e: 'invalid' })
    ws.send({ t: 'twr', id: 'deep', p: { a: { b: { c: { d: { e: { f: { g: { h: { i: 1 } } } } } } } } } })
    expect(await ws.next()).toStrictEqual({ t: 'twa', id: 'deep', e: 'invalid' })
    const twin = await getTwin('tw-refuse')
    expect(twin['reportedVersion']).toBe(1)
    expect(Object.keys(twin['reported'] as object)).toEqual(['k'])
    expect(await report(ws, 'after', { k: null })).toStrictEqual({ t: 'twa', id: 'after', v: 2 })
  })

  it('closes with 1007 a report whose id cannot be answered', async () => {
    await provisioned('tw-noid')
    const { ws } = await online('tw-noid')
    ws.send({ t: 'twr', id: '', p: { a: 1 } })
    expect(await ws.next()).toMatchObject({ t: 'err', e: 'invalid' })
    expect((await ws.closed).code).toBe(1007)
  })

  it('draws a report from the device rate like a telemetry frame: over it, twa rate and nothing changed', async () => {
    const slow = await startTestHub({ FLEETGATE_DEVICE_RATE: '1' })
    try {
      const creds = await slow.provision('tw-rate')
      const ws = await devices.connect(slow.wsUrl, creds)
      // the bucket holds 2 (burst 2x): two readings take it all
      ws.send({ t: 'tm', s: 1, m: { a: 1 } })
      ws.send({ t: 'tm', s: 2, m: { a: 2 } })
      ws.send({ t: 'twr', id: 'late', p: { a: 1 } })
      const frames = [await ws.next(), await ws.next()]
      expect(frames.find((f) => f.t === 'twa')).toStrictEqual({ t: 'twa', id: 'late', e: 'rate' })
      expect((await slow.api('GET', twinPath('tw-rate'))).body.reportedVersion).toBe(0)
      expect((await hubMetrics(slow.base, ['fleetgate_twin_reports_total{outcome="rate"}']))['fleetgate_twin_reports_total{outcome="rate"}']).toBe(1)
    } finally {
      await slow.stop()
    }
  })

  it('sends a replacing session the desired document too (after its own hello)', async () => {
    await provisioned('tw-replace')
    await patch('tw-replace', { desired: { a: 1 } })
    const first = await online('tw-replace')
    const second = await online('tw-replace')
    expect(second.twd).toStrictEqual({ t: 'twd', v: 1, d: { a: 1 } })
    expect((await first.ws.closed).code).toBe(4001)
  })
})

describe('twins beyond REST and the wire', () => {
  it('publishes every change on the retained topic as REST answers the twin; deleting the device clears it and the twin', async () => {
    await provisioned('tw-mqtt')
    const { ws } = await online('tw-mqtt')
    await patch('tw-mqtt', { desired: { a: 1 } })
    expect(await ws.next()).toMatchObject({ t: 'twd', v: 1 })
    expect(await report(ws, 'r', { a: 1 })).toMatchObject({ t: 'twa', v: 1 })
    const url = `mqtt://127.0.0.1:${String(hub.hub.ports.mqtt)}`
    const late = await connectMqtt(url, { password: READER, username: 'x' })
    await late.subscribe('fleetgate/devices/tw-mqtt/twin')
    const retained = await eventually(() => late.on('fleetgate/devices/tw-mqtt/twin'), (m) => m.length === 1)
    expect(retained[0]?.retain).toBe(true)
    expect(JSON.parse(retained[0]?.payload.toString() ?? '')).toStrictEqual(await getTwin('tw-mqtt'))
    // a live subscriber sees the next change, not retained
    await patch('tw-mqtt', { desired: { b: 2 } })
    const live = await eventually(() => late.on('fleetgate/devices/tw-mqtt/twin'), (m) => m.length === 2)
    expect(JSON.parse(live[1]?.payload.toString() ?? '')).toMatchObject({ desiredVersion: 2, reportedVersion: 1, delta: { b: 2 } })
    await late.stop()

    expect((await hub.api('DELETE', '/api/v1/devices/tw-mqtt')).status).toBe(204)
    const cleared = await connectMqtt(url, { password: READER, username: 'x' })
    await cleared.subscribe(['fleetgate/devices/tw-mqtt/twin', 'fleetgate/devices/tw-mqtt/status'])
    // the retained status arrives; the twin no longer does
    await eventually(() => cleared.on('fleetgate/devices/tw-mqtt/status'), (m) => m.length === 1)
    expect(cleared.on('fleetgate/devices/tw-mqtt/twin')).toEqual([])
    await cleared.stop()
    await provisioned('tw-mqtt')
    expect(await getTwin('tw-mqtt')).toStrictEqual({ device: 'tw-mqtt', desired: {}, desiredVersion: 0, reported: {}, reportedVersion: 0, delta: {} })
  })

  it('counts desired changes, reports by outcome, and twd frames sent', async () => {
    const names = [
      'fleetgate_twin_desired_changes_total{outcome="changed"}',
      'fleetgate_twin_desired_changes_total{outcome="unchanged"}',
      'fleetgate_twin_desired_changes_total{outcome="version_conflict"}',
      'fleetgate_twin_reports_total{outcome="changed"}',
      'fleetgate_twin_reports_total{outcome="invalid"}',
      'fleetgate_twin_desired_frames_total{outcome="sent"}',
    ] as const
    const before = await hubMetrics(hub.base, names)
    await provisioned('tw-metrics')
    const { ws } = await online('tw-metrics')
    await patch('tw-metrics', { desired: { a: 1 } })
    await ws.next()
    await patch('tw-metrics', { desired: { a: 1 } })
    await patch('tw-metrics', { desired: { a: 2 }, ifVersion: 0 })
    await report(ws, 'ok', { a: 1 })
    await report(ws, 'bad', { $a: 1 })
    const after = await hubMetrics(hub.base, names)
    expect(names.map((n) => after[n] - before[n])).toEqual([1, 1, 1, 1, 1, 2])
  })
})

