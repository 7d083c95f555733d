import type { IPublishPacket, Packet } from 'mqtt-packet'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { TelemetryMessage } from '@fleetgate/bridge'
import type { TestClient } from '../../test/support/mqtt-client.js'
import { RawMqtt } from '../../test/support/mqtt-raw.js'
import { stopAll } from '../../test/support/service.js'
import { startLocalBroker, type LocalBroker } from './helpers.js'

afterEach(stopAll)

const reading = (seq: number, device = 'd1'): TelemetryMessage => ({ device, seq, readings: [{ ts: 1_700_000_000_000 + seq, m: { t: 21.5, n: seq } }] })
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The next packet of `raw`, which must be a PUBLISH. */
async function nextPublish(raw: RawMqtt): Promise<IPublishPacket> {
  const packet: Packet = await raw.next(5000)
  if (packet.cmd !== 'publish') throw new Error(`expected a PUBLISH, got ${JSON.stringify(packet)}`)
  return packet
}

/** What a delivery says: its topic, and the seq of a telemetry message or the device of a status. */
function what(packet: IPublishPacket): string {
  const body = JSON.parse(packet.payload.toString()) as { seq?: number; device?: string; id?: string }
  return `${packet.topic} ${body.seq ?? body.id ?? body.device ?? ''}`
}

/** The packet id after `id` in aedes's counter (lib/qos-packet.js): 65535 is followed by 1. */
const after = (id: number): number => (id >= 65_535 ? 1 : id + 1)

/** Publishes a telemetry sentinel and waits until `watcher` has it: everything published before it was delivered or never will be. */
async function flush(local: LocalBroker, watcher: TestClient): Promise<void> {
  const before = watcher.on('fleetgate/devices/sentinel/telemetry').length
  local.broker.publishTelemetry('sentinel', reading(0, 'sentinel'))
  await vi.waitFor(() => expect(watcher.on('fleetgate/devices/sentinel/telemetry')).toHaveLength(before + 1))
}

/** What `client` received, sentinels left out, as `what` says it. */
const seen = (client: TestClient): string[] =>
  client.received.filter((m) => m.topic !== 'fleetgate/devices/sentinel/telemetry').map((m) => `${m.topic} ${(JSON.parse(m.payload.toString()) as { seq?: number; device?: string }).seq ?? ''}`.trim())

describe("the hub's publishes, delivered without aedes.publish", () => {
  it('QoS 1: every message once, in order, packet ids one after another from the counter aedes uses for the same client, PUBACKs taken without error', async () => {
    const local = await startLocalBroker()
    local.broker.publishStatus('d1', { device: 'd1', online: true, at: '2024-05-01T10:00:00.000Z' })
    const raw = await RawMqtt.session(local.port, 'reader-token', 'raw-1')
    expect(await raw.subscribe('fleetgate/#', 1)).toEqual([1])
    // aedes sends the retained status on SUBACK, with an id from the client's counter.
    const retained = await nextPublish(raw)
    expect([what(retained), retained.qos, retained.retain]).toEqual(['fleetgate/devices/d1/status d1', 1, true])
    raw.send({ cmd: 'puback', messageId: retained.messageId as number })

    const expected: string[] = []
    const publish = (round: number): void => {
      for (let i = 0; i < 300; i++) {
        const device = `d${i % 4}`
        local.broker.publishTelemetry(device, reading(round * 300 + i, device))
        expected.push(`fleetgate/devices/${device}/telemetry ${round * 300 + i}`)
      }
      local.broker.publishCommandResult('d1', `c${round}`, { id: `c${round}` })
      expected.push(`fleetgate/devices/d1/commands/c${round} c${round}`)
    }
    publish(0)
    await turn()
    publish(1)
    // An operator's command goes through aedes.publish, to the same client, with ids from the same counter.
    const operator = await local.client('operator-token')
    await operator.client.publishAsync('fleetgate/devices/d3/commands', '{"name":"reboot"}', { qos: 1 })
    publish(2)

    const got: string[] = []
    let id = retained.messageId as number
    for (let n = 0; n < expected.length + 1; n++) {
      const packet = await nextPublish(raw)
      id = after(id)
      expect([packet.qos, packet.retain, packet.messageId]).toEqual([1, false, id])
      raw.send({ cmd: 'puback', messageId: id })
      got.push(what(packet))
    }
    expect(got.filter((w) => !w.startsWith('fleetgate/devices/d3/commands '))).toEqual(expected)
    expect(got.filter((w) => w.startsWith('fleetgate/devices/d3/commands '))).toEqual(['fleetgate/devices/d3/commands '])

    // Still served: a PUBACK for an id aedes never stored is dropped quietly, and more messages come.
    local.broker.publishTelemetry('d1', reading(9999))
    const last = await nextPublish(raw)
    expect([what(last), last.messageId]).toEqual(['fleetgate/devices/d1/telemetry 9999', after(id)])
    expect(raw.isClosed).toBe(false)
    expect(local.errors).toEqual([])
    expect(local.disconnections).toEqual([])
  })

  it('QoS 0: a QoS 0 subscriber gets QoS 0 packets, without packet ids', async () => {
    const local = await startLocalBroker()
    const raw = await RawMqtt.session(local.port, 'reader-token', 'raw-0')
    expect(await raw.subscribe('fleetgate/devices/+/telemetry', 0)).toEqual([0])
    local.broker.publishTelemetry('d1', reading(1))
    local.broker.publishTelemetry('d2', reading(2, 'd2'))
    const packets = [await nextPublish(raw), await nextPublish(raw)]
    expect(packets.map((p) => [what(p), p.qos, p.retain, p.messageId])).toEqual([
      ['fleetgate/devices/d1/telemetry 1', 0, false, undefined],
      ['fleetgate/devices/d2/telemetry 2', 0, false, undefined],
    ])
  })

  it('wildcard and exact filters each get what they match, and nothing else', async () => {
    const local = await startLocalBroker()
    const filters = {
      all: 'fleetgate/#',
      telemetry: 'fleetgate/devices/+/telemetry',
      d2status: 'fleetgate/devices/d2/status',
      d1: 'fleetgate/devices/d1/#',
      results: 'fleetgate/devices/+/commands/+',
    }
    const clients = Object.fromEntries(
      await Promise.all(
        Object.entries(filters).map(async ([name, filter]) => {
          const client = await local.client('reader-token')
          await client.subscribe([filter, 'fleetgate/devices/sentinel/telemetry'])
          return [name, client] as const
        }),
      ),
    )
    for (const device of ['d1', 'd2']) {
      local.broker.publishTelemetry(device, reading(1, device))
      local.broker.publishStatus(device, { device, online: true, at: 'x' })
      local.broker.publishCommandResult(device, 'c1', { id: 'c1' })
    }
    const topics = (name: string): string[] => {
      const client = clients[name]
      if (client === undefined) throw new Error(name)
      return client.received.map((m) => m.topic).filter((t) => !t.includes('sentinel'))
    }
    for (const client of Object.values(clients)) await flush(local, client)
    expect(topics('all')).toEqual([
      'fleetgate/devices/d1/telemetry', 'fleetgate/devices/d1/status', 'fleetgate/devices/d1/commands/c1',
      'fleetgate/devices/d2/telemetry', 'fleetgate/devices/d2/status', 'fleetgate/devices/d2/commands/c1',
    ])
    expect(topics('telemetry')).toEqual(['fleetgate/devices/d1/telemetry', 'fleetgate/devices/d2/telemetry'])
    expect(topics('d2status')).toEqual(['fleetgate/devices/d2/status'])
    expect(topics('d1')).toEqual(['fleetgate/devices/d1/telemetry', 'fleetgate/devices/d1/status', 'fleetgate/devices/d1/commands/c1'])
    expect(topics('results')).toEqual(['fleetgate/devices/d1/commands/c1', 'fleetgate/devices/d2/commands/c1'])
  })

  it('a SUBSCRIBE or UNSUBSCRIBE mid-stream changes what the next publish reaches', async () => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    await client.subscribe(['fleetgate/devices/d1/telemetry', 'fleetgate/devices/sentinel/telemetry'])
    local.broker.publishTelemetry('d1', reading(1))
    local.broker.publishTelemetry('d2', reading(1, 'd2'))
    await flush(local, client)
    expect(seen(client)).toEqual(['fleetgate/devices/d1/telemetry 1'])

    // Both topics have been matched (and cached) before each change.
    await client.subscribe('fleetgate/devices/d2/telemetry')
    local.broker.publishTelemetry('d1', reading(2))
    local.broker.publishTelemetry('d2', reading(2, 'd2'))
    await flush(local, client)
    await client.client.unsubscribeAsync('fleetgate/devices/d1/telemetry')
    local.broker.publishTelemetry('d1', reading(3))
    local.broker.publishTelemetry('d2', reading(3, 'd2'))
    await flush(local, client)
    expect(seen(client)).toEqual([
      'fleetgate/devices/d1/telemetry 1',
      'fleetgate/devices/d1/telemetry 2',
      'fleetgate/devices/d2/telemetry 2',
      'fleetgate/devices/d2/telemetry 3',
    ])
  })

  it.each([
    [[['fleetgate/#', 0], ['fleetgate/devices/+/telemetry', 1]], 1],
    [[['fleetgate/devices/+/telemetry', 1], ['fleetgate/#', 0]], 1],
    [[['fleetgate/#', 1], ['fleetgate/devices/+/telemetry', 0]], 1],
    [[['fleetgate/devices/d1/telemetry', 1], ['fleetgate/#', 0]], 1],
    [[['fleetgate/#', 1], ['fleetgate/devices/d1/telemetry', 0]], 1],
    [[['fleetgate/#', 0], ['fleetgate/devices/d1/telemetry', 0]], 0],
    [[['fleetgate/#', 2], ['fleetgate/devices/d1/telemetry', 0]], 1],
  ] as const)('overlapping filters %j: one copy, at the highest QoS they grant (MQTT-3.3.5-1): %d', async (filters, qos) => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    for (const [filter, granted] of filters) await client.subscribe(filter, { qos: granted })
    local.broker.publishTelemetry('d1', reading(1))
    local.broker.publishTelemetry('d1', reading(2))
    await flush(local, client)
    expect(client.received.filter((m) => m.topic === 'fleetgate/devices/d1/telemetry').map((m) => m.qos)).toEqual([qos, qos])
  })

  it('keeps the order of publishing across telemetry, status and results; none is dropped (aedes dedupe, moscajs/aedes#994)', async () => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    await client.subscribe('fleetgate/#', { qos: 1 })
    const expected: string[] = []
    for (let round = 0; round < 50; round++) {
      local.broker.publishTelemetry('d1', reading(round * 2))
      local.broker.publishStatus(`s${round}`, { device: `s${round}`, online: true, at: String(round) })
      local.broker.publishCommandResult('d1', `c${round}`, { id: `c${round}` })
      local.broker.publishTelemetry('d1', reading(round * 2 + 1))
      expected.push(`fleetgate/devices/d1/telemetry ${round * 2}`, `fleetgate/devices/s${round}/status`, `fleetgate/devices/d1/commands/c${round}`, `fleetgate/devices/d1/telemetry ${round * 2 + 1}`)
      if (round % 10 === 9) await turn()
    }
    await flush(local, client)
    expect(seen(client)).toEqual(expected)
  })

  it('takes at most 1,024 publishes before writing them, within one turn too', async () => {
    const local = await startLocalBroker()
    const client = await local.client('reader-token')
    await client.subscribe('fleetgate/devices/+/telemetry', { qos: 1 })
    for (let seq = 1; seq <= 1500; seq++) local.broker.publishTelemetry('d1', reading(seq))
    expect(local.broker.stats().pendingPublishes).toBe(1500 - 1024)
    await turn()
    expect(local.broker.stats().pendingPublishes).toBe(0)
    await flush(local, client)
    expect(seen(client)).toEqual(Array.from({ length: 1500 }, (_, i) => `fleetgate/devices/d1/telemetry ${i + 1}`))
  })

  it('a subscriber that leaves mid-stream is dropped quietly; the others get everything', async () => {
    const local = await startLocalBroker()
    const stays = await local.client('reader-token')
    await stays.subscribe('fleetgate/#', { qos: 1 })
    const leaves = await RawMqtt.session(local.port, 'reader-token', 'leaves')
    await leaves.subscribe('fleetgate/#', 1)
    for (let seq = 1; seq <= 100; seq++) {
      local.broker.publishTelemetry('d1', reading(seq))
      if (seq === 50) leaves.destroy()
      if (seq % 10 === 0) await turn()
    }
    await flush(local, stays)
    expect(seen(stays)).toEqual(Array.from({ length: 100 }, (_, i) => `fleetgate/devices/d1/telemetry ${i + 1}`))
    await vi.waitFor(() => expect(local.broker.clients).toBe(1))
    expect(local.errors).toEqual([])
    expect(local.disconnections).toEqual([])
  })

  it('telemetry nobody subscribed to is not encoded; a retained status is stored for later subscribers all the same', async () => {
    const local = await startLocalBroker()
    const idle = await local.client('reader-token')
    await idle.subscribe('fleetgate/devices/sentinel/telemetry')
    // A value JSON cannot encode: encoding it would throw.
    const cyclic: { device: string; seq: number; readings: never[]; self?: unknown } = { device: 'd1', seq: 1, readings: [] }
    cyclic.self = cyclic
    local.broker.publishTelemetry('d1', cyclic)
    local.broker.publishStatus('d1', { device: 'd1', online: true, at: 'x' })
    await flush(local, idle)
    const late = await local.client('reader-token')
    await late.subscribe('fleetgate/devices/+/status')
    await vi.waitFor(() => expect(late.received).toHaveLength(1))
    expect(late.received.map((m) => [m.topic, m.retain])).toEqual([['fleetgate/devices/d1/status', true]])
  })
})

describe('PUBACKs, taken out before aedes parses them', () => {
  it('a client that only answers PUBACKs keeps its connection past its keepalive', async () => {
    const local = await startLocalBroker()
    const raw = await RawMqtt.open(local.port)
    // Keepalive 1 s: aedes closes the connection after 1.5 s without a packet it counts.
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'acks-only', keepalive: 1, username: 'raw', password: Buffer.from('reader-token') })
    expect(await raw.next(5000)).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(await raw.subscribe('fleetgate/devices/+/telemetry', 1)).toEqual([1])
    for (let seq = 1; seq <= 12; seq++) {
      local.broker.publishTelemetry('d1', reading(seq))
      const packet = await nextPublish(raw)
      raw.send({ cmd: 'puback', messageId: packet.messageId as number })
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    expect(raw.isClosed).toBe(false)
    local.broker.publishTelemetry('d1', reading(13))
    expect(what(await nextPublish(raw))).toBe('fleetgate/devices/d1/telemetry 13')
  })

  it('other packets in the same read are handled as before, and a PUBACK split across reads is taken by aedes', async () => {
    const local = await startLocalBroker()
    const raw = await RawMqtt.session(local.port, 'reader-token', 'mixed')
    expect(await raw.subscribe('fleetgate/devices/+/telemetry', 1)).toEqual([1])
    local.broker.publishTelemetry('d1', reading(1))
    local.broker.publishTelemetry('d1', reading(2))
    const [first, second] = [await nextPublish(raw), await nextPublish(raw)]
    const ack = (packet: IPublishPacket): Buffer => Buffer.from([0x40, 0x02, (packet.messageId as number) >> 8, (packet.messageId as number) & 0xff])
    raw.sendRaw(Buffer.concat([ack(first), Buffer.from([0xc0, 0x00]), ack(second).subarray(0, 1)]))
    expect(await raw.next(5000)).toMatchObject({ cmd: 'pingresp' })
    raw.sendRaw(Buffer.concat([ack(second).subarray(1), Buffer.from([0xa2, 0x05, 0x00, 0x09, 0x00, 0x01, 0x78])]))
    expect(await raw.next(5000)).toMatchObject({ cmd: 'unsuback', messageId: 9 })
    local.broker.publishTelemetry('d1', reading(3))
    expect(what(await nextPublish(raw))).toBe('fleetgate/devices/d1/telemetry 3')
    expect(raw.isClosed).toBe(false)
    expect(local.errors).toEqual([])
  })
})
