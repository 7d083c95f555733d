import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SteppingClock } from '../../test/support/clock.js'
import { DeadLetter, type DeadLetterCounters, type DeadLetterEntry, type DeadLetterLoss, type DeadLetterReason } from '../src/telemetry/dead-letter.js'

interface Written {
  at: string
  device: string
  reason: DeadLetterReason
  message: string
  line?: string
}

const read = (path: string): Written[] =>
  existsSync(path)
    ? readFileSync(path, 'utf8')
        .trimEnd()
        .split('\n')
        .map((text) => JSON.parse(text) as Written)
    : []

/** Counts by reason and by cause, as the hub's metrics take them. */
class Tally implements DeadLetterCounters {
  readonly reasons: Record<string, number> = {}
  readonly lost: Record<string, number> = {}
  deadLettered(reason: DeadLetterReason): void {
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1
  }
  deadLettersLost(cause: DeadLetterLoss, entries: number): void {
    this.lost[cause] = (this.lost[cause] ?? 0) + entries
  }
}

/** One refused line of `device` (`i` tells entries apart; `pad` sizes them). */
const refused = (device: string, i: number, pad = 0): DeadLetterEntry & { line: string } => ({
  device,
  reason: 'influx_refused',
  message: 'InfluxDB 400: field type conflict',
  line: `telemetry,device=${device} v="${i}${'x'.repeat(pad)}" ${i}`,
})

describe('DeadLetter', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fleetgate-dead-letter-'))
  })
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('appends JSON lines in order, across flushes, with device, reason, message and the reading', async () => {
    const deadLetter = new DeadLetter({ dir, fileName: 'order.jsonl', clock: new SteppingClock(Date.UTC(2024, 0, 2, 3, 4, 5)) })
    for (let i = 0; i < 50; i++) deadLetter.add(refused('d1', i))
    const firstFlush = deadLetter.flush()
    for (let i = 50; i < 100; i++) deadLetter.add(refused('d1', i))
    deadLetter.add({ device: 'd2', reason: 'line_protocol', message: 'not writable as line protocol: x', reading: { ts: 1, m: { time: 1 } } })
    deadLetter.add({ device: 'd3', reason: 'undecodable', message: 'spool entry 7 is not telemetry (not_cbor: x)', frame: 'AAE=' })
    await firstFlush
    await deadLetter.flush()
    const entries = readFileSync(deadLetter.path, 'utf8').trimEnd().split('\n').map((text) => JSON.parse(text) as unknown)
    expect(entries).toHaveLength(102)
    entries.slice(0, 100).forEach((entry, i) => expect(entry).toStrictEqual({ at: '2024-01-02T03:04:05.000Z', ...refused('d1', i) }))
    expect(entries.slice(100)).toStrictEqual([
      { at: '2024-01-02T03:04:05.000Z', device: 'd2', reason: 'line_protocol', message: 'not writable as line protocol: x', reading: { ts: 1, m: { time: 1 } } },
      { at: '2024-01-02T03:04:05.000Z', device: 'd3', reason: 'undecodable', message: 'spool entry 7 is not telemetry (not_cbor: x)', frame: 'AAE=' },
    ])
    expect([deadLetter.count, deadLetter.written, deadLetter.dropped]).toEqual([102, 102, 0])
  })

  it('keeps the newest entries: the file and one predecessor, each at most half the bound', async () => {
    const tally = new Tally()
    const deadLetter = new DeadLetter({ dir, fileName: 'rotated.jsonl', counters: tally, clock: new SteppingClock(0), tuning: { maxBytes: 4000, perDeviceEntries: 1000 } })
    const entryBytes = Buffer.byteLength(JSON.stringify({ at: new Date(0).toISOString(), ...refused('noisy', 100) }) + '\n')
    const perFile = Math.floor(2000 / entryBytes)
    // One device fills the whole bound several times over, in several flushes ...
    for (let i = 100; i < 100 + 5 * perFile; i++) {
      deadLetter.add(refused('noisy', i))
      if (i % 7 === 0) await deadLetter.flush()
    }
    await deadLetter.flush()
    // ... and another device's refused reading, later, is still written.
    deadLetter.add(refused('quiet', 100))
    await deadLetter.flush()

    const current = read(deadLetter.path)
    const previous = read(`${deadLetter.path}.1`)
    expect(readFileSync(deadLetter.path).length).toBeLessThanOrEqual(2000)
    expect(readFileSync(`${deadLetter.path}.1`).length).toBeLessThanOrEqual(2000)
    expect(current.at(-1)).toMatchObject({ device: 'quiet', line: refused('quiet', 100).line })
    // Nothing newer was lost: the two files hold the newest entries, in order, without a gap.
    const kept = [...previous, ...current].map((entry) => entry.line)
    const all = [...Array.from({ length: 5 * perFile }, (_, i) => refused('noisy', 100 + i).line), refused('quiet', 100).line]
    expect(kept).toStrictEqual(all.slice(all.length - kept.length))
    expect(kept.length).toBeGreaterThanOrEqual(perFile + 1)
    expect([deadLetter.count, deadLetter.dropped]).toEqual([5 * perFile + 1, 0])
    expect({ reasons: tally.reasons, lost: tally.lost }).toStrictEqual({ reasons: { influx_refused: 5 * perFile + 1 }, lost: {} })
  })

  it('writes at most perDeviceEntries of one device per window and counts the rest, so others stay visible', async () => {
    const tally = new Tally()
    const clock = new SteppingClock(0)
    const deadLetter = new DeadLetter({ dir, fileName: 'budget.jsonl', counters: tally, clock, tuning: { perDeviceEntries: 10, budgetWindowMs: 60_000 } })
    for (let i = 0; i < 500; i++) deadLetter.add(refused('noisy', i))
    deadLetter.add(refused('quiet', 0))
    deadLetter.add({ device: 'quiet', reason: 'undecodable', message: 'spool entry 1 is not telemetry (not_cbor: x)', frame: 'AA==' })
    await deadLetter.flush()
    expect(read(deadLetter.path).map((entry) => `${entry.device} ${entry.reason}`)).toStrictEqual([
      ...Array.from({ length: 10 }, () => 'noisy influx_refused'),
      'quiet influx_refused',
      'quiet undecodable',
    ])
    expect([deadLetter.count, deadLetter.written, deadLetter.dropped]).toEqual([502, 12, 490])
    expect({ reasons: tally.reasons, lost: tally.lost }).toStrictEqual({ reasons: { influx_refused: 501, undecodable: 1 }, lost: { device_budget: 490 } })

    // the next window brings a new budget
    clock.nowMs = 60_000
    deadLetter.add(refused('noisy', 1000))
    await deadLetter.flush()
    expect(read(deadLetter.path).at(-1)).toMatchObject({ device: 'noisy', line: refused('noisy', 1000).line })
  })

  it('counts an entry larger than half the bound as too_large, and makes room again when the file is moved away', async () => {
    const tally = new Tally()
    const deadLetter = new DeadLetter({ dir, fileName: 'small.jsonl', counters: tally, clock: new SteppingClock(0), tuning: { maxBytes: 1000 } })
    deadLetter.add(refused('d', 1, 600))
    deadLetter.add(refused('d', 2))
    await deadLetter.flush()
    expect(read(deadLetter.path).map((entry) => entry.line)).toStrictEqual([refused('d', 2).line])
    expect(tally.lost).toStrictEqual({ too_large: 1 })

    renameSync(deadLetter.path, join(dir, 'replayed.jsonl'))
    deadLetter.add(refused('d', 3))
    await deadLetter.flush()
    expect(read(deadLetter.path).map((entry) => entry.line)).toStrictEqual([refused('d', 3).line])
    expect([deadLetter.count, deadLetter.written, deadLetter.dropped]).toEqual([3, 2, 1])
  })

  it('an I/O failure is reported and counted, never thrown', async () => {
    const blocker = join(dir, 'not-a-dir')
    writeFileSync(blocker, '')
    const errors: Error[] = []
    const tally = new Tally()
    const deadLetter = new DeadLetter({ dir: blocker, counters: tally, onError: (err) => errors.push(err) })
    expect(() => deadLetter.add(refused('d', 1))).not.toThrow()
    await expect(deadLetter.flush()).resolves.toBeUndefined()
    expect([deadLetter.count, deadLetter.written, deadLetter.dropped]).toEqual([1, 0, 1])
    expect(tally.lost).toStrictEqual({ io_error: 1 })
    expect(errors).toHaveLength(1)
    expect(errors[0]?.cause).toBeInstanceOf(Error)
  })
})
