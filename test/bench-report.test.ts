// The benchmark's report logic (test/bench/report.ts, measure.ts): peers repeated and their median
// and spread, verdicts a wide spread could turn, the CPU column and the previous run's column.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { repeatRuns } from './bench/measure.js'
import { markdownTable, medianOf, PEER_SPREAD_LIMIT, ratioAtLeast, readPrevious, spreadOf, type Figure } from './bench/report.js'

describe('peer repetitions', () => {
  it('takes the median run, measured in order, and leaves runs without a figure out of the spread', async () => {
    const figures = [42_000, undefined, 957, 40_000]
    const seenBefore: number[] = []
    const repeated = await repeatRuns<{ id: number; figure: number | undefined }>(
      figures.length,
      async (before) => {
        seenBefore.push(before.length)
        return { id: before.length, figure: figures[before.length] }
      },
      (run) => run.figure,
    )
    expect(seenBefore).toEqual([0, 1, 2, 3])
    expect(repeated.runs.map((r) => r.id)).toEqual([0, 1, 2, 3])
    expect(repeated.median).toEqual({ id: 3, figure: 40_000 })
    expect(repeated.spread).toEqual({ runs: 3, min: 957, max: 42_000, relative: (42_000 - 957) / 40_000 })
  })

  it('has no median and no spread when no run had a figure', async () => {
    expect(await repeatRuns(2, async () => ({ figure: undefined }), (r) => r.figure)).toEqual({ runs: [{ figure: undefined }, { figure: undefined }], median: undefined, spread: undefined })
  })

  it('takes the lower middle of an even count, so that the median is a measured value', () => {
    expect(medianOf([4, 1, 3, 2])).toBe(2)
    expect(medianOf([5])).toBe(5)
    expect(spreadOf([10])).toEqual({ runs: 1, min: 10, max: 10, relative: 0 })
  })
})

describe('verdicts against a peer', () => {
  const peer = (min: number, value: number, max: number): { name: string; value: number; spread: ReturnType<typeof spreadOf> } => ({
    name: 'peer',
    value,
    spread: spreadOf([min, value, max]),
  })

  it('judges the median when the spread is within the limit', () => {
    expect(PEER_SPREAD_LIMIT).toBe(0.2)
    expect(ratioAtLeast(10_500, peer(9_500, 10_000, 11_000), 1)).toBe('met')
    expect(ratioAtLeast(9_900, peer(9_500, 10_000, 11_000), 1)).toBe('missed')
  })

  it('is n/a when a spread too wide to compare could turn it, and stands when it could not', () => {
    expect(ratioAtLeast(10_500, peer(5_000, 10_000, 20_000), 1)).toBe('n/a')
    expect(ratioAtLeast(4_000, peer(5_000, 10_000, 20_000), 1)).toBe('missed')
    expect(ratioAtLeast(25_000, peer(5_000, 10_000, 20_000), 1)).toBe('met')
  })
})

describe('the table', () => {
  const figures: Figure[] = [
    {
      scenario: 'ingest 1/frame',
      figure: 'readings/s vs Mosquitto',
      unit: '/s',
      fleetgate: 20_000,
      cpuPerReadingUs: { fleetgate: 46.04, peer: 11.3 },
      peer: { name: 'Mosquitto', value: 40_000, spread: spreadOf([30_000, 40_000, 45_000]) },
      ratio: 0.5,
      target: 'ratio >= 1.0',
      verdict: 'missed',
    },
    { scenario: 'commands', figure: 'REST round trip p99', unit: 'ms', fleetgate: 4.5, target: '<= 5 ms', verdict: 'met' },
  ]

  it('prints the CPU column, the peer spread with its flag, and the previous run beside each row it had', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetgate-bench-report-'))
    try {
      const file = join(dir, 'previous.json')
      const before: Figure[] = [{ ...(figures[0] as Figure), fleetgate: 15_221, peer: { name: 'Mosquitto', value: 42_493 } }]
      writeFileSync(file, JSON.stringify({ mode: 'full', startedAt: '2026-11-21T13:22:51.034Z', figures: before }))
      const previous = readPrevious(file)
      expect(previous.label).toMatch(/^full run of 2026-11-21T13:22:51.034Z \(.*previous\.json\)$/)
      expect(markdownTable(figures, previous).split('\n')).toEqual([
        '| scenario | figure | Fleetgate | hub CPU µs/reading | peer | ratio | target | met/missed | previous |',
        '|---|---|---|---|---|---|---|---|---|',
        '| ingest 1/frame | readings/s vs Mosquitto | 20,000 /s | 46 (peer 11.3) | 40,000 /s (Mosquitto; median of 3: 30,000-45,000, spread 38 %; TOO WIDE TO COMPARE (> 20 %)) | 0.5x | ratio >= 1.0 | missed | 15,221 /s (peer 42,493 /s) |',
        '| commands | REST round trip p99 | 4.5 ms |  |  |  | <= 5 ms | met |  |',
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads the committed figures of the README as the default previous run', () => {
    const path = new URL('../docs/bench/published.json', import.meta.url).pathname
    const published = JSON.parse(readFileSync(path, 'utf8')) as { mode: string; startedAt: string; figures: Array<{ scenario: string; figure: string; fleetgate: number; peer?: { value: number } }> }
    // The README's table is the published run: copy bench-results/latest.json over it with the table.
    expect(readFileSync(new URL('../README.md', import.meta.url), 'utf8')).toContain(`Fleetgate bench, ${published.mode} run, ${published.startedAt},`)
    const previous = readPrevious(path)
    expect(previous.label).toBe(`${published.mode} run of ${published.startedAt} (docs/bench/published.json)`)
    expect(published.figures.length).toBeGreaterThan(0)
    for (const figure of published.figures) expect(previous.figures.get(`${figure.scenario} / ${figure.figure}`)).toEqual(figure)
    expect(previous.figures.size).toBe(published.figures.length)
  })

  it('names the file when the previous run cannot be read', () => {
    expect(() => readPrevious('/nonexistent/previous.json')).toThrow(/^previous figures \/nonexistent\/previous\.json: ENOENT/)
  })
})
