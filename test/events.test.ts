import { spawn } from 'node:child_process'
import { createConnection } from 'node:net'
import { Decoder } from 'cbor-x'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, startTestHub, tempDir, writeTokensFile, type TestHub } from './support/hub.js'
import { hubMetric } from './support/hostile.js'
import { connectMqtt, type TestClient } from './support/mqtt-client.js'
import { EventStreamClient } from './support/sse.js'
import { eventually } from './support/telemetry.js'
import { OpenDevices, type RawDevice } from './support/ws.js'

const READER = 'reader-token-0123456789'
const cbor = new Decoder({ useRecords: false, mapsAsObjects: true })

/** docs/rest.md `GET /events`: Server-Sent Events of status, telemetry, command and twin changes. */
describe('the live event stream (docs/rest.md)', () => {
  let hub: TestHub
  let mqtt: TestClient
  const tokens = tempDir()
  const devices = new OpenDevices()
  const streams: EventStreamClient[] = []
  const open = async (path: string, token = ADMIN_TOKEN): Promise<EventStreamClient> => {
    const stream = await EventStreamClient.accepted(hub.base, path, token)
    streams.push(stream)
    // The first chunk carries the headers: a comment, no event.
    await eventually(() => stream.raw, (raw) => raw === ': connected\n\n')
    return stream
  }
  const connect = async (id: string): Promise<RawDevice> => devices.connect(hub.wsUrl, await hub.provision(id))

  beforeAll(async () => {
    const tokensFile = writeTokensFile(tokens.path, { viewer: { scope: 'reader', token: READER } })
    // MQTT in CBOR: the stream still carries JSON, the same values.
    hub = await startTestHub({ FLEETGATE_TOKENS_FILE: tokensFile, FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_FORMAT: 'cbor', FLEETGATE_DEVICE_RATE: '2000' }, undefined, {
      eventStreams: { maxStreamsPerToken: 3, keepaliveMs: 200, maxBacklogBytes: 256 * 1024 },
    })
    mqtt = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'test', password: ADMIN_TOKEN })
    expect(await mqtt.subscribe(['fleetgate/devices/+/status', 'fleetgate/devices/+/telemetry', 'fleetgate/devices/+/commands/+', 'fleetgate/devices/+/twin'])).toEqual([1, 1, 1, 1])
  })
  afterEach(() => {
    devices.closeAll()
    for (const stream of streams.splice(0)) stream.close()
  })
  afterAll(async () => {
    await mqtt?.stop()
    await hub?.stop()
    tokens.cleanup()
  })

  it('answers 401 without a valid token and 400 for a bad filter; a reader token may read it', async () => {
    for (const token of [undefined, 'not-a-token-0123456789']) {
      expect(await EventStreamClient.open(hub.base, '/api/v1/events', token)).toEqual({
        status: 401,
        body: { error: 'unauthorized', message: 'a valid operator token is required (Authorization: Bearer <token>)' },
      })
    }
    const refused = async (path: string): Promise<unknown> => EventStreamClient.open(hub.base, path, READER)
    expect(await refused('/api/v1/events?type=status,weather')).toEqual({
      status: 400,
      body: { error: 'invalid', message: 'type: a comma list of status, telemetry, command, twin; "weather" is not one' },
    })
    expect(await refused('/api/v1/events?device=bad%20id')).toEqual({ status: 400, body: { error: 'invalid', message: 'device: a device id is 1 to 64 of A-Z a-z 0-9 _ -' } })
    const many = Array.from({ length: 101 }, (_, i) => `device=d${i}`).join('&')
    expect(await refused(`/api/v1/events?${many}`)).toEqual({ status: 400, body: { error: 'invalid', message: 'device: at most 100 devices (the parameter repeats)' } })
    // 100 devices are fine; the reader scope is enough (GET: 403 cannot happen).
    await open(`/api/v1/events?${Array.from({ length: 100 }, (_, i) => `device=d${i}`).join('&')}`, READER)
  })

  it('filters by type and device; telemetry only for named devices; each payload is what MQTT carries', async () => {
    const all = await open('/api/v1/events')
    const named = await open('/api/v1/events?device=ev-a&type=telemetry,command', READER)
    const statusOfB = await open('/api/v1/events?device=ev-b&type=status')
    const a = await connect('ev-a')
    const b = await connect('ev-b')
    a.send({ t: 'tb', s: 1, r: [{ ts: 1_700_000_000_000, m: { t: 21.5, on: true } }, { ts: 1_700_000_000_001, m: { t: 22 }, g: { zone: 'n' } }] })
    await a.untilAck(1)
    b.send({ t: 'tm', s: 1, ts: 1_700_000_000_000, m: { t: 5 } })
    await b.untilAck(1)
    const command = hub.api('POST', '/api/v1/devices/ev-a/commands', { name: 'reboot', id: 'cmd-1' })
    const cmd = await a.next()
    expect(cmd).toMatchObject({ t: 'cmd', id: 'cmd-1' })
    a.send({ t: 'res', id: 'cmd-1', ok: true, r: { up: 1 } })
    expect((await command).status).toBe(200)
    b.close()

    const fromAll = await all.take(5)
    expect(fromAll.map((e) => `${e.type} ${String((e.data as { device: string }).device)}`)).toEqual([
      'status ev-a',
      'status ev-b',
      'command ev-a',
      'command ev-a',
      'status ev-b',
    ])
    const [statusA, , sent, succeeded, offline] = fromAll
    expect((sent?.data as { status: string }).status).toBe('sent')
    expect(succeeded?.data).toMatchObject({ id: 'cmd-1', device: 'ev-a', name: 'reboot', status: 'succeeded', result: { up: 1 } })
    expect(offline?.data).toMatchObject({ device: 'ev-b', online: false })

    const fromNamed = await named.take(3)
    expect(fromNamed.map((e) => e.type)).toEqual(['telemetry', 'command', 'command'])
    const telemetry = fromNamed[0]?.data
    expect(telemetry).toEqual({
      device: 'ev-a',
      seq: 1,
      readings: [
        { ts: 1_700_000_000_000, m: { t: 21.5, on: true } },
        { ts: 1_700_000_000_001, m: { t: 22 }, g: { zone: 'n' } },
      ],
    })
    expect((await statusOfB.take(2)).map((e) => (e.data as { online: boolean }).online)).toEqual([true, false])

    // The same values MQTT carried (in CBOR here): status, telemetry and the command's final record.
    const onMqtt = async (topic: string, index = 0): Promise<unknown> =>
      cbor.decode((await eventually(() => mqtt.on(topic), (m) => m.length > index))[index]?.payload as Buffer)
    expect(await onMqtt('fleetgate/devices/ev-a/status')).toEqual(statusA?.data)
    expect(await onMqtt('fleetgate/devices/ev-a/telemetry')).toEqual(telemetry)
    expect(await onMqtt('fleetgate/devices/ev-a/commands/cmd-1')).toEqual(succeeded?.data)
    expect(await onMqtt('fleetgate/devices/ev-b/status', 1)).toEqual(offline?.data)
    // Nothing else came: no telemetry without a named device, nothing of ev-b on the named stream.
    expect(all.events.items).toEqual([])
    expect(named.events.items).toEqual([])
    expect(statusOfB.events.items).toEqual([])
  })

  it('carries every twin change, desired and reported, as the retained MQTT topic carries it (docs/twins.md)', async () => {
    const twins = await open('/api/v1/events?type=twin&device=ev-twin', READER)
    const ws = await connect('ev-twin')
    expect((await hub.api('PATCH', '/api/v1/devices/ev-twin/twin', { desired: { setpoint: 19 } })).status).toBe(200)
    ws.send({ t: 'twr', id: 'r1', p: { setpoint: 19, fw: '1.2' } })
    expect(await ws.next()).toMatchObject({ t: 'twd', v: 1 })
    expect(await ws.next()).toEqual({ t: 'twa', id: 'r1', v: 1 })
    const [desired, reported] = await twins.take(2)
    expect(desired).toEqual({ type: 'twin', data: expect.objectContaining({ device: 'ev-twin', desired: { setpoint: 19 }, desiredVersion: 1, reportedVersion: 0 }) })
    expect(reported).toEqual({ type: 'twin', data: expect.objectContaining({ device: 'ev-twin', reported: { setpoint: 19, fw: '1.2' }, reportedVersion: 1, delta: {} }) })
    const onMqtt = (await eventually(() => mqtt.on('fleetgate/devices/ev-twin/twin'), (m) => m.length >= 2)).map((m) => cbor.decode(m.payload) as unknown)
    expect(onMqtt.slice(-2)).toEqual([desired?.data, reported?.data])
  })

  it('sends a comment line as keep-alive, and `curl -N` reads the stream as it comes', async () => {
    const stream = await open('/api/v1/events?type=status')
    await eventually(() => stream.raw, (raw) => raw.includes(': keepalive\n\n'))
    const curl = spawn('curl', ['-sN', '-H', `authorization: Bearer ${READER}`, `${hub.base}/api/v1/events?type=status&device=ev-curl`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    curl.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    try {
      await eventually(() => out, (text) => text.startsWith(': connected\n\n'))
      const ws = await connect('ev-curl')
      const at = (await eventually(() => out, (text) => text.includes('event: status'))).split('\n')
      expect(at.slice(at.indexOf('event: status'), at.indexOf('event: status') + 2)).toEqual([
        'event: status',
        expect.stringMatching(/^data: \{"device":"ev-curl","online":true,"at":"[0-9T:.Z-]+"\}$/),
      ])
      ws.close()
    } finally {
      curl.kill('SIGTERM')
    }
  })

  it('bounds streams per token with a 429 that says so; other tokens still open theirs', async () => {
    for (let i = 0; i < 3; i++) await open('/api/v1/events?type=twin')
    expect(await EventStreamClient.open(hub.base, '/api/v1/events?type=twin', ADMIN_TOKEN)).toEqual({
      status: 429,
      body: { error: 'too_many_requests', message: 'this token has 3 event streams open, the most it may; close one first' },
    })
    await open('/api/v1/events?type=twin', READER)
    // Closing one makes room again.
    streams[0]?.close()
    await eventually(() => hubMetric(hub.base, 'fleetgate_event_streams'), (n) => n === 3)
    await open('/api/v1/events?type=twin')
    expect(await hubMetric(hub.base, 'fleetgate_event_streams_refused_total{reason="token"}')).toBe(1)
  })

  it('cuts a client that stops reading, while ingest and a reading client miss nothing', async () => {
    // A client that sends its request and never reads a byte of the answer.
    const stalled = createConnection(hub.hub.ports.http, '127.0.0.1')
    stalled.pause()
    stalled.write(`GET /api/v1/events?device=ev-firehose&type=telemetry HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`)
    const closed = new Promise<void>((resolve) => stalled.once('close', () => resolve()))
    const reading = await open('/api/v1/events?device=ev-firehose&type=telemetry', READER)
    await eventually(() => hubMetric(hub.base, 'fleetgate_event_streams'), (n) => n === 2)
    const ws = await connect('ev-firehose')
    // Frames of 500 readings, about 45 KB of event each, until the stalled stream is cut: first the
    // sockets' buffers fill, then the hub's backlog passes its bound (256 KiB here).
    let frames = 0
    while ((await hubMetric(hub.base, 'fleetgate_event_streams_cut_total')) === 0) {
      if (frames === 2000) throw new Error('the stalled stream was not cut after 2,000 frames')
      for (const s of [frames + 1, frames + 2, frames + 3, frames + 4]) {
        ws.send({ t: 'tb', s, r: Array.from({ length: 500 }, (_, i) => ({ ts: 1_700_000_000_000 + s * 1000 + i, m: { v: i, label: 'x'.repeat(60) } })) })
      }
      frames += 4
      // Every frame is acked: the stalled client never holds ingest.
      await ws.untilAck(frames)
    }
    expect(frames).toBeGreaterThan(50)
    expect(await hubMetric(hub.base, 'fleetgate_event_streams')).toBe(1)
    stalled.destroy()
    await closed
    const got = await reading.take(frames, 20_000)
    expect(got.map((e) => (e.data as { seq: number }).seq)).toEqual(Array.from({ length: frames }, (_, i) => i + 1))
  })
})

describe('the live event stream at shutdown', () => {
  it('ends every stream cleanly before the hub stops', async () => {
    const hub = await startTestHub()
    try {
      const streams = await Promise.all([1, 2].map(() => EventStreamClient.accepted(hub.base, '/api/v1/events', ADMIN_TOKEN)))
      await eventually(() => hubMetric(hub.base, 'fleetgate_event_streams'), (n) => n === 2)
      await hub.stop()
      expect(await Promise.all(streams.map((s) => s.ended))).toEqual(['end', 'end'])
    } finally {
      await hub.stop()
    }
  })
})
