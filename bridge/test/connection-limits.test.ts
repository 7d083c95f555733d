import { afterEach, describe, expect, it, vi } from 'vitest'
import { generate } from 'mqtt-packet'
import { MAX_COMMAND_PAYLOAD_BYTES, type TelemetryMessage } from '@fleetgate/bridge'
import { RawMqtt } from '../../test/support/mqtt-raw.js'
import { stopAll } from '../../test/support/service.js'
import { startLocalBroker, type LocalBroker } from './helpers.js'

afterEach(stopAll)

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A telemetry message of about 10 KB as JSON. */
const big = (seq: number): TelemetryMessage => ({ device: 'd1', seq, readings: [{ ts: 1_700_000_000_000 + seq, m: { pad: 'x'.repeat(10_000) } }] })
const BIG_BYTES = Buffer.byteLength(JSON.stringify(big(99_999))) + 64

/** A CONNECT of exactly `remaining` bytes after its fixed header (the user name, which the broker ignores, pads it). */
function connectOfLength(remaining: number, password: string, clientId = 'sized'): Buffer {
  // MQTT 3.1.1 §3.1: 10 bytes of variable header, then client id, user name and password, each with a 2-byte length.
  const username = 'u'.repeat(remaining - 10 - (2 + clientId.length) - 2 - (2 + password.length))
  const packet = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0, username, password: Buffer.from(password) })
  const headerBytes = remaining < 128 ? 2 : remaining < 16_384 ? 3 : 4
  if (packet.length !== headerBytes + remaining) throw new Error(`CONNECT of ${packet.length} bytes, wanted ${headerBytes + remaining}`)
  return packet
}

/** Publishes 10 KB messages in rounds until `done(published)`, letting deliveries run between rounds; at most 4,000. */
async function publishUntil(local: LocalBroker, done: (published: number) => boolean | Promise<boolean>): Promise<number> {
  let seq = 0
  while (!(await done(seq))) {
    if (seq >= 4000) throw new Error('the condition did not come within 4,000 messages (40 MB)')
    for (let i = 0; i < 50; i++) local.broker.publishTelemetry('d1', big(seq++))
    await pause(20)
  }
  return seq
}

describe('a subscriber that stops reading (issue 10)', () => {
  it('is cut once it stays over softBacklogBytes for softBacklogMs; nothing waits on it meanwhile', async () => {
    const local = await startLocalBroker({ softBacklogBytes: 65_536, softBacklogMs: 3000 })
    const good = await local.client('reader-token')
    await good.subscribe('fleetgate/devices/+/telemetry')
    const stalled = await RawMqtt.session(local.port, 'reader-token', 'stalled')
    expect(await stalled.subscribe('fleetgate/#')).toEqual([1])
    stalled.stopReading()

    // The kernel's buffers fill first, then the broker's queue for it. Once the good subscriber has
    // everything, the largest queue is the stalled client's.
    const published = await publishUntil(local, async (n) => {
      await vi.waitFor(() => expect(good.on('fleetgate/devices/d1/telemetry')).toHaveLength(n))
      return local.broker.stats().largestBacklogBytes > 65_536
    })
    // Every publish completes while the stalled client is still connected: it holds nobody up.
    await vi.waitFor(() => expect(local.broker.stats().pendingPublishes).toBe(0))
    expect(local.disconnections).toEqual([])
    expect(good.on('fleetgate/devices/d1/telemetry')).toHaveLength(published)

    await vi.waitFor(() => expect(local.disconnections).toHaveLength(1), { timeout: 5000 })
    expect(local.disconnections).toEqual([{ reason: 'backlog_slow', clientId: 'stalled', actor: 'rita', bytes: expect.any(Number) }])
    expect(local.disconnections[0]?.bytes).toBeGreaterThan(65_536)
    await vi.waitFor(() => expect(local.broker.stats()).toMatchObject({ clients: 1, backlogBytes: 0 }))
    expect(local.broker.stats().disconnects).toEqual({
      packet_too_large: 0, malformed_packet: 0, too_many_unauthenticated: 0, connect_timeout: 0, backlog_full: 0, backlog_slow: 1,
    })
  })

  it('is cut at once past maxBacklogBytes, holding at most one message more', async () => {
    const local = await startLocalBroker({ maxBacklogBytes: 65_536, softBacklogMs: 3_600_000 })
    const stalled = await RawMqtt.session(local.port, 'operator-token', 'stalled')
    await stalled.subscribe('fleetgate/devices/+/telemetry')
    stalled.stopReading()
    await publishUntil(local, () => local.disconnections.length > 0)
    expect(local.disconnections).toEqual([{ reason: 'backlog_full', clientId: 'stalled', actor: 'olga', bytes: expect.any(Number) }])
    expect(local.disconnections[0]?.bytes).toBeGreaterThan(65_536)
    expect(local.disconnections[0]?.bytes).toBeLessThanOrEqual(65_536 + BIG_BYTES)
    await vi.waitFor(() => expect(local.broker.stats()).toMatchObject({ clients: 0, backlogBytes: 0, pendingPublishes: 0 }))
  })

  it('refuses a soft bound above the hard one', async () => {
    await expect(startLocalBroker({ maxBacklogBytes: 65_536, softBacklogBytes: 65_537 })).rejects.toMatchObject({
      code: 'BRIDGE_ERR_INVALID_OPTION',
      message: 'softBacklogBytes must be an integer from 16384 to 65536, got 65537',
    })
  })
})

describe('packet size limits (issue 10)', () => {
  it('cuts a CONNECT that declares 256 MiB as soon as its length is read, before any of its body', async () => {
    const local = await startLocalBroker()
    const raw = await RawMqtt.open(local.port)
    // CONNECT, remaining length 268,435,455 (the largest MQTT can declare), and not one byte more.
    raw.sendRaw(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]))
    await raw.closed
    expect(local.disconnections).toEqual([{ reason: 'packet_too_large', clientId: '', actor: undefined, bytes: 268_435_455 }])
    expect(local.broker.stats()).toMatchObject({ unauthenticated: 0, clients: 0 })
  })

  it('takes a CONNECT of exactly maxConnectPacketBytes and cuts one byte more', async () => {
    const local = await startLocalBroker({ maxConnectPacketBytes: 256 })
    const fits = await RawMqtt.open(local.port)
    fits.sendRaw(connectOfLength(256, 'reader-token'))
    expect(await fits.next(5000)).toMatchObject({ cmd: 'connack', returnCode: 0 })
    const over = await RawMqtt.open(local.port)
    over.sendRaw(connectOfLength(257, 'reader-token'))
    await over.closed
    expect(over.packets).toEqual([])
    expect(local.disconnections).toEqual([{ reason: 'packet_too_large', clientId: '', actor: undefined, bytes: 257 }])
  })

  it('after CONNECT, takes a command with the largest payload the bridge decodes and cuts a packet over maxPacketBytes', async () => {
    const local = await startLocalBroker()
    const operator = await RawMqtt.session(local.port, 'operator-token', 'op')
    const params = 'p'.repeat(MAX_COMMAND_PAYLOAD_BYTES - '{"name":"big","params":""}'.length)
    const payload = JSON.stringify({ name: 'big', params })
    expect(Buffer.byteLength(payload)).toBe(MAX_COMMAND_PAYLOAD_BYTES)
    operator.send({ cmd: 'publish', topic: 'fleetgate/devices/d1/commands', payload, qos: 1, messageId: 7, retain: false, dup: false })
    expect(await operator.next(5000)).toMatchObject({ cmd: 'puback', messageId: 7 })
    expect(local.commands).toEqual([{ deviceId: 'd1', payload: { name: 'big', params }, actor: { name: 'olga', scope: 'operator' }, source: 'mqtt' }])

    // A PUBLISH header declaring 1 MiB, then a trickle of its body: cut on the header.
    operator.sendRaw(Buffer.from([0x32, 0x80, 0x80, 0x40, 0x00, 0x1d]))
    await operator.closed
    expect(local.disconnections).toEqual([{ reason: 'packet_too_large', clientId: 'op', actor: 'olga', bytes: 1_048_576 }])
    expect(local.broker.stats().disconnects.packet_too_large).toBe(1)
  })

  it('cuts a remaining length that runs past 4 bytes (MQTT 3.1.1 §2.2.3)', async () => {
    const local = await startLocalBroker()
    const raw = await RawMqtt.open(local.port)
    raw.sendRaw(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]))
    await raw.closed
    expect(local.disconnections).toEqual([{ reason: 'malformed_packet', clientId: '', actor: undefined, bytes: 0 }])
  })
})

describe('connections that have not authenticated (issue 10)', () => {
  it('holds at most maxUnauthenticated at once; the next is closed at once, and a slot frees when one authenticates', async () => {
    const local = await startLocalBroker({ maxUnauthenticated: 3 })
    const waiting = await Promise.all([1, 2, 3].map(async () => await RawMqtt.open(local.port)))
    await vi.waitFor(() => expect(local.broker.stats().unauthenticated).toBe(3))
    const fourth = await RawMqtt.open(local.port)
    await fourth.closed
    expect(local.disconnections).toEqual([{ reason: 'too_many_unauthenticated', clientId: '', actor: undefined, bytes: 0 }])

    const first = waiting[0] as RawMqtt
    first.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'late', keepalive: 0, username: 'u', password: Buffer.from('reader-token') })
    expect(await first.next(5000)).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(local.broker.stats()).toMatchObject({ unauthenticated: 2, clients: 1 })
    const reader = await local.client('reader-token')
    expect(reader.client.connected).toBe(true)
    for (const raw of waiting.slice(1)) raw.destroy()
    await vi.waitFor(() => expect(local.broker.stats().unauthenticated).toBe(0))
    expect(local.disconnections).toHaveLength(1)
  })

  it('cuts a connection whose CONNECT trickles in slower than connectTimeoutMs, however steady the bytes', async () => {
    const local = await startLocalBroker({ connectTimeoutMs: 500 })
    const raw = await RawMqtt.open(local.port)
    const connect = connectOfLength(100, 'reader-token')
    const opened = Date.now()
    let sent = 0
    // One byte every 20 ms: the CONNECT would take 2 s to arrive.
    while (!raw.isClosed && sent < connect.length) {
      raw.sendRaw(connect.subarray(sent, ++sent))
      await pause(20)
    }
    await raw.closed
    const elapsedMs = Date.now() - opened
    expect(sent).toBeLessThan(connect.length)
    expect(elapsedMs).toBeGreaterThanOrEqual(500)
    expect(local.disconnections).toEqual([{ reason: 'connect_timeout', clientId: '', actor: undefined, bytes: 0 }])
    expect(local.broker.stats()).toMatchObject({ unauthenticated: 0, clients: 0 })
  })

  it('close() ends connections that never sent CONNECT', async () => {
    const local = await startLocalBroker({ connectTimeoutMs: 600_000 })
    const raw = await RawMqtt.open(local.port)
    await vi.waitFor(() => expect(local.broker.stats().unauthenticated).toBe(1))
    await local.broker.close()
    await raw.closed
  })
})
