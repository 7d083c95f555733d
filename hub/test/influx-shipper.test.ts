import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { realClock, type Reading } from '@fleetgate/device-sdk'
import { encodeFrame } from '@fleetgate/device-sdk/wire'
import { Registry } from '../src/devices/index.js'
import { createLogger } from '../src/logger.js'
import { openLmdbStores, type HubStores, type SpoolEntry, type SpoolStore } from '../src/store/index.js'
import { DeadLetter } from '../src/telemetry/dead-letter.js'
import type { HistoryFrame } from '../src/telemetry/history/index.js'
import { InfluxShipper, type ShipperOptions, type ShipperTuning } from '../src/telemetry/influx-shipper.js'
import type { LineBatch, ShipResult } from '../src/telemetry/influx-writer.js'

/** An InfluxDB stand-in for the shipper's logic: records each write; `hold` keeps writes pending, `fail` refuses them. */
class FakeWriter {
  readonly written: string[][] = []
  hold = false
  fail = false
  failures = 0
  #held: Array<() => void> = []

  writeOrDeadLetter(batch: LineBatch): Promise<ShipResult> {
    if (this.fail) {
      this.failures++
      return Promise.resolve({ retry: true, error: new Error('InfluxDB away') })
    }
    const lines = Array.from({ length: batch.lines }, (_, i) => batch.line(i))
    const land = (): ShipResult => {
      this.written.push(lines)
      return { written: lines.length, deadLettered: 0, requests: 1 }
    }
    if (!this.hold) return Promise.resolve(land())
    return new Promise((resolve) => this.#held.push(() => resolve(land())))
  }

  release(): void {
    this.hold = false
    for (const land of this.#held.splice(0)) land()
  }

  /** The `v` field of every line written, in write order. */
  values(): number[] {
    return this.written.flat().map((line) => Number(/ v=([\d.]+)/.exec(line)?.[1]))
  }
}

const dirs: string[] = []
const stores: HubStores[] = []
const shippers: InfluxShipper[] = []
afterEach(async () => {
  await Promise.all(shippers.splice(0).map((s) => s.stop()))
  await Promise.all(stores.splice(0).map((s) => s.close()))
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A shipper over a fresh spool that already holds `backlog` (as after a restart). */
async function setup(
  tuning: Partial<ShipperTuning> = {},
  backlog: readonly SpoolEntry[] = [],
  options: Partial<ShipperOptions> = {},
): Promise<{ spool: SpoolStore; writer: FakeWriter; shipper: InfluxShipper; reliefs: () => number }> {
  const dir = mkdtempSync(join(tmpdir(), 'fg-shipper-'))
  dirs.push(dir)
  const store = openLmdbStores(dir)
  stores.push(store)
  const spool = store.spool
  if (backlog.length > 0) await spool.append(backlog)
  const writer = new FakeWriter()
  let reliefs = 0
  const shipper = new InfluxShipper({
    spool,
    registry: new Registry(store.registry, realClock),
    writer,
    deadLetter: new DeadLetter({ dir }),
    log: createLogger('silent'),
    counters: { shipped: () => undefined, writeFailed: () => undefined },
    relieved: () => reliefs++,
    clock: realClock,
    tuning: { batchPoints: 4, flushIntervalMs: 5, ...tuning },
    ...options,
  })
  shippers.push(shipper)
  return { spool, writer, shipper, reliefs: () => reliefs }
}

/** One `tb` frame's spool entry and readings: `v` runs from `first` for `count` readings. */
function frame(first: number, count: number, s = first): { entry: SpoolEntry; readings: Reading[] } {
  const readings = Array.from({ length: count }, (_, i) => ({ ts: 1_700_000_000_000 + first + i, m: { v: first + i } }))
  return { entry: { deviceId: 'd1', receivedAt: 0, frame: encodeFrame({ t: 'tb', s, r: readings }) }, readings }
}

/** What ingest hands the shipper after a commit: the frames and the seq of the first. */
interface Committed {
  readonly frames: HistoryFrame[]
  readonly firstSeq: number
}

/** Appends frames to the spool as ingest does and returns what ingest hands the shipper. */
async function commit(spool: SpoolStore, frames: ReadonlyArray<ReturnType<typeof frame>>): Promise<Committed> {
  const firstSeq = await spool.append(frames.map((f) => f.entry))
  return { frames: frames.map((f) => ({ deviceId: 'd1', readings: f.readings })), firstSeq }
}

const hand = (shipper: InfluxShipper, committed: Committed): void => shipper.committed(committed.frames, committed.firstSeq)

const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i)

describe('InfluxShipper: where readings come from', () => {
  it('ships a restart\'s backlog from the spool, then committed frames from the readings ingest decoded, each once and in order', async () => {
    const { spool, writer, shipper } = await setup()
    await spool.append([frame(0, 2).entry, frame(2, 2).entry])
    shipper.start()
    await vi.waitFor(() => expect(writer.values()).toEqual(range(0, 4)))
    // The stored frame says 100-101; the readings handed over say 4-5: shipping them proves no read-back.
    const stored = frame(100, 2)
    const committed = await commit(spool, [stored])
    shipper.committed([{ deviceId: 'd1', readings: frame(4, 2).readings }], committed.firstSeq)
    await vi.waitFor(() => expect(writer.values()).toEqual(range(0, 6)))
    await vi.waitFor(() => expect(spool.entries).toBe(0))
  })

  it('ships frames after a gap of seqs that a failed commit left unused', async () => {
    const { spool, writer, shipper } = await setup()
    shipper.start()
    const first = await commit(spool, [frame(0, 2)])
    const later = await commit(spool, [frame(2, 2)])
    // As if a commit between these two had failed: its seqs exist nowhere.
    hand(shipper, first)
    shipper.committed(later.frames, later.firstSeq + 5)
    await spool.trim([{ group: later.firstSeq, entries: 1 }])
    await vi.waitFor(() => expect(writer.values()).toEqual(range(0, 4)))
  })

  it('dead-letters a spool entry that does not decode (its bytes in base64), counts it, and ships the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fg-shipper-dl-'))
    dirs.push(dir)
    const reasons: string[] = []
    const deadLetter = new DeadLetter({ dir, counters: { deadLettered: (reason) => reasons.push(reason), deadLettersLost: () => undefined } })
    const garbage: SpoolEntry = { deviceId: 'd9', receivedAt: 0, frame: Uint8Array.from([0xa1, 0x61, 0x74]) }
    const { spool, writer, shipper } = await setup({}, [frame(0, 2).entry, garbage, frame(2, 2).entry], { deadLetter })
    shipper.start()
    await vi.waitFor(() => expect(writer.values()).toEqual(range(0, 4)))
    await vi.waitFor(() => expect(spool.entries).toBe(0))
    await deadLetter.flush()
    const entries = readFileSync(deadLetter.path, 'utf8').trimEnd().split('\n').map((text) => JSON.parse(text) as unknown)
    expect(entries).toStrictEqual([
      {
        at: expect.any(String),
        device: 'd9',
        reason: 'undecodable',
        message: 'spool entry 2 is not telemetry (not_cbor: unexpected end of data)',
        frame: Buffer.from(garbage.frame).toString('base64'),
      },
    ])
    expect(reasons).toStrictEqual(['undecodable'])
  })

  it('reads frames beyond the in-memory bound back from the spool, in order with the rest', async () => {
    const { spool, writer, shipper } = await setup({ maxHotReadings: 3 })
    hand(shipper, await commit(spool, [frame(0, 2), frame(2, 2), frame(4, 2), frame(6, 2)]))
    shipper.start()
    await vi.waitFor(() => expect(writer.values()).toEqual(range(0, 8)))
    await vi.waitFor(() => expect(spool.entries).toBe(0))
  })
})

describe('InfluxShipper: lag (back-pressure on acks)', () => {
  it('lags once a reachable InfluxDB is the bound behind, and stops lagging as batches land', async () => {
    const { spool, writer, shipper } = await setup({ maxLagReadings: 6 })
    writer.hold = true
    shipper.start()
    hand(shipper, await commit(spool, [frame(0, 2), frame(2, 2)]))
    expect(shipper.lagging).toBe(false)
    hand(shipper, await commit(spool, [frame(4, 2)]))
    expect(shipper.lagging).toBe(true)
    writer.release()
    await vi.waitFor(() => expect(shipper.lagging).toBe(false))
    expect(writer.values()).toEqual(range(0, 6))
  })

  it('never lags while InfluxDB is away, nor while the outage\'s backlog ships; lags again after that', async () => {
    const { spool, writer, shipper, reliefs } = await setup({ maxLagReadings: 6 })
    writer.fail = true
    hand(shipper, await commit(spool, [frame(0, 2), frame(2, 2), frame(4, 2), frame(6, 2)]))
    expect(shipper.lagging).toBe(true)
    shipper.start()
    // The first failed write ends the hold and tells ingest so at once: nothing was trimmed yet.
    await vi.waitFor(() => expect(writer.failures).toBeGreaterThan(0))
    expect(shipper.lagging).toBe(false)
    expect(reliefs()).toBe(1)
    writer.fail = false
    // Each batch retries on its own backoff, so they may land in any order.
    await vi.waitFor(() => expect(writer.values().sort((a, b) => a - b)).toEqual(range(0, 8)), { timeout: 5000 })
    await vi.waitFor(() => expect(spool.entries).toBe(0))
    writer.hold = true
    hand(shipper, await commit(spool, [frame(8, 2), frame(10, 2), frame(12, 2)]))
    expect(shipper.lagging).toBe(true)
    writer.release()
  })

  it('does not lag while a backlog left by a restart ships, which the lag does not count; lags again after it', async () => {
    const backlog = [frame(0, 4), frame(4, 4), frame(8, 4)].map((f) => f.entry)
    const { spool, writer, shipper } = await setup({ maxLagReadings: 6 }, backlog)
    writer.hold = true
    shipper.start()
    // New frames wait behind the backlog in seq order: holding commits for them would stall ingest until it all landed.
    hand(shipper, await commit(spool, [frame(12, 4), frame(16, 4)]))
    expect(shipper.lagging).toBe(false)
    writer.release()
    await vi.waitFor(() => expect(spool.entries).toBe(0))
    writer.hold = true
    hand(shipper, await commit(spool, [frame(20, 4), frame(24, 4)]))
    expect(shipper.lagging).toBe(true)
    writer.release()
  })

  it('never lags when shipping is off', async () => {
    const { spool, shipper } = await setup({ maxLagReadings: 2 }, [], { writer: undefined })
    hand(shipper, await commit(spool, [frame(0, 4)]))
    expect(shipper.lagging).toBe(false)
  })
})
