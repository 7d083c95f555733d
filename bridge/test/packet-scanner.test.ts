import { describe, expect, it } from 'vitest'
import { generate } from 'mqtt-packet'
import { PacketScanner, withoutAcks } from '../src/packet-scanner.js'

const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'c', keepalive: 0 })
const publish = (bytes: number): Buffer =>
  generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(bytes, 0x30), qos: 1, messageId: 1, retain: false, dup: false })
const ping = generate({ cmd: 'pingreq' })
const puback = (id: number): Buffer => generate({ cmd: 'puback', messageId: id })

/** Feeds `bytes` to a scanner in chunks of `size` bytes; the first failure, and how many headers it read. */
function scan(bytes: Buffer, size: number, maxFirst = 64, max = 1024): { failure: unknown; packets: number } {
  const scanner = new PacketScanner(maxFirst, max)
  for (let at = 0; at < bytes.length; at += size) {
    const failure = scanner.feed(bytes.subarray(at, at + size))
    if (failure !== undefined) return { failure, packets: scanner.packets }
  }
  return { failure: undefined, packets: scanner.packets }
}

describe('PacketScanner', () => {
  // Remaining lengths: connect 13, publish(200) 205, publish(1019) 1024 (the limit), publish(1020) 1025.
  const fixtures: ReadonlyArray<readonly [string, Buffer, unknown, number]> = [
    ['a CONNECT, then packets within the limit', Buffer.concat([connect, publish(200), ping, publish(1019)]), undefined, 4],
    ['a body that looks like headers is skipped', Buffer.concat([connect, publish(600).fill(0xff, 9)]), undefined, 2],
    ['a later packet one byte over', Buffer.concat([connect, ping, publish(1020)]), { reason: 'packet_too_large', declaredBytes: 1025 }, 3],
    ['a first packet over its own, smaller limit', publish(100), { reason: 'packet_too_large', declaredBytes: 105 }, 1],
    ['the largest length MQTT can declare', Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]), { reason: 'packet_too_large', declaredBytes: 268_435_455 }, 1],
    ['a length of five bytes', Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]), { reason: 'malformed_packet', declaredBytes: 0 }, 0],
    ['a header cut before its length ends', Buffer.from([0x10, 0x80]), undefined, 0],
  ]

  it.each(fixtures)('%s', (_what, bytes, failure, packets) => {
    // Whole, and one byte at a time: a header split across reads is judged the same.
    for (const size of [bytes.length, 1, 3]) expect(scan(bytes, size)).toEqual({ failure, packets })
  })

  it('judges each packet the moment its length is read, before its body', () => {
    const scanner = new PacketScanner(64, 1024)
    expect(scanner.feed(connect)).toBeUndefined()
    const header = publish(1020).subarray(0, 3)
    expect(scanner.feed(header)).toEqual({ reason: 'packet_too_large', declaredBytes: 1025 })
  })
})

describe('PUBACKs found by PacketScanner, and withoutAcks', () => {
  /** Feeds `chunks` after a CONNECT; per chunk, the offsets of the PUBACKs it holds whole. */
  function acksIn(...chunks: Buffer[]): number[][] {
    const scanner = new PacketScanner(64, 1024)
    scanner.feed(connect)
    return chunks.map((chunk) => {
      const acks: number[] = []
      expect(scanner.feed(chunk, acks)).toBeUndefined()
      return acks
    })
  }

  it('finds each PUBACK that lies whole in a read, and nothing in bodies', () => {
    const body = publish(20).fill(0x40, 9).fill(0x02, 10, 11)
    expect(acksIn(Buffer.concat([puback(1), publish(10), puback(2), ping, body, puback(65_535)]))).toEqual([[0, 4 + 17, 4 + 17 + 4 + 2 + 27]])
  })

  it('leaves a PUBACK split across reads to aedes, wherever the split', () => {
    const two = Buffer.concat([puback(7), puback(8)])
    for (let cut = 5; cut < 8; cut++) expect(acksIn(two.subarray(0, cut), two.subarray(cut))).toEqual([[0], []])
    expect(acksIn(two.subarray(0, 4), two.subarray(4))).toEqual([[0], [0]])
    for (let cut = 1; cut < 4; cut++) expect(acksIn(two.subarray(0, cut), two.subarray(cut))).toEqual([[], [4 - cut]])
  })

  it.each([
    ['flags set (0x42)', Buffer.from([0x42, 0x02, 0x00, 0x01])],
    ['a remaining length of 3', Buffer.from([0x40, 0x03, 0x00, 0x01, 0x00])],
    ['a remaining length of 2 in two bytes', Buffer.from([0x40, 0x82, 0x00, 0x00, 0x01])],
    ['a PUBREC', generate({ cmd: 'pubrec', messageId: 1 })],
    ['a PUBCOMP', generate({ cmd: 'pubcomp', messageId: 1 })],
  ])('leaves a packet that is not a well-formed PUBACK to aedes: %s', (_what, bytes) => {
    expect(acksIn(bytes)).toEqual([[]])
  })

  it('withoutAcks keeps every other byte in order, and answers null when nothing is left', () => {
    const chunk = Buffer.concat([puback(1), ping, puback(2), puback(3), publish(5), puback(4)])
    expect(withoutAcks(chunk, [0, 6, 10, 14 + 12])).toEqual(Buffer.concat([ping, publish(5)]))
    expect(withoutAcks(Buffer.concat([puback(1), puback(2)]), [0, 4])).toBeNull()
  })
})
