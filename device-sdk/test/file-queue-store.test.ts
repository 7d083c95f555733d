// FileQueueStore on a real file in a temp dir. A "kill" is a second store opened on the same path
// while the first was never closed: all the first one wrote is in the file, nothing more.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { SdkError, type StoredReading, type StoredReport } from '../src/index.js'
import { decodeDeviceFrame, type BatchFrame, type TelemetryFrame } from '../src/wire.js'
import { FileQueueStore } from '../src/node.js'
import { TelemetryQueue } from '../src/telemetry-queue.js'
import { loadQueueStore } from '../src/queue-store.js'
import { SteppingClock, settle } from '../../test/support/clock.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function journalPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-sdk-store-'))
  dirs.push(dir)
  return join(dir, 'queue.jsonl')
}

const reading = (id: number, extra: Partial<StoredReading> = {}): StoredReading => ({ id, ts: 1_700_000_000_000 + id, m: { n: id, ok: id % 2 === 0, label: `é${id}` }, ...extra })

describe('FileQueueStore', () => {
  it('starts empty, keeps what is appended and not removed, and the last seq saved', () => {
    const path = journalPath()
    const store = new FileQueueStore(path)
    expect(store.load()).toStrictEqual({ readings: [], nextSeq: 0, reports: [] })
    store.append([reading(1), reading(2, { g: { room: 'a' } }), reading(3)])
    store.append([reading(4)])
    store.remove([1, 3, 99])
    store.saveNextSeq(1025)
    store.close()
    const again = new FileQueueStore(path)
    expect(again.load()).toStrictEqual({ readings: [reading(2, { g: { room: 'a' } }), reading(4)], nextSeq: 1025, reports: [] })
    expect(again.size).toBe(2)
    again.close()
  })

  it('survives a kill: a store never closed leaves everything it wrote', () => {
    const path = journalPath()
    const killed = new FileQueueStore(path)
    killed.load()
    killed.append([reading(1), reading(2), reading(3)])
    killed.saveNextSeq(2049)
    killed.remove([2])
    // no close(): the process died here
    const restarted = new FileQueueStore(path)
    expect(restarted.load()).toStrictEqual({ readings: [reading(1), reading(3)], nextSeq: 2049, reports: [] })
    restarted.close()
  })

  it('ignores a line torn by a kill during its write, and rewrites the file without it', () => {
    const path = journalPath()
    const store = new FileQueueStore(path)
    store.load()
    store.append([reading(1)])
    appendFileSync(path, '{"a":[[2,1700000000002,{"n"')
    const restarted = new FileQueueStore(path)
    expect(restarted.load().readings).toStrictEqual([reading(1)])
    expect(readFileSync(path, 'utf8')).toBe(`{"s":0}\n{"a":[[1,1700000000001,{"n":1,"ok":false,"label":"é1"}]]}\n`)
    restarted.append([reading(2)])
    restarted.close()
    const third = new FileQueueStore(path)
    expect(third.load().readings).toStrictEqual([reading(1), reading(2)])
    third.close()
  })

  it('refuses a journal with a corrupt complete line, naming the line', () => {
    const path = journalPath()
    writeFileSync(path, '{"s":5}\nnot json\n{"a":[]}\n')
    expect(() => new FileQueueStore(path).load()).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE', message: `${path}:2: not JSON` }))
    writeFileSync(path, '{"a":[[1,2]]}\n')
    expect(() => new FileQueueStore(path).load()).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE', message: `${path}:1: a: bad reading [1,2]` }))
    writeFileSync(path, '{"z":1}\n')
    expect(() => new FileQueueStore(path).load()).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE', message: `${path}:1: expected s, a, d, r or x` }))
  })

  it('compacts once the journal outgrows what it holds, keeping the same content', () => {
    const path = journalPath()
    const store = new FileQueueStore(path, { compactAfterBytes: 4096 })
    store.load()
    expect(store.compactions).toBe(1)
    for (let id = 1; id <= 200; id++) {
      store.append([reading(id)])
      // acked at once, all but every tenth
      if (id % 10 !== 0) store.remove([id])
    }
    expect(store.compactions).toBeGreaterThan(2)
    expect(statSync(path).size).toBe(store.journalBytes)
    expect(store.journalBytes).toBeLessThanOrEqual(2 * 4096)
    store.saveNextSeq(7)
    // a kill right after: the compacted journal plus what followed it
    const restarted = new FileQueueStore(path)
    expect(restarted.load()).toStrictEqual({ readings: Array.from({ length: 20 }, (_, i) => reading((i + 1) * 10)), nextSeq: 7, reports: [] })
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(3)
    restarted.close()
  })

  it('keeps twin reports until removed, across a kill and a compaction, every key as written', () => {
    const path = journalPath()
    const store = new FileQueueStore(path, { compactAfterBytes: 2048 })
    store.load()
    const proto = JSON.parse('{"__proto__":{"x":1},"a":null}') as StoredReport['p']
    store.append([reading(1)])
    store.appendReports([{ id: 1, p: { setpoint: 21 } }, { id: 2, p: proto }])
    store.appendReports([{ id: 3, p: { mode: 'eco' } }])
    store.removeReports([1, 99])
    expect(store.reports).toBe(2)
    // a kill: no close()
    const restarted = new FileQueueStore(path, { compactAfterBytes: 2048 })
    const loaded = restarted.load()
    expect(loaded.readings).toStrictEqual([reading(1)])
    expect(JSON.stringify(loaded.reports)).toBe('[{"id":2,"p":{"__proto__":{"x":1},"a":null}},{"id":3,"p":{"mode":"eco"}}]')
    // churn through compactions: what is left is what was not removed
    for (let id = 4; id <= 100; id++) {
      restarted.appendReports([{ id, p: { n: id, pad: 'p'.repeat(40) } }])
      if (id % 20 !== 0) restarted.removeReports([id])
    }
    expect(restarted.compactions).toBeGreaterThan(2)
    const third = new FileQueueStore(path)
    expect((third.load().reports ?? []).map((r) => r.id)).toStrictEqual([2, 3, 20, 40, 60, 80, 100])
    third.close()
    restarted.close()
  })

  it('loads a journal written before twin reports', () => {
    const path = journalPath()
    writeFileSync(path, `{"s":1024}\n{"a":[[1,1700000000001,{"n":1}],[2,1700000000002,{"n":2},{"room":"a"}]]}\n{"d":[[1,1]]}\n`)
    const store = new FileQueueStore(path)
    expect(store.load()).toStrictEqual({ readings: [{ id: 2, ts: 1_700_000_000_002, m: { n: 2 }, g: { room: 'a' } }], nextSeq: 1024, reports: [] })
    store.close()
  })

  it('validates its options eagerly and refuses use before load() or after close()', () => {
    const path = journalPath()
    expect(() => new FileQueueStore(path, { fsync: 'yes' } as unknown as { fsync: boolean })).toThrow(expect.objectContaining({ code: 'SDK_ERR_INVALID_OPTION', message: 'fsync: expected a boolean' }))
    expect(() => new FileQueueStore(path, { compact: 1 } as unknown as { fsync: boolean })).toThrow(expect.objectContaining({ code: 'SDK_ERR_INVALID_OPTION', message: 'compact: unknown option' }))
    expect(() => new FileQueueStore('')).toThrow(expect.objectContaining({ code: 'SDK_ERR_INVALID_OPTION' }))
    const store = new FileQueueStore(path, { fsync: true })
    expect(() => store.append([reading(1)])).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE' }))
    store.load()
    store.append([reading(1)])
    expect(() => store.load()).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE' }))
    store.close()
    expect(() => store.append([reading(2)])).toThrow(expect.objectContaining({ code: 'SDK_ERR_STORE' }))
    const again = new FileQueueStore(path)
    expect(again.load().readings).toStrictEqual([reading(1)])
    again.close()
  })

  it('under a TelemetryQueue: a device killed mid-stream resends its unacked readings after the restart', async () => {
    const path = journalPath()
    const limits = { frame: 65_536, batch: 500, rate: 100, window: 64 }
    const wire: Array<TelemetryFrame | BatchFrame> = []
    const transmit = (bytes: Uint8Array): boolean => {
      const decoded = decodeDeviceFrame(bytes)
      if (decoded.ok && (decoded.frame.t === 'tm' || decoded.frame.t === 'tb')) wire.push(decoded.frame)
      return true
    }
    const options = { batchMaxReadings: 10, lingerMs: 0, maxQueuedReadings: 10_000, overflow: 'drop-oldest' as const, pacing: false, transmit, onError: () => {} }
    const queue = (clock: SteppingClock): TelemetryQueue => {
      const store = new FileQueueStore(path)
      return new TelemetryQueue({ ...options, clock, store, loaded: loadQueueStore(store) })
    }
    const first = queue(new SteppingClock())
    void first.add(Array.from({ length: 50 }, (_, i) => ({ metrics: { n: i } })), true).catch(() => {})
    first.open(limits)
    await settle()
    expect(wire.map((frame) => frame.s)).toStrictEqual([1, 2, 3, 4, 5])
    first.ack(2)
    // killed: no close(), frames 3 to 5 unacked
    const sentTs = wire.slice(2).flatMap((frame) => (frame.t === 'tb' ? frame.r.map((r) => r.ts) : [frame.ts]))
    wire.length = 0
    const second = queue(new SteppingClock(1_800_000_000_000))
    expect(second.queued).toBe(30)
    second.open(limits)
    await settle()
    expect(wire.map((frame) => frame.s)).toStrictEqual([1025, 1026, 1027])
    expect(wire.flatMap((frame) => (frame.t === 'tb' ? frame.r.map((r) => r.ts) : [frame.ts]))).toStrictEqual(sentTs)
    const flushed = second.flush()
    second.ack(1027)
    await flushed
    second.close(new SdkError('SDK_ERR_CLOSED', 'done'))
    const third = new FileQueueStore(path)
    expect(third.load()).toStrictEqual({ readings: [], nextSeq: 2049, reports: [] })
    third.close()
  })
})
