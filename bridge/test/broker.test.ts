import { Decoder } from 'cbor-x'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BridgeError, createBroker, getCodec, type Actor, type BrokerOptions, type TelemetryMessage } from '@fleetgate/bridge'
import { stopAll } from '../../test/support/service.js'
import type { TestClient } from '../../test/support/mqtt-client.js'
import { connectError, startLocalBroker, TOKENS, type LocalBroker } from './helpers.js'

afterEach(stopAll)

const OLGA: Actor = { name: 'olga', scope: 'operator' }
const ALICE: Actor = { name: 'alice', scope: 'admin' }
const cbor = new Decoder({ useRecords: false, mapsAsObjects: true })

const reading = (seq: number, device = 'd1'): TelemetryMessage => ({
  device,
  seq,
  readings: [{ ts: 1_700_000_000_000 + seq, m: { t: 21.5, n: seq, ok: true, s: 'x' }, g: { room: 'k' } }],
})

/** Publishes a telemetry sentinel and waits until `watcher` has it: everything published before it was delivered or never will be. */
async function flush(local: LocalBroker, watcher: TestClient, device = 'sentinel'): Promise<void> {
  local.broker.publishTelemetry(device, reading(0, device))
  await vi.waitFor(() => expect(watcher.on(`fleetgate/devices/${device}/telemetry`)).toHaveLength(1))
}

describe('authentication (docs/mqtt.md: password = operator token)', () => {
  it.each(Object.entries(TOKENS))('accepts %s as %o, with any user name', async (token) => {
    const local = await startLocalBroker()
    const client = await local.client(token, { username: `user-${token}` })
    expect(client.client.connected).toBe(true)
    expect(local.broker.clients).toBe(1)
    expect(local.refusals).toEqual([])
  })

  it.each([
    ['anonymous', undefined, {}, 'no_password'],
    ['a user name without password', undefined, { username: 'alice' }, 'no_password'],
    ['an empty password', '', {}, 'no_password'],
    ['an unknown token', 'nope', {}, 'unknown_token'],
    ['a token with a wrong case', 'ADMIN-TOKEN', {}, 'unknown_token'],
  ] as const)('refuses %s with CONNACK 4 "bad user name or password"', async (_what, token, options, reason) => {
    const local = await startLocalBroker()
    const err = await connectError(local, token, options)
    expect(err).toEqual({ code: 4, message: 'Connection refused: Bad username or password' })
    expect(local.broker.stats().refusedConnects).toBe(1)
    expect(local.refusals).toEqual([{ kind: 'connect', reason, clientId: expect.any(String), actor: undefined, topic: undefined }])
    expect(local.broker.clients).toBe(0)
  })

  it('answers CONNACK 3 when the hub\'s authenticate throws, and reports it', async () => {
    const local = await startLocalBroker({ authenticate: () => { throw new Error('store down') } })
    expect(await connectError(local, 'admin-token')).toEqual({ code: 3, message: 'Connection refused: Server unavailable' })
    expect(local.errors.map((e) => [e.code, e.message, (e.cause as Error).message])).toEqual([['BRIDGE_ERR_HANDLER', 'authenticate threw', 'store down']])
  })
})

describe('publish ACL (deny by default)', () => {
  const allowed = [
    ['operator', 'operator-token', 0, OLGA],
    ['operator', 'operator-token', 1, OLGA],
    ['admin', 'admin-token', 0, ALICE],
    ['admin', 'admin-token', 1, ALICE],
  ] as const
  it.each(allowed)('%s may publish a command at QoS %i', async (_scope, token, qos, actor) => {
    const local = await startLocalBroker()
    const watcher = await local.client('reader-token')
    expect(await watcher.subscribe('fleetgate/#')).toEqual([1])
    const publisher = await local.client(token)
    const payload = JSON.stringify({ name: 'reboot', params: { delay: 5 } })
    await publisher.client.publishAsync('fleetgate/devices/d1/commands', payload, { qos })
    await vi.waitFor(() => expect(local.commands).toHaveLength(1))
    expect(local.commands).toEqual([{ deviceId: 'd1', payload: { name: 'reboot', params: { delay: 5 } }, actor, source: 'mqtt' }])
    // Local subscribers see the command itself (docs/mqtt.md lists the topic as published by operators).
    await flush(local, watcher)
    expect(watcher.on('fleetgate/devices/d1/commands').map((m) => m.payload.toString())).toEqual([payload])
    expect(publisher.client.connected).toBe(true)
    expect(local.broker.stats()).toMatchObject({ mqttCommands: 1, refusedPublishes: 0, invalidCommands: 0 })
  })

  const refused = [
    ['a reader, a command', 'reader-token', 'fleetgate/devices/d1/commands', {}, 'scope'],
    ['an admin, telemetry', 'admin-token', 'fleetgate/devices/d1/telemetry', {}, 'topic'],
    ['an operator, status', 'operator-token', 'fleetgate/devices/d1/status', {}, 'topic'],
    ['an admin, a command result', 'admin-token', 'fleetgate/devices/d1/commands/c1', {}, 'topic'],
    ['a reader, telemetry', 'reader-token', 'fleetgate/devices/d1/telemetry', {}, 'scope'],
    ['an admin, a topic outside fleetgate/', 'admin-token', 'other/topic', {}, 'topic'],
    ['an admin, $SYS', 'admin-token', '$SYS/x', {}, 'topic'],
    ['an operator, a bad device id', 'operator-token', 'fleetgate/devices/d.1/commands', {}, 'topic'],
    ['an operator, a retained command', 'operator-token', 'fleetgate/devices/d1/commands', { retain: true }, 'retain'],
    ['an operator, a command at QoS 2', 'operator-token', 'fleetgate/devices/d1/commands', { qos: 2 }, 'qos'],
  ] as const
  it.each(refused)('refuses %s: the client is disconnected, nothing is delivered', async (_what, token, topic, options, reason) => {
    const local = await startLocalBroker()
    const watcher = await local.client('admin-token')
    expect(await watcher.subscribe(['fleetgate/#'])).toEqual([1])
    const publisher = await local.client(token)
    publisher.client.publish(topic, JSON.stringify({ name: 'reboot' }), { qos: 0, ...options })
    // MQTT-3.3.5-2: the only signal MQTT 3.1.1 has for a refused PUBLISH is closing the connection.
    await publisher.closed
    await flush(local, watcher)
    expect(watcher.received.map((m) => m.topic)).toEqual(['fleetgate/devices/sentinel/telemetry'])
    expect(local.commands).toEqual([])
    const name = TOKENS[token]?.name
    expect(local.refusals).toEqual([{ kind: 'publish', reason, clientId: publisher.client.options.clientId, actor: name, topic }])
    expect(local.broker.stats()).toMatchObject({ refusedPublishes: 1, mqttCommands: 0, clients: 1 })
    expect(watcher.client.connected).toBe(true)
  })
})

describe('subscribe ACL', () => {
  it.each(Object.keys(TOKENS))('%s: filters under fleetgate/ are granted, others get 0x80 and the client stays', async (token) => {
    const local = await startLocalBroker()
    const client = await local.client(token)
    const filters = ['fleetgate/#', '#', '$SYS/#', 'other/x', 'fleetgate/devices/+/telemetry', '+/devices/d1/status', 'fleetgate']
    expect(await client.subscribe(filters, { qos: 1 })).toEqual([1, 128, 128, 128, 1, 128, 128])
    expect(local.broker.stats().refusedSubscribes).toBe(5)
    expect(local.refusals.map((r) => [r.kind, r.reason, r.topic, r.actor])).toEqual(
      ['#', '$SYS/#', 'other/x', '+/devices/d1/status', 'fleetgate'].map((f) => ['subscribe', 'topic', f, TOKENS[token]?.name]),
    )
    // Still connected, and the granted filters work: one message, delivered once (two matching filters).
    await flush(local, client)
    expect(client.received).toHaveLength(1)
    expect(client.client.connected).toBe(true)
  })

  it('grants QoS 0 and 2 as asked; the hub publishes at QoS 1, so delivery is at most QoS 1', async () => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    expect(await client.subscribe('fleetgate/devices/d0/telemetry', { qos: 0 })).toEqual([0])
    expect(await client.subscribe('fleetgate/devices/d2/telemetry', { qos: 2 })).toEqual([2])
    local.broker.publishTelemetry('d0', reading(1, 'd0'))
    local.broker.publishTelemetry('d2', reading(1, 'd2'))
    await vi.waitFor(() => expect(client.received).toHaveLength(2))
    expect(client.received.map((m) => [m.topic, m.qos])).toEqual([
      ['fleetgate/devices/d0/telemetry', 0],
      ['fleetgate/devices/d2/telemetry', 1],
    ])
  })
})

describe('hub publishes', () => {
  it('json: telemetry published once is received once, byte for byte', async () => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    await client.subscribe('fleetgate/devices/+/telemetry', { qos: 1 })
    const message = reading(42)
    local.broker.publishTelemetry('d1', message)
    await flush(local, client)
    const got = client.on('fleetgate/devices/d1/telemetry')
    expect(got).toHaveLength(1)
    expect(got[0]?.payload.toString('utf8')).toBe(JSON.stringify(message))
    expect(got[0]).toMatchObject({ qos: 1, retain: false })
    expect(local.broker.stats()).toMatchObject({ publishedTelemetry: 2 })
  })

  it('skips telemetry while no client is connected (nothing is encoded or counted), and delivers again once one is', async () => {
    const local = await startLocalBroker()
    local.broker.publishTelemetry('d1', reading(1))
    expect(local.broker.stats()).toMatchObject({ publishedTelemetry: 0, pendingPublishes: 0 })
    const client = await local.client('reader-token')
    await client.subscribe('fleetgate/devices/+/telemetry', { qos: 1 })
    local.broker.publishTelemetry('d1', reading(2))
    await flush(local, client)
    expect(client.on('fleetgate/devices/d1/telemetry').map((m) => (JSON.parse(m.payload.toString('utf8')) as TelemetryMessage).seq)).toEqual([2])
  })

  it('cbor: telemetry, status and results are plain CBOR maps, byte for byte', async () => {
    const local = await startLocalBroker({ format: 'cbor' })
    const client = await local.client('reader-token')
    await client.subscribe('fleetgate/#', { qos: 1 })
    const message = { ...reading(9), readings: [{ ts: 5, m: { t: 1.5 }, g: undefined }] }
    const status = { device: 'd1', online: true, at: '2024-05-01T10:00:00.000Z' }
    const record = { id: 'c1', device: 'd1', name: 'reboot', params: null, status: 'succeeded', createdAt: '2024-05-01T10:00:00.000Z', result: { up: 3 } }
    local.broker.publishTelemetry('d1', message)
    local.broker.publishStatus('d1', status)
    local.broker.publishCommandResult('d1', 'c1', record)
    await vi.waitFor(() => expect(client.received).toHaveLength(3))
    const byTopic = Object.fromEntries(client.received.map((m) => [m.topic, m.payload]))
    expect(cbor.decode(byTopic['fleetgate/devices/d1/telemetry'] ?? Buffer.alloc(0))).toEqual({ device: 'd1', seq: 9, readings: [{ ts: 5, m: { t: 1.5 } }] })
    expect(byTopic['fleetgate/devices/d1/telemetry']?.equals(getCodec('cbor').encode(message))).toBe(true)
    expect(cbor.decode(byTopic['fleetgate/devices/d1/status'] ?? Buffer.alloc(0))).toEqual(status)
    expect(cbor.decode(byTopic['fleetgate/devices/d1/commands/c1'] ?? Buffer.alloc(0))).toEqual(record)
    expect(local.broker.stats()).toMatchObject({ publishedTelemetry: 1, publishedStatus: 1, publishedResults: 1 })
  })

  it('status is retained: a late subscriber gets the latest status only', async () => {
    const local = await startLocalBroker()
    local.broker.publishStatus('d1', { device: 'd1', online: true, at: '2024-05-01T10:00:00.000Z' })
    local.broker.publishStatus('d1', { device: 'd1', online: false, at: '2024-05-01T10:05:00.000Z' })
    local.broker.publishStatus('d2', { device: 'd2', online: true, at: '2024-05-01T10:06:00.000Z' })
    await vi.waitFor(() => expect(local.broker.stats().pendingPublishes).toBe(0))
    const late = await local.client('reader-token')
    await late.subscribe(['fleetgate/devices/d1/status', 'fleetgate/devices/sentinel/telemetry'], { qos: 1 })
    await flush(local, late)
    expect(late.on('fleetgate/devices/d1/status').map((m) => [m.payload.toString(), m.retain])).toEqual([
      [JSON.stringify({ device: 'd1', online: false, at: '2024-05-01T10:05:00.000Z' }), true],
    ])
  })

  it('a twin is retained: a late subscriber gets the latest one, and an empty payload clears it', async () => {
    const local = await startLocalBroker()
    const twin = (v: number): object => ({ device: 'd1', desired: { a: v }, desiredVersion: v, reported: {}, reportedVersion: 0, delta: { a: v } })
    local.broker.publishTwin('d1', twin(1))
    local.broker.publishTwin('d1', twin(2))
    local.broker.publishTwin('d2', twin(1))
    local.broker.publishTwin('d2', undefined)
    await vi.waitFor(() => expect(local.broker.stats().pendingPublishes).toBe(0))
    const late = await local.client('reader-token')
    await late.subscribe(['fleetgate/devices/+/twin', 'fleetgate/devices/sentinel/telemetry'], { qos: 1 })
    await flush(local, late)
    expect(late.received.filter((m) => m.topic.endsWith('/twin')).map((m) => [m.topic, m.payload.toString(), m.retain])).toEqual([
      ['fleetgate/devices/d1/twin', JSON.stringify(twin(2)), true],
    ])
    expect(local.broker.stats()).toMatchObject({ publishedTwins: 4 })
    expect(() => local.broker.publishTwin('a+b', twin(1))).toThrow(expect.objectContaining({ code: 'BRIDGE_ERR_INVALID_ARGUMENT' }))
  })

  it('a result goes to fleetgate/devices/{id}/commands/{cmdId}, not retained', async () => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    await client.subscribe('fleetgate/devices/d1/commands/+', { qos: 1 })
    const record = { id: 'c-7', device: 'd1', name: 'n', status: 'failed', error: 'boom' }
    local.broker.publishCommandResult('d1', 'c-7', record)
    await vi.waitFor(() => expect(client.received).toHaveLength(1))
    expect(client.received).toEqual([{ topic: 'fleetgate/devices/d1/commands/c-7', payload: Buffer.from(JSON.stringify(record)), qos: 1, retain: false }])
  })

  it('refuses ids that cannot make a topic', async () => {
    const local = await startLocalBroker()
    expect(() => local.broker.publishTelemetry('a/b', reading(1))).toThrow(expect.objectContaining({ code: 'BRIDGE_ERR_INVALID_ARGUMENT' }))
    expect(() => local.broker.publishStatus('#', { device: '#', online: true, at: '' })).toThrow(BridgeError)
    expect(() => local.broker.publishCommandResult('d1', 'a/+', {})).toThrow(expect.objectContaining({ code: 'BRIDGE_ERR_INVALID_ARGUMENT' }))
    expect(local.broker.stats()).toMatchObject({ publishedTelemetry: 0, publishedStatus: 0, publishedResults: 0 })
  })

})

describe('commands from local clients', () => {
  it('cbor: a CBOR command reaches onCommand decoded', async () => {
    const local = await startLocalBroker({ format: 'cbor' })
    const client = await local.client('admin-token')
    const command = { id: 'x1', name: 'set', params: { level: 3, on: true, tags: ['a'] }, ttlMs: 1000 }
    await client.client.publishAsync('fleetgate/devices/d9/commands', getCodec('cbor').encode(command), { qos: 1 })
    await vi.waitFor(() => expect(local.commands).toHaveLength(1))
    expect(local.commands).toEqual([{ deviceId: 'd9', payload: command, actor: ALICE, source: 'mqtt' }])
  })

  it.each([
    ['json', Buffer.from('{"name": "reboot"'), 'malformed'],
    ['json', Buffer.from([0xa1, 0x61, 0x61, 0x01]), 'malformed'],
    ['cbor', Buffer.from('{"name":"reboot"}'), 'malformed'],
    ['cbor', Buffer.from('c11a514b67b0', 'hex'), 'not_json'],
  ] as const)('%s: an undecodable command is refused like an ACL breach and reported (%s)', async (format, payload, reason) => {
    const local = await startLocalBroker({ format })
    const watcher = await local.client('reader-token')
    await watcher.subscribe('fleetgate/#')
    const client = await local.client('operator-token')
    client.client.publish('fleetgate/devices/d1/commands', payload, { qos: 1 })
    await client.closed
    await flush(local, watcher)
    expect(watcher.received.map((m) => m.topic)).toEqual(['fleetgate/devices/sentinel/telemetry'])
    expect(local.commands).toEqual([])
    expect(local.invalid).toEqual([{ deviceId: 'd1', reason, actor: OLGA, source: 'mqtt' }])
    expect(local.broker.stats()).toMatchObject({ invalidCommands: 1, mqttCommands: 0, refusedPublishes: 0 })
  })

  it('a throwing onCommand is reported and does not break the broker', async () => {
    let calls = 0
    const local = await startLocalBroker({ onCommand: () => { calls++; throw new Error('hub bug') } })
    const client = await local.client('operator-token')
    await client.client.publishAsync('fleetgate/devices/d1/commands', '{"name":"a"}', { qos: 1 })
    await client.client.publishAsync('fleetgate/devices/d1/commands', '{"name":"b"}', { qos: 1 })
    await vi.waitFor(() => expect(calls).toBe(2))
    expect(local.errors.map((e) => [e.code, e.message])).toEqual([['BRIDGE_ERR_HANDLER', 'onCommand threw'], ['BRIDGE_ERR_HANDLER', 'onCommand threw']])
    expect(client.client.connected).toBe(true)
  })

  it('a Last Will is dropped at CONNECT: a lost connection never fires a command', async () => {
    const local = await startLocalBroker()
    const watcher = await local.client('reader-token')
    await watcher.subscribe('fleetgate/#')
    const client = await local.client('operator-token', { will: { topic: 'fleetgate/devices/d1/commands', payload: Buffer.from('{"name":"will"}'), qos: 1, retain: false } })
    client.client.stream.destroy()
    await client.closed
    await vi.waitFor(() => expect(local.broker.clients).toBe(1))
    await flush(local, watcher)
    expect(watcher.received.map((m) => m.topic)).toEqual(['fleetgate/devices/sentinel/telemetry'])
    expect(local.commands).toEqual([])
    expect(local.refusals).toEqual([])
  })

  it('sessions are always clean: nothing is queued for an absent subscriber', async () => {
    const local = await startLocalBroker()
    const first = await local.client('reader-token', { clientId: 'persistent-1', clean: false })
    expect(first.sessionPresent).toBe(false)
    await first.subscribe('fleetgate/#', { qos: 1 })
    await first.stop(true)
    await vi.waitFor(() => expect(local.broker.clients).toBe(0))
    local.broker.publishTelemetry('d1', reading(1))
    await vi.waitFor(() => expect(local.broker.stats().pendingPublishes).toBe(0))
    const again = await local.client('reader-token', { clientId: 'persistent-1', clean: false })
    expect(again.sessionPresent).toBe(false)
    await again.subscribe('fleetgate/devices/sentinel/#')
    await flush(local, again)
    expect(again.received.map((m) => m.topic)).toEqual(['fleetgate/devices/sentinel/telemetry'])
  })
})

describe('lifecycle and options', () => {
  it('close() disconnects every client; later connections and publishes are ignored', async () => {
    const local = await startLocalBroker()
    const a = await local.client('reader-token')
    const b = await local.client('admin-token')
    expect(local.broker.clients).toBe(2)
    await local.broker.close()
    await Promise.all([a.closed, b.closed])
    expect(local.broker.clients).toBe(0)
    await expect(local.client('admin-token')).rejects.toThrow()
    local.broker.publishTelemetry('d1', reading(1))
    local.broker.publishStatus('d1', { device: 'd1', online: false, at: 'x' })
    expect(local.broker.stats()).toMatchObject({ publishedTelemetry: 0, publishedStatus: 0 })
    await local.broker.close()
  })

  const base: BrokerOptions = { authenticate: () => undefined, onCommand: () => undefined }
  it.each([
    ['an unknown option', { ...base, port: 1883 }, /unknown option "port"/],
    ['a missing authenticate', { onCommand: () => undefined }, /authenticate must be a function/],
    ['a bad format', { ...base, format: 'xml' }, /FLEETGATE_MQTT_FORMAT/],
    ['a bad uplink URL', { ...base, uplink: { url: 'http://u:secret@h' } }, /FLEETGATE_MQTT_UPLINK/],
    ['an unknown uplink option', { ...base, uplink: { url: 'mqtt://h', onCommand: () => undefined } }, /unknown option "onCommand"/],
  ] as Array<[string, unknown, RegExp]>)('refuses %s with BRIDGE_ERR_INVALID_OPTION', async (_what, options, message) => {
    // Deliberately wrong options, as a plain JavaScript caller could pass them.
    const promise = createBroker(options as BrokerOptions)
    await expect(promise).rejects.toThrow(message)
    await expect(promise).rejects.toMatchObject({ code: 'BRIDGE_ERR_INVALID_OPTION' })
  })
})
