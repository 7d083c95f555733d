import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CommandFrame, JsonValue } from '@fleetgate/device-sdk'
import { pick, type Random } from '@fleetgate/firmware-sim'
import { assertHubServes, fuzzSeed, seededRandom, Witness } from '../support/hostile.js'
import { ADMIN_TOKEN, startTestHub, type TestHub } from '../support/hub.js'
import { connectMqtt } from '../support/mqtt-client.js'
import { nestedArrays, randomJson, randomText, type RandomJsonBounds } from '../support/random-json.js'
import { eventually } from '../support/telemetry.js'
import { OpenDevices, type RawDevice } from '../support/ws.js'

/** The documented depth limit of params (docs/security.md): pinned here as a number on purpose. */
const MAX_PARAMS_DEPTH = 31
const DEPTH_MESSAGE = `params: nested deeper than ${MAX_PARAMS_DEPTH} levels of arrays and objects`
/** What the router answers, before parsing, for a body nested deeper than 64 levels (docs/security.md, HTTP). */
const BODY_DEPTH = { status: 400, body: { error: 'invalid', message: 'body: arrays and objects nest at most 64 levels deep' } }
/** docs/rest.md: a body over 1 MiB is refused before parsing; the deepest body that parses fills it. */
const MAX_BODY_BYTES = 1024 * 1024

// JSON bodies are read field by field in assertions, so `any` is the honest type here (as in support/hub.ts).
type Answer = { status: number; body: any }
/** The error codes each refusal may carry (docs/rest.md). */
const ERROR_CODES: Record<number, string[]> = {
  400: ['invalid', 'malformed_json'],
  409: ['device_offline'],
  413: ['payload_too_large'],
  429: ['queue_full'],
}

describe('hostile command bodies (issue 10): a specific 4xx or a success, never a 500, never a leaked count', () => {
  let hub: TestHub
  let witness: Witness
  const devices = new OpenDevices()

  /** POSTs raw JSON text (the test helper's `api` would stringify). */
  const post = async (path: string, text: string): Promise<Answer> => {
    const res = await fetch(`${hub.base}/api/v1${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: text,
    })
    const body = await res.text()
    return { status: res.status, body: body === '' ? undefined : JSON.parse(body) }
  }
  /** Every record a device has, as REST lists it. */
  const records = async (device: string): Promise<Array<{ id: string; name: string; status: string; params: JsonValue; batch?: string; error?: string }>> =>
    (await hub.api('GET', `/api/v1/devices/${device}/commands?limit=1000`)).body.items

  beforeAll(async () => {
    hub = await startTestHub({ FLEETGATE_MQTT_PORT: '0' })
    witness = await Witness.connect(hub.wsUrl, await hub.provision('witness'))
  })
  afterAll(async () => {
    devices.closeAll()
    witness?.close()
    await hub?.stop()
  })

  it('refuses params nested 100,000 deep, a 1 MiB body of nesting, and params past 31 levels, with 400 and the limit (defect 6)', async () => {
    await hub.provision('deep-1')
    expect(await post('/devices/deep-1/commands', `{"name":"x","ttlMs":60000,"params":${nestedArrays(100_000)}}`)).toEqual(BODY_DEPTH)
    // Within the router's 64 levels, the command's own limit speaks, on both routes.
    for (const levels of [MAX_PARAMS_DEPTH + 1, 63]) {
      const text = `{"name":"x","ttlMs":60000,"params":${nestedArrays(levels)}}`
      expect(await post('/devices/deep-1/commands', text), `${levels} levels`).toEqual({ status: 400, body: { error: 'invalid', message: DEPTH_MESSAGE } })
      const fanOut = `{"target":{"ids":["deep-1"]},"name":"x","ttlMs":1000,"params":${nestedArrays(levels)}}`
      expect(await post('/commands', fanOut), `fan-out, ${levels} levels`).toEqual({ status: 400, body: { error: 'invalid', message: DEPTH_MESSAGE } })
    }

    const prefix = '{"name":"x","ttlMs":60000,"params":'
    const levels = Math.floor((MAX_BODY_BYTES - prefix.length - 2) / 2)
    const full = `${prefix}${nestedArrays(levels, '')}}`
    expect(Buffer.byteLength(full)).toBeLessThanOrEqual(MAX_BODY_BYTES)
    expect(await post('/devices/deep-1/commands', full)).toEqual(BODY_DEPTH)
    expect(await post('/commands', `{"target":{"ids":["deep-1"]},"name":"x","ttlMs":1000,"params":${nestedArrays(levels - 20, '')}}`)).toEqual(BODY_DEPTH)
    expect(await records('deep-1')).toEqual([])
  })

  it('refuses nesting in every other field of both routes with 400, the body itself included', async () => {
    await hub.provision('deep-2')
    const deep = nestedArrays(200_000)
    const deepObject = `${'{"a":'.repeat(100_000)}0${'}'.repeat(100_000)}`
    const cases: Array<[string, string]> = [
      ['/devices/deep-2/commands', deep],
      ['/devices/deep-2/commands', `{"name":${deep}}`],
      ['/devices/deep-2/commands', `{"name":"x","id":${deep}}`],
      ['/devices/deep-2/commands', `{"name":"x","timeoutMs":${deep}}`],
      ['/devices/deep-2/commands', `{"name":"x","ttlMs":${deepObject}}`],
      ['/devices/deep-2/commands', `{"name":"x","ttlMs":1000,"wait":${deepObject}}`],
      ['/devices/deep-2/commands', `{"name":"x","ttlMs":1000,"params":${deepObject}}`],
      ['/devices/deep-2/commands', `{${'"k":0,'.repeat(10)}"deep":${deep}}`],
      ['/commands', deep],
      ['/commands', `{"target":${deepObject},"name":"x"}`],
      ['/commands', `{"target":{"ids":${deep}},"name":"x"}`],
      ['/commands', `{"target":{"ids":["deep-2",${deep}]},"name":"x"}`],
      ['/commands', `{"target":{"tags":${deepObject}},"name":"x"}`],
      ['/commands', `{"target":{"tags":{"a":${deep}}},"name":"x"}`],
      ['/commands', `{"target":{"ids":["deep-2"]},"name":"x","ttlMs":1000,"timeoutMs":${deepObject}}`],
    ]
    for (const [path, text] of cases) {
      const answer = await post(path, text)
      expect(answer.status, `${path} ${text.slice(0, 40)}`).toBe(400)
      expect(answer.body.error, `${path} ${text.slice(0, 40)}`).toBe('invalid')
    }
    expect(await records('deep-2')).toEqual([])
  })

  it('takes params at the depth limit, keeps them queued exactly and delivers them to a device that decodes them', async () => {
    const device = await hub.provision('at-limit')
    // 31 levels of arrays and objects in all: 30 arrays around an object around 0.
    const params = JSON.parse(nestedArrays(MAX_PARAMS_DEPTH - 1, '{"z":0}')) as JsonValue
    const queued = await hub.api('POST', '/api/v1/devices/at-limit/commands', { name: 'deep', ttlMs: 60_000, params })
    expect(queued.status).toBe(202)
    expect(queued.body.params).toEqual(params)
    const over = await hub.api('POST', '/api/v1/devices/at-limit/commands', { name: 'deep', ttlMs: 60_000, params: [params] })
    expect(over).toEqual({ status: 400, body: { error: 'invalid', message: DEPTH_MESSAGE } })
    const ws = await devices.connect(hub.wsUrl, device)
    const cmd = (await ws.next()) as CommandFrame
    expect(cmd).toMatchObject({ t: 'cmd', id: queued.body.id, n: 'deep', p: params })
    ws.send({ t: 'res', id: cmd.id, ok: true, r: params })
    const done = await eventually(() => hub.api('GET', `/api/v1/devices/at-limit/commands/${cmd.id}`), (r) => r.body.status === 'succeeded')
    expect(done.body).toMatchObject({ params, result: params })
  })

  it('keeps the queue count exact after 150 commands nested 1,500 deep: each is 400, then 100 queue and the 101st is 429 (defect 5)', async () => {
    await hub.provision('leak-1')
    const deep = `{"name":"x","ttlMs":60000,"params":${nestedArrays(1500)}}`
    for (let i = 0; i < 150; i++) expect((await post('/devices/leak-1/commands', deep)).status).toBe(400)
    for (let i = 0; i < 100; i++) {
      expect((await post('/devices/leak-1/commands', `{"name":"x","ttlMs":60000,"params":${i}}`)).status, `command ${i}`).toBe(202)
    }
    expect(await post('/devices/leak-1/commands', '{"name":"x","ttlMs":60000}')).toMatchObject({ status: 429, body: { error: 'queue_full' } })
    expect((await records('leak-1')).map((record) => record.status)).toEqual(Array(100).fill('queued'))
  })

  it('counts a fan-out target whose queue is full as expired, so the batch adds up, and leaves the queue at 100', async () => {
    await hub.provision('full-1')
    for (let i = 0; i < 100; i++) expect((await post('/devices/full-1/commands', '{"name":"x","ttlMs":60000}')).status).toBe(202)
    const started = await hub.api('POST', '/api/v1/commands', { target: { ids: ['full-1'] }, name: 'fan', ttlMs: 60_000 })
    expect(started).toMatchObject({ status: 202, body: { targeted: 1 } })
    const done = await eventually(() => hub.api('GET', `/api/v1/commands/${started.body.batch}`), (r) => r.body.expired === 1)
    expect(done.body).toEqual({ batch: started.body.batch, targeted: 1, queued: 0, sent: 0, succeeded: 0, failed: 0, timeout: 0, expired: 1 })
    // The batch counts a record as it changes; the list shows it once committed.
    const listed = await eventually(() => records('full-1'), (items) => items.length === 101)
    expect(listed.filter((record) => record.status === 'queued')).toHaveLength(100)
    expect(listed.filter((record) => record.status === 'expired')).toEqual([
      expect.objectContaining({ name: 'fan', batch: started.body.batch, error: 'device queue full (100 commands)' }),
    ])
    expect((await post('/devices/full-1/commands', '{"name":"x","ttlMs":60000}')).status).toBe(429)
  })

  it('applies the same limits to MQTT commands: audited as invalid, nothing created, nothing sent', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('mqtt-deep'))
    const operator = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'op', password: ADMIN_TOKEN })
    const payloads = [
      JSON.stringify({ id: 'm-deep', name: 'x', params: JSON.parse(nestedArrays(40)) }),
      JSON.stringify({ id: 'm-proto', name: 'x', params: JSON.parse('{"__proto__":{"polluted":true}}') }),
      JSON.stringify({ id: 'm-ok', name: 'x', params: JSON.parse(nestedArrays(MAX_PARAMS_DEPTH)) }),
    ]
    for (const payload of payloads) await operator.client.publishAsync('fleetgate/devices/mqtt-deep/commands', payload, { qos: 1 })
    const cmd = (await ws.next()) as CommandFrame
    expect(cmd).toMatchObject({ t: 'cmd', id: 'm-ok' })
    const audit = await eventually(
      async () =>
        ((await hub.api('GET', '/api/v1/audit?limit=1000')).body.items as Array<{ action: string; target: string; outcome: string }>).filter(
          (entry) => entry.action === 'command.create' && entry.target.startsWith('mqtt-deep'),
        ),
      (entries) => entries.length === 3,
    )
    expect(audit.map((entry) => entry.outcome)).toEqual([`invalid: ${DEPTH_MESSAGE}`, 'invalid: params: the key "__proto__" is not accepted', 'sent'])
    expect((await records('mqtt-deep')).map((record) => record.id)).toEqual(['m-ok'])
    await operator.stop()
  })

  it('answers 400 for what the store or a device would alter: non-finite numbers, __proto__ keys, lone surrogates', async () => {
    await hub.provision('alter-1')
    const cases: Array<[string, string]> = [
      ['{"a":1e999}', 'params: numbers must be finite'],
      ['[-1e400]', 'params: numbers must be finite'],
      ['{"__proto__":{"admin":true}}', 'params: the key "__proto__" is not accepted'],
      ['[{"b":{"__proto__":1}}]', 'params: the key "__proto__" is not accepted'],
      ['"\\ud800"', 'params: text must be valid Unicode (a lone surrogate)'],
      ['{"\\udc00":1}', 'params: keys must be valid Unicode (a lone surrogate)'],
    ]
    for (const [params, message] of cases) {
      expect(await post('/devices/alter-1/commands', `{"name":"x","ttlMs":60000,"params":${params}}`), params).toEqual({
        status: 400,
        body: { error: 'invalid', message },
      })
    }
    // A surrogate pair is one character and passes.
    const pair = await post('/devices/alter-1/commands', '{"name":"x","ttlMs":60000,"params":["\\ud83d\\ude00",{"constructor":-0}]}')
    expect(pair.status).toBe(202)
    expect((await hub.api('GET', `/api/v1/devices/alter-1/commands/${pair.body.id}`)).body.params).toEqual(['😀', { constructor: 0 }])
  })

  it('answers every body of a seeded random run with a specific 4xx or a success; what it accepts it keeps and delivers exactly', async () => {
    const seed = fuzzSeed('hostile commands', 0xc0_4a4d)
    const random = seededRandom(seed)
    const bounds: RandomJsonBounds = { maxDepth: 36, maxWidth: 5, maxTextChars: 30_000 }
    await hub.provision('fz-off')
    await hub.provision('fz-fan')
    const online = await devices.connect(hub.wsUrl, await hub.provision('fz-on'))
    const accepted = new Map<string, JsonValue | undefined>()
    const sentOnline = new Map<string, JsonValue | undefined>()
    const batches: Array<{ batch: string; targeted: number }> = []
    const seen = new Map<number, number>()

    for (let i = 0; i < 400; i++) {
      const route = pick(random, 3)
      const path = route === 2 ? '/commands' : `/devices/${route === 0 ? 'fz-off' : 'fz-on'}/commands`
      const { text, params } = commandBody(random, bounds, route)
      const answer = await post(path, text)
      seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1)
      const where = `body ${i} (seed ${seed}): ${text.slice(0, 200)}`
      expect([200, 202, 400, 409, 413, 429], where).toContain(answer.status)
      if (answer.status >= 400) {
        expect(ERROR_CODES[answer.status], where).toContain(answer.body.error)
        expect(typeof answer.body.message, where).toBe('string')
        continue
      }
      if (route === 2) {
        expect(answer.status, where).toBe(202)
        batches.push(answer.body)
        continue
      }
      if (answer.status === 200) continue // a repeated id: the existing record
      // What the hub accepted it keeps as sent, JSON for JSON (-0 is 0 in JSON).
      expect(answer.body.params, where).toEqual(params === undefined ? null : JSON.parse(JSON.stringify(params)))
      ;(route === 0 ? accepted : sentOnline).set(answer.body.id, answer.body.params)
    }
    expect(seen.get(400)).toBeGreaterThan(50)
    expect((seen.get(202) ?? 0) + (seen.get(200) ?? 0)).toBeGreaterThan(50)

    // Exact count: the offline device holds exactly the accepted commands, queued unless their TTL ended.
    const stored = await records('fz-off')
    expect(new Set(stored.map((record) => record.id))).toEqual(new Set(accepted.keys()))
    for (const record of stored) {
      expect(['queued', 'expired']).toContain(record.status)
      expect(record.params).toEqual(accepted.get(record.id))
    }
    // The online device got every accepted command once, params decoded as they were sent.
    const frames = await takeCommands(online, sentOnline.size)
    expect(new Map(frames.map((frame) => [frame.id, frame.p ?? null]))).toEqual(sentOnline)
    // Every fan-out counts exactly its targets.
    for (const { batch, targeted } of batches) {
      const status = await eventually(
        () => hub.api('GET', `/api/v1/commands/${batch}`),
        (r) => ['queued', 'sent', 'succeeded', 'failed', 'timeout', 'expired'].reduce((sum, s) => sum + (r.body[s] as number), 0) === targeted,
      )
      expect(status.status).toBe(200)
    }
    await assertHubServes(hub.base, witness)
  }, 120_000)
})

/** Takes `count` cmd frames from a device (nothing else arrives on it). */
async function takeCommands(ws: RawDevice, count: number): Promise<CommandFrame[]> {
  const frames: CommandFrame[] = []
  while (frames.length < count) {
    const frame = await ws.next()
    if (frame.t !== 'cmd') throw new Error(`expected a cmd frame, got ${JSON.stringify(frame)}`)
    frames.push(frame)
  }
  return frames
}

/**
 * One random command body for a route (0: offline device, 1: online device, 2: fan-out), and the
 * params it carries when it parses. Each field is valid more often than not, so that bodies get
 * past the first check and reach the later ones; the rest are random JSON of any type.
 */
function commandBody(random: Random, bounds: RandomJsonBounds, route: number): { text: string; params: JsonValue | undefined } {
  if (pick(random, 20) === 0) return { text: randomJson(random, bounds), params: undefined }
  const often = (valid: () => string): string => (pick(random, 4) === 0 ? randomJson(random, bounds) : valid())
  const fields: string[] = []
  fields.push(`"name":${often(() => `"${['reboot', 'set.point', 'a-b_c', 'x'.repeat(64)][pick(random, 4)]}"`)}`)
  if (pick(random, 5) !== 0) fields.push(`"params":${randomJson(random, bounds)}`)
  if (pick(random, 3) === 0) fields.push(`"timeoutMs":${often(() => String(1 + pick(random, 60_000)))}`)
  if (route !== 1 || pick(random, 2) === 0) fields.push(`"ttlMs":${often(() => String([0, 1, 60_000, 2_592_000_000][pick(random, 4)]))}`)
  if (route === 2) fields.push(`"target":${often(() => (pick(random, 2) === 0 ? '{"ids":["fz-fan","nobody"]}' : '{"tags":{"site":"none"}}'))}`)
  else {
    // A device that never answers: only `wait: false` keeps the request from waiting out its timeout.
    if (route === 1) fields.push('"wait":false')
    if (pick(random, 3) === 0) fields.push(`"id":${often(() => `"id-${pick(random, 40)}"`)}`)
  }
  if (pick(random, 15) === 0) fields.push(`"extra":${randomText(random, bounds)}`)
  // Shuffle, so that a refused field is not always met in the same order.
  for (let i = fields.length - 1; i > 0; i--) {
    const j = pick(random, i + 1)
    ;[fields[i], fields[j]] = [fields[j] as string, fields[i] as string]
  }
  const text = `{${fields.join(',')}}`
  let params: JsonValue | undefined
  try {
    params = (JSON.parse(text) as { params?: JsonValue }).params
  } catch {
    params = undefined
  }
  return { text, params }
}
