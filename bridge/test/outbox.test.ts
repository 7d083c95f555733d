import { Duplex } from 'node:stream'
import { generate } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { Outbox, topicBytes } from '../src/outbox.js'

/** A duplex that records each write it gets. */
function recorder(): { stream: Duplex; writes: Buffer[] } {
  const writes: Buffer[] = []
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      writes.push(chunk)
      done()
    },
  })
  return { stream, writes }
}

/** An outbox on a recorder, with packet ids from `firstId` on (wrapping as aedes does) and a backlog verdict the test sets. */
function outbox(firstId = 1): { box: Outbox; writes: Buffer[]; stream: Duplex; asked: number[]; full: { now: boolean } } {
  const { stream, writes } = recorder()
  let id = firstId
  const asked: number[] = []
  const full = { now: false }
  const box = new Outbox({
    stream,
    nextPacketId: () => {
      const next = id
      id = id >= 65_535 ? 1 : id + 1
      return next
    },
    backlogFull: (unwrittenBytes) => {
      asked.push(unwrittenBytes)
      return full.now
    },
  })
  return { box, writes, stream, asked, full }
}

const publish = (topic: string, payload: Buffer, qos: 0 | 1, messageId?: number): Buffer =>
  generate({ cmd: 'publish', topic, payload, qos, dup: false, retain: false, ...(messageId === undefined ? {} : { messageId }) })

describe('Outbox', () => {
  it.each([
    ['a small payload, QoS 1', 'fleetgate/devices/d1/telemetry', 60, 1],
    ['a small payload, QoS 0', 'fleetgate/devices/d1/telemetry', 60, 0],
    ['a 2-byte remaining length', 'fleetgate/devices/d1/telemetry', 300, 1],
    ['a 3-byte remaining length', 'fleetgate/devices/d1/commands/c1', 20_000, 1],
    ['a 4-byte remaining length', 'fleetgate/devices/d1/telemetry', 2_100_000, 0],
    ['an empty payload', 'fleetgate/devices/d1/status', 0, 1],
    ['a topic in UTF-8 beyond ASCII', 'fleetgate/devices/d1/commands/é-1', 10, 1],
  ] as const)('writes what mqtt-packet generates: %s', (_what, topic, size, qos) => {
    const { box, writes } = outbox(4242)
    const payload = Buffer.alloc(size, 0x61)
    expect(box.add(topicBytes(topic), payload, qos)).toBe(true)
    box.flush()
    expect(writes).toHaveLength(1)
    // Buffer.equals: vitest's deep equality takes seconds on 2 MB.
    expect(writes[0]?.equals(publish(topic, payload, qos, qos === 1 ? 4242 : undefined))).toBe(true)
  })

  it('writes every packet of a turn in one write, in order, ids taken in that order and wrapping after 65535', () => {
    const { box, writes } = outbox(65_534)
    const t1 = topicBytes('fleetgate/devices/d1/telemetry')
    const t2 = topicBytes('fleetgate/devices/d2/status')
    box.add(t1, Buffer.from('one'), 1)
    box.add(t2, Buffer.from('two'), 0)
    box.add(t1, Buffer.from('three'), 1)
    box.add(t2, Buffer.from('four'), 1)
    expect(box.empty).toBe(false)
    box.flush()
    expect(box.empty).toBe(true)
    expect(writes).toEqual([
      Buffer.concat([
        publish('fleetgate/devices/d1/telemetry', Buffer.from('one'), 1, 65_534),
        publish('fleetgate/devices/d2/status', Buffer.from('two'), 0),
        publish('fleetgate/devices/d1/telemetry', Buffer.from('three'), 1, 65_535),
        publish('fleetgate/devices/d2/status', Buffer.from('four'), 1, 1),
      ]),
    ])
    box.flush()
    expect(writes).toHaveLength(1)
  })

  it('asks the backlog bound before each message, counting what it gathered; once refused it drops all and takes nothing more', () => {
    const { box, writes, asked, full } = outbox()
    const topic = topicBytes('fleetgate/devices/d1/telemetry')
    const one = publish('fleetgate/devices/d1/telemetry', Buffer.alloc(10), 1, 1).length
    expect(box.add(topic, Buffer.alloc(10), 1)).toBe(true)
    expect(box.add(topic, Buffer.alloc(10), 1)).toBe(true)
    full.now = true
    expect(box.add(topic, Buffer.alloc(10), 1)).toBe(false)
    full.now = false
    expect(box.add(topic, Buffer.alloc(10), 1)).toBe(false)
    expect(asked).toEqual([0, one, 2 * one])
    expect(box.empty).toBe(true)
    box.flush()
    expect(writes).toEqual([])
  })

  it('writes nothing to a destroyed stream', () => {
    const { box, writes, stream } = outbox()
    box.add(topicBytes('fleetgate/devices/d1/telemetry'), Buffer.from('x'), 1)
    stream.destroy()
    box.flush()
    expect(writes).toEqual([])
    expect(box.empty).toBe(true)
  })
})
