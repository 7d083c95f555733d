import { afterEach, describe, expect, it, vi } from 'vitest'
import { createUplink, getCodec, UPLINK_ACTOR, type BrokerOptions, type MqttFormat, type TelemetryMessage, type UplinkConfig } from '@fleetgate/bridge'
import { startMosquitto, type Mosquitto } from '../../test/support/mosquitto.js'
import { connectMqtt, type TestClient } from '../../test/support/mqtt-client.js'
import { stopAll } from '../../test/support/service.js'
import { startLocalBroker, type LocalBroker } from './helpers.js'

afterEach(stopAll)

// Characters that need percent-encoding in the uplink URL, so the URL parsing is exercised for real.
const USERS = { hub: 'hub pass:/@#?', ext: 'ext-secret' }
const WAIT = { timeout: 15_000, interval: 20 }

const reading = (seq: number, device = 'd1'): TelemetryMessage => ({
  device,
  seq,
  readings: [{ ts: 1_700_000_000_000 + seq, m: { t: 21.5, n: seq }, g: { room: 'k' } }],
})
const seqOf = (payload: Buffer): number => (JSON.parse(payload.toString('utf8')) as TelemetryMessage).seq

interface Setup {
  readonly mosquitto: Mosquitto
  readonly local: LocalBroker
  /** A client of the external broker, as another service would be. */
  readonly external: TestClient
}

async function setup(options: { uplink?: Partial<UplinkConfig>; broker?: Partial<BrokerOptions>; persistence?: boolean } = {}): Promise<Setup> {
  const mosquitto = await startMosquitto({ users: USERS, persistence: options.persistence ?? false })
  const local = await startLocalBroker({ uplink: { url: mosquitto.urlFor('hub'), reconnectPeriodMs: 100, ...options.uplink }, ...options.broker })
  await vi.waitFor(() => expect(local.broker.uplink?.stats()).toMatchObject({ connected: true, subscribed: true }), WAIT)
  const external = await connectMqtt(mosquitto.urlFor('ext'))
  return { mosquitto, local, external }
}

/** Publishes a telemetry sentinel and waits until the external client has it: all earlier mirrors arrived or never will. */
async function flushOut({ local, external }: Setup): Promise<void> {
  local.broker.publishTelemetry('sentinel', reading(0, 'sentinel'))
  await vi.waitFor(() => expect(external.on('fleetgate/devices/sentinel/telemetry')).toHaveLength(1), WAIT)
}

describe('uplink: mirror out (docs/mqtt.md)', () => {
  it.each(['json', 'cbor'] as MqttFormat[])('%s: telemetry, status and results reach the external broker byte for byte; commands do not', async (format) => {
    const s = await setup({ broker: { format } })
    const codec = getCodec(format)
    expect(await s.external.subscribe('fleetgate/#', { qos: 1 })).toEqual([1])
    const telemetry = reading(5)
    const status = { device: 'd1', online: true, at: '2024-05-01T10:00:00.000Z' }
    const record = { id: 'c1', device: 'd1', name: 'reboot', status: 'succeeded', result: { up: 1 } }
    s.local.broker.publishTelemetry('d1', telemetry)
    s.local.broker.publishStatus('d1', status)
    s.local.broker.publishCommandResult('d1', 'c1', record)
    // A local operator's command is handled locally and never mirrored out.
    const operator = await s.local.client('operator-token')
    await operator.client.publishAsync('fleetgate/devices/d1/commands', codec.encode({ name: 'reboot' }), { qos: 1 })
    await flushOut(s)
    const got = s.external.received.filter((m) => !m.topic.includes('sentinel'))
    expect(got.map((m) => m.topic).sort()).toEqual(['fleetgate/devices/d1/commands/c1', 'fleetgate/devices/d1/status', 'fleetgate/devices/d1/telemetry'])
    const byTopic = new Map(got.map((m) => [m.topic, m.payload]))
    expect(byTopic.get('fleetgate/devices/d1/telemetry')).toEqual(codec.encode(telemetry))
    expect(byTopic.get('fleetgate/devices/d1/status')).toEqual(codec.encode(status))
    expect(byTopic.get('fleetgate/devices/d1/commands/c1')).toEqual(codec.encode(record))
    expect(s.local.commands).toHaveLength(1)

    // Status is retained on the external broker too.
    const late = await connectMqtt(s.mosquitto.urlFor('ext'))
    await late.subscribe('fleetgate/devices/+/status', { qos: 1 })
    await vi.waitFor(() => expect(late.received).toHaveLength(1), WAIT)
    expect(late.received).toEqual([{ topic: 'fleetgate/devices/d1/status', payload: codec.encode(status), qos: 1, retain: true }])
    expect(s.local.broker.uplink?.stats()).toMatchObject({ mirrored: 4, dropped: 0, buffered: 0, inflight: 0, connects: 1 })
  })
})

describe('uplink: commands in', () => {
  it('a command from the external broker reaches onCommand as source uplink and is republished locally, not echoed out', async () => {
    const s = await setup()
    const watcher = await s.local.client('reader-token')
    await watcher.subscribe('fleetgate/devices/+/commands', { qos: 1 })
    await s.external.subscribe('fleetgate/#', { qos: 1 })
    const command = Buffer.from(JSON.stringify({ id: 'k1', name: 'reboot', params: { delay: 2 } }))
    await s.external.client.publishAsync('fleetgate/devices/d7/commands', command, { qos: 1 })
    await vi.waitFor(() => expect(s.local.commands).toHaveLength(1), WAIT)
    expect(s.local.commands).toEqual([{ deviceId: 'd7', payload: { id: 'k1', name: 'reboot', params: { delay: 2 } }, actor: UPLINK_ACTOR, source: 'uplink' }])
    expect(UPLINK_ACTOR).toEqual({ name: 'uplink', scope: 'operator' })
    await vi.waitFor(() => expect(watcher.received).toHaveLength(1), WAIT)
    expect(watcher.received).toEqual([{ topic: 'fleetgate/devices/d7/commands', payload: command, qos: 1, retain: false }])

    // An undecodable one is counted and reported, and goes nowhere.
    await s.external.client.publishAsync('fleetgate/devices/d8/commands', 'not json', { qos: 1 })
    await vi.waitFor(() => expect(s.local.invalid).toHaveLength(1), WAIT)
    expect(s.local.invalid).toEqual([{ deviceId: 'd8', reason: 'malformed', actor: UPLINK_ACTOR, source: 'uplink' }])

    await flushOut(s)
    // The external broker saw its own two commands once each: nothing came back from the hub.
    expect(s.external.received.map((m) => m.topic)).toEqual([
      'fleetgate/devices/d7/commands',
      'fleetgate/devices/d8/commands',
      'fleetgate/devices/sentinel/telemetry',
    ])
    expect(watcher.received).toHaveLength(1)
    expect(s.local.commands).toHaveLength(1)
    expect(s.local.broker.stats()).toMatchObject({ uplinkCommands: 1, invalidCommands: 1, mqttCommands: 0 })
    expect(s.local.broker.uplink?.stats()).toMatchObject({ commands: 2, ignoredCommands: 0 })
  })

  it('a retained command on the external broker is ignored: it would run again at every reconnect', async () => {
    const mosquitto = await startMosquitto({ users: USERS })
    const publisher = await connectMqtt(mosquitto.urlFor('ext'))
    await publisher.client.publishAsync('fleetgate/devices/d1/commands', '{"name":"stale"}', { qos: 1, retain: true })
    const local = await startLocalBroker({ uplink: { url: mosquitto.urlFor('hub'), reconnectPeriodMs: 100 } })
    await vi.waitFor(() => expect(local.broker.uplink?.stats()).toMatchObject({ subscribed: true, ignoredCommands: 1 }), WAIT)
    // A live command after it still works.
    await publisher.client.publishAsync('fleetgate/devices/d1/commands', '{"name":"live"}', { qos: 1 })
    await vi.waitFor(() => expect(local.commands).toHaveLength(1), WAIT)
    expect(local.commands.map((c) => c.payload)).toEqual([{ name: 'live' }])
    expect(local.broker.uplink?.stats()).toMatchObject({ commands: 1, ignoredCommands: 1 })
  })
})

describe('uplink: outage', () => {
  it('never slows ingestion: the buffer is bounded, drops are counted, and it reconnects and mirrors again', async () => {
    const transitions: boolean[] = []
    const s = await setup({ uplink: { maxBufferedMessages: 1000 }, broker: { onUplinkConnectionChange: (up) => transitions.push(up) }, persistence: true })
    // A persistent session on the external broker, so it keeps what arrives while it reconnects.
    const subscriber = await connectMqtt(s.mosquitto.urlFor('ext'), { clientId: 'ext-persistent', clean: false, reconnectPeriod: 100 })
    await subscriber.subscribe(['fleetgate/devices/+/telemetry', 'fleetgate/devices/+/status'], { qos: 1 })
    s.local.broker.publishTelemetry('d1', reading(-1))
    await vi.waitFor(() => expect(subscriber.received).toHaveLength(1), WAIT)
    const uplink = s.local.broker.uplink
    if (uplink === undefined) throw new Error('no uplink')

    await s.mosquitto.pause()
    await vi.waitFor(() => expect(uplink.connected).toBe(false), WAIT)
    const started = performance.now()
    for (let seq = 0; seq < 10_000; seq++) s.local.broker.publishTelemetry('d1', reading(seq))
    s.local.broker.publishStatus('d1', { device: 'd1', online: false, at: '2024-05-01T10:00:00.000Z' })
    const elapsedMs = performance.now() - started
    // 10,000 synchronous calls, no await anywhere: a few ms of encoding each 1,000, never network time.
    expect(elapsedMs).toBeLessThan(2000)
    // Retained state is kept apart from the drop-oldest buffer: 1,000 newest telemetry + 1 status.
    expect(uplink.stats()).toMatchObject({ connected: false, buffered: 1001, dropped: 9000, inflight: 0, mirrored: 1 })

    await s.mosquitto.start()
    await vi.waitFor(() => expect(uplink.stats()).toMatchObject({ connected: true, connects: 2, buffered: 0, inflight: 0, mirrored: 1002 }), WAIT)
    await vi.waitFor(() => expect(subscriber.received).toHaveLength(1 + 1000 + 1), WAIT)
    const telemetry = subscriber.received.filter((m) => m.topic === 'fleetgate/devices/d1/telemetry').map((m) => seqOf(m.payload))
    expect(telemetry).toEqual([-1, ...Array.from({ length: 1000 }, (_, i) => 9000 + i)])
    expect(subscriber.on('fleetgate/devices/d1/status').map((m) => JSON.parse(m.payload.toString()) as unknown)).toEqual([
      { device: 'd1', online: false, at: '2024-05-01T10:00:00.000Z' },
    ])

    // And it mirrors live again.
    s.local.broker.publishTelemetry('d1', reading(10_000))
    await vi.waitFor(() => expect(subscriber.received).toHaveLength(1003), WAIT)
    expect(seqOf(subscriber.received.at(-1)?.payload ?? Buffer.alloc(0))).toBe(10_000)
    expect(uplink.stats()).toMatchObject({ mirrored: 1003, dropped: 9000 })
    expect(transitions).toEqual([true, false, true])
  })

  it('keeps retrying refused credentials, reports the failure once, and never shows the password', async () => {
    const mosquitto = await startMosquitto({ users: USERS })
    const url = mosquitto.urlFor('hub').replace(encodeURIComponent(USERS.hub), 'wrong-secret')
    const local = await startLocalBroker({ uplink: { url, reconnectPeriodMs: 50 } })
    await vi.waitFor(() => expect(local.broker.uplink?.stats().errors).toBeGreaterThanOrEqual(3), WAIT)
    expect(local.broker.uplink?.connected).toBe(false)
    expect(local.errors.map((e) => [e.code, e.message])).toEqual([
      ['BRIDGE_ERR_UPLINK', `uplink mqtt://hub:***@127.0.0.1:${mosquitto.port}: Connection refused: Not authorized`],
    ])
    expect(local.broker.uplink?.target).toBe(`mqtt://hub:***@127.0.0.1:${mosquitto.port}`)
    // Publishing meanwhile only buffers.
    local.broker.publishTelemetry('d1', reading(1))
    expect(local.broker.uplink?.stats()).toMatchObject({ buffered: 1, mirrored: 0 })
  })
})

describe('createUplink options', () => {
  it.each([
    ['an unknown option', { url: 'mqtt://h', onCommand: () => undefined, retries: 3 }, /unknown option "retries"/],
    ['no onCommand', { url: 'mqtt://h' }, /onCommand must be a function/],
    ['a bad URL', { url: 'mqtt://h/path', onCommand: () => undefined }, /FLEETGATE_MQTT_UPLINK/],
    ['a zero buffer', { url: 'mqtt://h', onCommand: () => undefined, maxBufferedMessages: 0 }, /maxBufferedMessages/],
  ] as Array<[string, unknown, RegExp]>)('refuses %s', (_what, options, message) => {
    // Deliberately wrong options, as a plain JavaScript caller could pass them.
    expect(() => createUplink(options as Parameters<typeof createUplink>[0])).toThrow(message)
  })
})
