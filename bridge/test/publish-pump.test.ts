import { describe, expect, it } from 'vitest'
import { PublishPump, type Outgoing } from '../src/publish-pump.js'

/** A pump whose starts are recorded and finished by the test. */
function pump(concurrency: number): { pump: PublishPump; started: string[]; finish(topic: string): void } {
  const started: string[] = []
  const done = new Map<string, () => void>()
  const p = new PublishPump((message: Outgoing, finish) => {
    started.push(`${message.topic}${message.retain ? '(r)' : ''}`)
    done.set(message.topic, finish)
  }, concurrency)
  return {
    pump: p,
    started,
    finish(topic) {
      const finish = done.get(topic)
      if (finish === undefined) throw new Error(`${topic} did not start`)
      done.delete(topic)
      finish()
    },
  }
}
const message = (topic: string, retain = false): Outgoing => ({ topic, payload: Buffer.alloc(0), value: undefined, retain })

describe('PublishPump', () => {
  it('starts at most `concurrency` messages, the rest in order as earlier ones finish', () => {
    const { pump: p, started, finish } = pump(2)
    for (const topic of ['a', 'b', 'c', 'd']) p.publish(message(topic))
    expect(started).toEqual(['a', 'b'])
    expect(p.pending).toBe(4)
    finish('b')
    expect(started).toEqual(['a', 'b', 'c'])
    finish('a')
    finish('c')
    finish('d')
    expect(started).toEqual(['a', 'b', 'c', 'd'])
    expect(p.pending).toBe(0)
  })

  it('holds everything behind a retained message until it is delivered; retained after plain goes at once', () => {
    const { pump: p, started, finish } = pump(10)
    p.publish(message('a'))
    p.publish(message('s1', true))
    p.publish(message('b'))
    p.publish(message('s2', true))
    expect(started).toEqual(['a', 's1(r)'])
    finish('s1')
    expect(started).toEqual(['a', 's1(r)', 'b', 's2(r)'])
    p.publish(message('c'))
    expect(started).toHaveLength(4)
    finish('s2')
    expect(started.at(-1)).toBe('c')
  })

  it('clear() drops what waits and lets what runs finish', () => {
    const { pump: p, started, finish } = pump(1)
    p.publish(message('a'))
    p.publish(message('b'))
    p.clear()
    finish('a')
    expect(started).toEqual(['a'])
    expect(p.pending).toBe(0)
  })
})
