import { describe, expect, it } from 'vitest'
import { BoundedQueue } from '../src/bounded-queue.js'

describe('BoundedQueue', () => {
  it('keeps order and drops the oldest beyond capacity', () => {
    const queue = new BoundedQueue<number>(3)
    expect([1, 2, 3].map((n) => queue.push(n))).toEqual([false, false, false])
    expect(queue.push(4)).toBe(true)
    expect(queue.push(5)).toBe(true)
    expect(queue.size).toBe(3)
    expect([queue.shift(), queue.shift()]).toEqual([3, 4])
    expect(queue.push(6)).toBe(false)
    expect([queue.shift(), queue.shift(), queue.shift(), queue.size]).toEqual([5, 6, undefined, 0])
  })

  it('wraps around many times', () => {
    const queue = new BoundedQueue<number>(7)
    let dropped = 0
    for (let i = 0; i < 1000; i++) if (queue.push(i)) dropped++
    expect(dropped).toBe(993)
    const out: number[] = []
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) out.push(item)
    expect(out).toEqual([993, 994, 995, 996, 997, 998, 999])
    queue.push(1)
    queue.clear()
    expect(queue.size).toBe(0)
    expect(queue.shift()).toBeUndefined()
  })
})
