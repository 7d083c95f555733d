// TwinReports without a socket (docs/twins.md): reports wait, merge as RFC 7386 allows, go one at a
// time in order, settle on `twa`, survive in the store, and share the session's pace.
import { describe, expect, it } from 'vitest'
import { settle, SteppingClock } from '../../test/support/clock.js'
import { track } from '../../test/support/outcome.js'
import { MemoryQueueStore, SdkError, type TwinDocument } from '../src/index.js'
import { loadQueueStore, type QueueStore } from '../src/queue-store.js'
import { hubPacer } from '../src/token-bucket.js'
import { MAX_PENDING_REPORTS, TwinReports } from '../src/twin-reports.js'
import { decodeDeviceFrame, type HubLimits, type TwinReportFrame } from '../src/wire.js'

const LIMITS: HubLimits = Object.freeze({ frame: 65_536, batch: 500, rate: 100, window: 64 })

function harness(store: QueueStore = new MemoryQueueStore()) {
  const clock = new SteppingClock()
  const wire: TwinReportFrame[] = []
  const errors: SdkError[] = []
  const link = { online: true }
  const reports = new TwinReports({
    clock,
    store,
    loaded: loadQueueStore(store).reports,
    transmit: (bytes) => {
      if (!link.online) return false
      const decoded = decodeDeviceFrame(bytes)
      if (!decoded.ok || decoded.frame.t !== 'twr') throw new Error(`not a twin report: ${JSON.stringify(decoded)}`)
      wire.push(decoded.frame)
      return true
    },
    onError: (error) => errors.push(error),
  })
  const report = (patch: unknown) => track(reports.add(patch, undefined))
  /** The hub's answer to the report on the wire. */
  const answer = (answer: { v: number } | { e: 'invalid' | 'too_large' | 'rate' }): boolean => {
    const id = wire.at(-1)?.id ?? 'none'
    return reports.acked('v' in answer ? { t: 'twa', id, v: answer.v } : { t: 'twa', id, e: answer.e })
  }
  return { clock, wire, errors, link, reports, report, answer, store }
}

describe('TwinReports', () => {
  it('merges reports made while offline into one patch, sent after open, answered together', async () => {
    const h = harness()
    const outcomes = [h.report({ a: 1, n: { x: 1 } }), h.report({ n: { y: 2 } }), h.report({ a: null, b: [1] })]
    expect(h.wire).toEqual([])
    expect(h.reports.pending).toBe(3)
    h.reports.open(LIMITS, undefined)
    expect(h.wire).toStrictEqual([{ t: 'twr', id: '1', p: { a: null, n: { x: 1, y: 2 }, b: [1] } }])
    expect(h.answer({ v: 4 })).toBe(true)
    await settle()
    expect(outcomes.map((o) => [o.state, o.value])).toEqual([['resolved', 4], ['resolved', 4], ['resolved', 4]])
    expect(h.reports.reportedVersion).toBe(4)
    expect(h.reports.pending).toBe(0)
    expect(loadQueueStore(h.store).reports).toEqual([])
  })

  it('never composes across a key set to a non-object and then to an object: two patches, in order', async () => {
    const h = harness()
    const first = h.report({ k: null, other: 1 })
    const second = h.report({ k: { b: 1 } })
    h.reports.open(LIMITS, undefined)
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ k: null, other: 1 }])
    h.answer({ v: 1 })
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ k: null, other: 1 }, { k: { b: 1 } }])
    h.answer({ v: 2 })
    await settle()
    expect([first.value, second.value]).toEqual([1, 2])
  })

  it('merges again once a later report makes earlier ones composable', () => {
    const h = harness()
    h.report({ k: 5 })
    h.report({ k: { b: 1 } })
    h.report({ k: 7, z: true })
    h.reports.open(LIMITS, undefined)
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ k: 7, z: true }])
  })

  it('sends one report at a time: what comes while one is on the wire waits and merges', async () => {
    const h = harness()
    h.reports.open(LIMITS, undefined)
    const first = h.report({ a: 1 })
    const later = [h.report({ b: 1 }), h.report({ c: 1 })]
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ a: 1 }])
    h.answer({ v: 1 })
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ a: 1 }, { b: 1, c: 1 }])
    // an answer to another id is not this one
    expect(h.reports.acked({ t: 'twa', id: 'other', v: 9 })).toBe(false)
    h.answer({ v: 2 })
    await settle()
    expect([first.value, ...later.map((o) => o.value)]).toEqual([1, 2, 2])
  })

  it('splits a merged patch the hub refused for what it holds, so each report gets its own answer', async () => {
    const h = harness()
    const small = h.report({ a: 1 })
    const big = h.report({ b: 'x'.repeat(100) })
    h.reports.open(LIMITS, undefined)
    expect(h.wire).toHaveLength(1)
    h.answer({ e: 'too_large' })
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ a: 1, b: 'x'.repeat(100) }, { a: 1 }])
    h.answer({ v: 1 })
    // split reports are not merged again with what follows
    const after = h.report({ c: 1 })
    expect(h.wire.at(-1)?.p).toStrictEqual({ b: 'x'.repeat(100) })
    h.answer({ e: 'too_large' })
    expect(h.wire.at(-1)?.p).toStrictEqual({ c: 1 })
    h.answer({ v: 2 })
    await settle()
    expect(small.value).toBe(1)
    expect(big.state).toBe('rejected')
    expect(big.error).toMatchObject({ code: 'SDK_ERR_REPORT_REFUSED', reason: 'too_large' })
    expect(after.value).toBe(2)
    expect(h.reports.pending).toBe(0)
  })

  it('rejects every report of a batch refused for the rate, with the hub code', async () => {
    const h = harness()
    const outcomes = [h.report({ a: 1 }), h.report({ b: 1 })]
    h.reports.open(LIMITS, undefined)
    h.answer({ e: 'rate' })
    await settle()
    expect(outcomes.map((o) => [o.error?.code, o.error?.reason])).toEqual([
      ['SDK_ERR_REPORT_REFUSED', 'rate'],
      ['SDK_ERR_REPORT_REFUSED', 'rate'],
    ])
    expect(h.wire).toHaveLength(1)
    expect(loadQueueStore(h.store).reports).toEqual([])
  })

  it('refuses a patch that breaks the twin rules at once, keeping nothing', async () => {
    const h = harness()
    const outcomes = [h.report({ $a: 1 }), h.report([1]), h.report({ a: Number.NaN }), h.report({ a: new Date(0) })]
    await settle()
    expect(outcomes.map((o) => o.error?.message)).toEqual([
      'patch: key "$a" starts with $ (reserved)',
      'patch: expected a JSON object, got an array',
      'patch.a: not a finite number (NaN)',
      'patch.a: a Date is not JSON',
    ])
    expect(outcomes.every((o) => o.error?.code === 'SDK_ERR_INVALID_REPORT')).toBe(true)
    expect(h.reports.pending).toBe(0)
    expect(loadQueueStore(h.store).reports).toEqual([])
  })

  it('keeps its own copy: changing the object after report() changes nothing', () => {
    const h = harness()
    const patch: TwinDocument = { a: { b: 1 } }
    h.report(patch)
    ;(patch['a'] as TwinDocument)['b'] = 2
    h.reports.open(LIMITS, undefined)
    expect(h.wire[0]?.p).toStrictEqual({ a: { b: 1 } })
  })

  it('sends the report on the wire again after a lost session, merged anew with what came meanwhile', async () => {
    const h = harness()
    h.reports.open(LIMITS, undefined)
    const first = h.report({ a: 1 })
    expect(h.wire.map((f) => [f.id, f.p])).toStrictEqual([['1', { a: 1 }]])
    h.reports.lost()
    const second = h.report({ b: 2 })
    // the answer of the old session no longer counts
    expect(h.reports.acked({ t: 'twa', id: '1', v: 1 })).toBe(false)
    h.reports.open(LIMITS, undefined)
    expect(h.wire.map((f) => [f.id, f.p])).toStrictEqual([
      ['1', { a: 1 }],
      ['2', { a: 1, b: 2 }],
    ])
    h.answer({ v: 1 })
    await settle()
    expect([first.value, second.value]).toEqual([1, 1])
  })

  it('keeps unanswered reports in the store: a new client sends them, merged, in order', async () => {
    const store = new MemoryQueueStore()
    const h = harness(store)
    h.report({ a: 1 })
    h.report({ a: null })
    h.report({ a: { nested: true } })
    h.reports.close(new SdkError('SDK_ERR_CLOSED', 'closed'))
    expect(loadQueueStore(store).reports.map((r) => r.p)).toStrictEqual([{ a: 1 }, { a: null }, { a: { nested: true } }])
    const again = harness(store)
    expect(again.reports.pending).toBe(3)
    again.reports.open(LIMITS, undefined)
    expect(again.wire.map((f) => f.p)).toStrictEqual([{ a: null }])
    again.answer({ v: 1 })
    expect(again.wire.map((f) => f.p)).toStrictEqual([{ a: null }, { a: { nested: true } }])
    again.answer({ v: 2 })
    expect(loadQueueStore(store).reports).toEqual([])
    // ids go on from the store's
    again.report({ z: 1 })
    expect(loadQueueStore(store).reports.map((r) => r.id)).toEqual([4])
  })

  it('refuses a report larger than the hub frame limit; a merged patch that is too large goes as its reports', async () => {
    const h = harness()
    const limits = { ...LIMITS, frame: 200 }
    const parts = [h.report({ a: 'x'.repeat(100) }), h.report({ b: 'y'.repeat(100) }), h.report({ c: 'z'.repeat(300) })]
    h.reports.open(limits, undefined)
    expect(h.wire.map((f) => Object.keys(f.p))).toStrictEqual([['a']])
    h.answer({ v: 1 })
    expect(h.wire.map((f) => Object.keys(f.p))).toStrictEqual([['a'], ['b']])
    h.answer({ v: 2 })
    await settle()
    expect(parts.map((o) => o.state)).toEqual(['resolved', 'resolved', 'rejected'])
    expect(parts[2]?.error?.code).toBe('SDK_ERR_INVALID_REPORT')
    expect(parts[2]?.error?.message).toMatch(/more than the hub's frame limit of 200$/)
  })

  it('waits for the session pace and says so meanwhile', async () => {
    const h = harness()
    const pace = hubPacer(1, h.clock.now())
    while (pace.take(h.clock.now()));
    h.reports.open({ ...LIMITS, rate: 1 }, pace)
    h.report({ a: 1 })
    expect(h.wire).toEqual([])
    expect(h.reports.waitingForPace).toBe(true)
    await h.clock.advance(1000)
    expect(h.wire).toHaveLength(1)
    expect(h.reports.waitingForPace).toBe(false)
    expect(pace.tokens(h.clock.now())).toBeLessThan(1)
  })

  it('keeps at most MAX_PENDING_REPORTS unanswered; one more is refused at once', async () => {
    const h = harness()
    for (let i = 0; i < MAX_PENDING_REPORTS; i++) h.report({ n: i })
    const over = h.report({ n: -1 })
    await settle()
    expect(over.error?.code).toBe('SDK_ERR_QUEUE_FULL')
    expect(h.reports.pending).toBe(MAX_PENDING_REPORTS)
    // merged into one patch, sent once, answered once
    h.reports.open(LIMITS, undefined)
    expect(h.wire.map((f) => f.p)).toStrictEqual([{ n: MAX_PENDING_REPORTS - 1 }])
    h.answer({ v: 1 })
    expect(h.reports.pending).toBe(0)
  })

  it('rejects what waits with the close error; the store keeps it', async () => {
    const h = harness()
    const pending = h.report({ a: 1 })
    h.reports.close(new SdkError('SDK_ERR_CLOSED', 'closed'))
    await settle()
    expect(pending.error?.code).toBe('SDK_ERR_CLOSED')
    expect(loadQueueStore(h.store).reports).toHaveLength(1)
    const late = h.report({ b: 1 })
    await settle()
    expect(late.error?.code).toBe('SDK_ERR_CLOSED')
  })
})
