import { describe, expect, it } from 'vitest'
import { OrderedPublisher } from '../src/ordered-publisher.js'

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('OrderedPublisher', () => {
  it('issues plain and retained-after-plain at once, defers plain-after-retained to the next macrotask', async () => {
    const issued: string[] = []
    const publisher = new OrderedPublisher((topic, _payload, retain) => issued.push(`${topic}${retain ? '(r)' : ''}`))
    const p = Buffer.alloc(0)
    publisher.publish('a', p, false)
    publisher.publish('b', p, false)
    publisher.publish('s1', p, true)
    publisher.publish('s2', p, true)
    publisher.publish('c', p, false)
    publisher.publish('s3', p, true)
    publisher.publish('d', p, false)
    expect(issued).toEqual(['a', 'b', 's1(r)', 's2(r)'])
    expect(publisher.deferred).toBe(3)
    await tick()
    expect(issued).toEqual(['a', 'b', 's1(r)', 's2(r)', 'c', 's3(r)'])
    expect(publisher.deferred).toBe(1)
    await tick()
    expect(issued).toEqual(['a', 'b', 's1(r)', 's2(r)', 'c', 's3(r)', 'd'])
    expect(publisher.deferred).toBe(0)
    await tick()
    publisher.publish('e', p, false)
    expect(issued.at(-1)).toBe('e')
  })

  it('clear() drops what waits', async () => {
    const issued: string[] = []
    const publisher = new OrderedPublisher((topic) => issued.push(topic))
    publisher.publish('s', Buffer.alloc(0), true)
    publisher.publish('a', Buffer.alloc(0), false)
    publisher.clear()
    await tick()
    await tick()
    expect(issued).toEqual(['s'])
  })
})
