import { Duplex } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { coalesceWrites } from '../src/coalesce-writes.js'

/** A duplex that records each write call it gets, as a list of chunks. */
function recorder(): { stream: Duplex; calls: string[][] } {
  const calls: string[][] = []
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      calls.push([chunk.toString()])
      done()
    },
    writev(chunks, done) {
      calls.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()))
      done()
    },
  })
  return { stream, calls }
}

/** Writes a packet as mqtt-packet does: cork, write its parts, uncork on the next tick. */
function writePacket(stream: Duplex, parts: readonly string[]): void {
  stream.cork()
  for (const part of parts) stream.write(part)
  process.nextTick(() => stream.uncork())
}

describe('coalesceWrites', () => {
  it('sends the packets of one event-loop turn in one write, in order', async () => {
    const { stream, calls } = recorder()
    coalesceWrites(stream)
    // Each packet in its own callback, as aedes delivers them.
    await new Promise<void>((resolve) => {
      setImmediate(() => writePacket(stream, ['a1', 'a2']))
      setImmediate(() => writePacket(stream, ['b1']))
      setImmediate(() => writePacket(stream, ['c1', 'c2']))
      setImmediate(() => setImmediate(resolve))
    })
    expect(calls).toEqual([['a1', 'a2', 'b1', 'c1', 'c2']])
  })

  it('without it, each packet is a write of its own', async () => {
    const { stream, calls } = recorder()
    await new Promise<void>((resolve) => {
      setImmediate(() => writePacket(stream, ['a1', 'a2']))
      setImmediate(() => writePacket(stream, ['b1']))
      setImmediate(() => setImmediate(resolve))
    })
    expect(calls).toEqual([['a1', 'a2'], ['b1']])
  })

  it('sends what waits before the stream is destroyed, as aedes does right after a refusing CONNACK', async () => {
    const { stream, calls } = recorder()
    coalesceWrites(stream)
    writePacket(stream, ['connack'])
    // aedes queues the close before the coalesced flush is queued (on the next tick).
    setImmediate(() => stream.destroy())
    await new Promise((resolve) => stream.once('close', resolve))
    expect(calls).toEqual([['connack']])
  })

  it('flushes what was corked when the stream ends', async () => {
    const { stream, calls } = recorder()
    coalesceWrites(stream)
    writePacket(stream, ['last'])
    stream.end()
    await new Promise((resolve) => stream.once('finish', resolve))
    expect(calls).toEqual([['last']])
  })
})
