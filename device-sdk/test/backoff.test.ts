import { describe, expect, it } from 'vitest'
import { Backoff, type BackoffOptions } from '../src/index.js'

const take = (backoff: Backoff, count: number): number[] => Array.from({ length: count }, () => backoff.next())

describe('Backoff', () => {
  it('with random() = 1 gives the ceilings: 500 ms doubling, capped at 30 s', () => {
    const backoff = new Backoff({ random: () => 1 })
    expect(take(backoff, 10)).toStrictEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000])
    expect(backoff.attempt).toBe(10)
  })

  it('with random() = 0.5 gives half of each ceiling (full jitter)', () => {
    const backoff = new Backoff({ random: () => 0.5 })
    expect(take(backoff, 8)).toStrictEqual([250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000])
  })

  it('with random() = 0 retries at once', () => {
    expect(take(new Backoff({ random: () => 0 }), 3)).toStrictEqual([0, 0, 0])
  })

  it('follows its own schedule', () => {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, factor: 3, random: () => 1 })
    expect(take(backoff, 5)).toStrictEqual([100, 300, 900, 1000, 1000])
  })

  it('stays at the cap after thousands of attempts (no overflow to Infinity or NaN)', () => {
    const backoff = new Backoff({ random: () => 1 })
    take(backoff, 5000)
    expect(backoff.next()).toBe(30_000)
    const zero = new Backoff({ initialDelayMs: 0, random: () => 1 })
    take(zero, 5000)
    expect(zero.next()).toBe(0)
  })

  it('reset() starts over at the first delay', () => {
    const backoff = new Backoff({ random: () => 1 })
    take(backoff, 4)
    backoff.reset()
    expect(backoff.attempt).toBe(0)
    expect(take(backoff, 3)).toStrictEqual([500, 1000, 2000])
  })

  it('defaults to Math.random within the ceiling', () => {
    const backoff = new Backoff()
    const delays = take(backoff, 7)
    const ceilings = [500, 1000, 2000, 4000, 8000, 16_000, 30_000]
    delays.forEach((delay, i) => {
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThan(ceilings[i]!)
    })
  })

  it.each([
    ['an unknown key', { initialDelay: 5 }, 'backoff.initialDelay: unknown option'],
    ['a negative initial delay', { initialDelayMs: -1 }, 'backoff.initialDelayMs: expected a finite number of ms >= 0'],
    ['a max below the initial delay', { initialDelayMs: 1000, maxDelayMs: 999 }, 'backoff.maxDelayMs: expected a finite number of ms >= initialDelayMs'],
    ['an infinite max', { maxDelayMs: Number.POSITIVE_INFINITY }, 'backoff.maxDelayMs: expected a finite number of ms >= initialDelayMs'],
    ['a factor below 1', { factor: 0.5 }, 'backoff.factor: expected a finite number >= 1'],
    ['a text factor', { factor: '2' }, 'backoff.factor: expected a finite number >= 1'],
    ['a random that is no function', { random: 0.5 }, 'backoff.random: expected a function'],
  ])('refuses %s with SDK_ERR_INVALID_OPTION', (_name, options, message) => {
    expect(() => new Backoff(options as BackoffOptions)).toThrowError(
      expect.objectContaining({ name: 'SdkError', code: 'SDK_ERR_INVALID_OPTION', message }),
    )
  })
})
