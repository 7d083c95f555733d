import { describe, expect, it } from 'vitest'
import { CommandDispatcher, UNKNOWN_COMMAND, type DispatcherHost } from '../src/command-dispatcher.js'
import { SdkError } from '../src/errors.js'
import type { ResultFrame } from '../src/frames.js'
import { SteppingClock } from '../../test/support/clock.js'

function host(clock = new SteppingClock()): DispatcherHost & { sent: ResultFrame[]; online: boolean; errors: SdkError[] } {
  const state = {
    sent: [] as ResultFrame[],
    online: true,
    errors: [] as SdkError[],
    hubNow: () => clock.now(),
    send(frame: ResultFrame): boolean {
      if (!state.online) return false
      if (frame.r !== undefined && typeof frame.r === 'function') throw new SdkError('SDK_ERR_PROTOCOL', 'r: not JSON')
      state.sent.push(frame)
      return true
    },
    report(error: SdkError): void {
      state.errors.push(error)
    },
  }
  return state
}
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('CommandDispatcher', () => {
  it('runs the handler and answers ok with its result; a throw answers ok: false with the message', async () => {
    const h = host()
    const dispatcher = new CommandDispatcher(h)
    dispatcher.handle('add', (params) => {
      const [a, b] = params as [number, number]
      return a + b
    })
    dispatcher.handle('boom', async () => {
      throw new Error('relay stuck')
    })
    dispatcher.handle('quiet', () => undefined)
    dispatcher.dispatch({ t: 'cmd', id: 'c1', n: 'add', p: [2, 3] })
    dispatcher.dispatch({ t: 'cmd', id: 'c2', n: 'boom' })
    dispatcher.dispatch({ t: 'cmd', id: 'c3', n: 'quiet' })
    dispatcher.dispatch({ t: 'cmd', id: 'c4', n: 'nobody' })
    await settle()
    expect([...h.sent].sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { t: 'res', id: 'c1', ok: true, r: 5 },
      { t: 'res', id: 'c2', ok: false, e: 'relay stuck' },
      { t: 'res', id: 'c3', ok: true },
      { t: 'res', id: 'c4', ok: false, e: UNKNOWN_COMMAND },
    ])
    expect(h.errors.map((e) => e.code)).toEqual(['SDK_ERR_COMMAND'])
  })

  it('does not run a command past its deadline', async () => {
    const clock = new SteppingClock()
    const h = host(clock)
    const dispatcher = new CommandDispatcher(h)
    let runs = 0
    dispatcher.handle('x', () => {
      runs++
      return null
    })
    dispatcher.dispatch({ t: 'cmd', id: 'late', n: 'x', exp: clock.now() })
    dispatcher.dispatch({ t: 'cmd', id: 'fine', n: 'x', exp: clock.now() + 1 })
    await settle()
    expect(runs).toBe(1)
    expect(h.sent).toEqual([{ t: 'res', id: 'fine', ok: true, r: null }])
  })

  it('judges the deadline in hub time, so a device whose clock runs ahead still runs its commands', async () => {
    const clock = new SteppingClock()
    const h = { ...host(clock), hubNow: () => clock.now() - 60_000 }
    const dispatcher = new CommandDispatcher(h)
    dispatcher.handle('x', () => 'ran')
    dispatcher.dispatch({ t: 'cmd', id: 'ahead', n: 'x', exp: clock.now() - 55_000 })
    await settle()
    expect(h.sent).toEqual([{ t: 'res', id: 'ahead', ok: true, r: 'ran' }])
  })

  it('keeps results while offline and resends them in order; a repeated command runs once', async () => {
    const h = host()
    const dispatcher = new CommandDispatcher(h)
    let runs = 0
    dispatcher.handle('count', () => ++runs)
    h.online = false
    dispatcher.dispatch({ t: 'cmd', id: 'a', n: 'count' })
    dispatcher.dispatch({ t: 'cmd', id: 'b', n: 'count' })
    await settle()
    expect(h.sent).toEqual([])
    expect(dispatcher.unsent).toBe(2)
    h.online = true
    dispatcher.resend()
    expect(h.sent).toEqual([
      { t: 'res', id: 'a', ok: true, r: 1 },
      { t: 'res', id: 'b', ok: true, r: 2 },
    ])
    dispatcher.dispatch({ t: 'cmd', id: 'a', n: 'count' })
    await settle()
    expect(runs).toBe(2)
    expect(h.sent.at(-1)).toEqual({ t: 'res', id: 'a', ok: true, r: 1 })
  })

  it('answers a result that is not JSON as a failure', async () => {
    const h = host()
    const dispatcher = new CommandDispatcher(h)
    dispatcher.handle('fn', () => (() => 1) as never)
    dispatcher.dispatch({ t: 'cmd', id: 'f', n: 'fn' })
    await settle()
    expect(h.sent).toEqual([{ t: 'res', id: 'f', ok: false, e: 'result is not JSON: r: not JSON' }])
  })
})
