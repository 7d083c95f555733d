import { describe, expect, it } from 'vitest'
import { generate } from 'mqtt-packet'
import { PacketScanner } from '../src/packet-scanner.js'

const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'c', keepalive: 0 })
const publish = (bytes: number): Buffer =>
  generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(bytes, 0x30), qos: 1, messageId: 1, retain: false, dup: false })
const ping = generate({ cmd: 'pingreq' })

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
