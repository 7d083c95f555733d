// Figures, verdicts, the printed table and the JSON document of a benchmark run.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { arch, cpus, loadavg, release, totalmem, type } from 'node:os'
import { join, relative } from 'node:path'
import { REPO_ROOT } from './procs.js'

/** Whether a figure met its target; `n/a` when the run cannot judge it (say why in `note`). */
export type Verdict = 'met' | 'missed' | 'n/a'

/**
 * How far repeated measurements of one figure spread: the same peer measured `runs` times in one
 * run; the figure is their median.
 */
export interface Spread {
  readonly runs: number
  readonly min: number
  readonly max: number
  /** (max - min) / median: 0.1 means the runs span 10 % of the figure. */
  readonly relative: number
}

/**
 * The widest relative spread (max - min over the median of a peer's runs) at which a peer's figure
 * still serves as a yardstick: 20 %. Beyond it the ratio targets (1.0, 0.8) stop being readable (a
 * peer that moves by a fifth turns a ratio of 0.9 into one of 1.1): the peer was disturbed (other
 * load, a broker queue that collapsed) and its figure is flagged "too wide to compare".
 */
export const PEER_SPREAD_LIMIT = 0.2

/**
 * The median of `values`: the middle one, or the lower of the middle two for an even count, so
 * that the median is always a value that was measured. NaN when empty.
 */
export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? Number.NaN : (sorted[(sorted.length - 1) >> 1] as number)
}

/** The spread of `values` around their median; `relative` is 0 for a single value, NaN for none. */
export function spreadOf(values: readonly number[]): Spread {
  const min = Math.min(...values)
  const max = Math.max(...values)
  const median = medianOf(values)
  return { runs: values.length, min, max, relative: median > 0 ? (max - min) / median : Number.NaN }
}

/** Whether a spread is too wide for its figure to be compared with (see `PEER_SPREAD_LIMIT`). */
export function tooWide(spread: Spread | undefined): boolean {
  return spread !== undefined && !(spread.relative <= PEER_SPREAD_LIMIT)
}

/** A peer's figure in a row. */
export interface PeerFigure {
  readonly name: string
  /** The median of the peer's runs (or its one run). */
  readonly value: number | undefined
  /** Present when the peer was measured more than once. */
  readonly spread?: Spread
}

/** One row of the table. */
export interface Figure {
  readonly scenario: string
  readonly figure: string
  readonly unit: string
  /** Fleetgate's value; undefined when the scenario failed before measuring it. */
  readonly fleetgate: number | undefined
  /** The peer's name and value from the same run, where the issue names a peer. */
  readonly peer?: PeerFigure
  /** Fleetgate / peer (for "lower is better" figures too: the target says which way). */
  readonly ratio?: number | undefined
  /**
   * Ingest rows: µs of CPU per reading over the steady window of the run the row comes from,
   * the hub's (Fleetgate) and the peer process's (reference hub per reading acked, Mosquitto per
   * message delivered).
   */
  readonly cpuPerReadingUs?: { readonly fleetgate: number | undefined; readonly peer?: number | undefined }
  /** The target as text, e.g. ">= 40,000/s" or "ratio >= 1.0". */
  readonly target?: string
  readonly verdict: Verdict
  readonly note?: string
}

/** Verdict of `value >= min`; n/a when the value is missing. */
export function atLeast(value: number | undefined, min: number): Verdict {
  if (value === undefined || Number.isNaN(value)) return 'n/a'
  return value >= min ? 'met' : 'missed'
}

/** Verdict of `value <= max`; n/a when the value is missing. */
export function atMost(value: number | undefined, max: number): Verdict {
  if (value === undefined || Number.isNaN(value)) return 'n/a'
  return value <= max ? 'met' : 'missed'
}

/** a / b, or undefined when either is missing or b is 0. */
export function ratioOf(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0 || Number.isNaN(a) || Number.isNaN(b)) return undefined
  return a / b
}

/**
 * Verdict of `fleetgate / peer >= min`, judged at the peer's median. When the peer's spread is too
 * wide, the ratio is judged against the peer's slowest and fastest runs as well, and a verdict
 * that the spread could turn either way is n/a.
 */
export function ratioAtLeast(fleetgate: number | undefined, peer: PeerFigure, min: number): Verdict {
  const verdict = atLeast(ratioOf(fleetgate, peer.value), min)
  if (!tooWide(peer.spread) || peer.spread === undefined) return verdict
  const againstMin = atLeast(ratioOf(fleetgate, peer.spread.min), min)
  const againstMax = atLeast(ratioOf(fleetgate, peer.spread.max), min)
  return againstMin === againstMax ? verdict : 'n/a'
}

/** µs of CPU per item: `cores` busy while `perSec` items went through; undefined when nothing went through. */
export function microsPerItem(cores: number | undefined, perSec: number | undefined): number | undefined {
  if (cores === undefined || perSec === undefined || !(perSec > 0) || Number.isNaN(cores)) return undefined
  return (cores * 1e6) / perSec
}

/** A number for the table: thousands separators, at most `digits` decimals. */
export function formatNumber(value: number | undefined, digits = 2): string {
  if (value === undefined || Number.isNaN(value)) return '-'
  const abs = Math.abs(value)
  const decimals = abs >= 1000 ? 0 : abs >= 100 ? Math.min(digits, 1) : digits
  return value.toLocaleString('en-US', { maximumFractionDigits: decimals, minimumFractionDigits: 0 })
}

const cell = (value: number | undefined, unit: string): string => (value === undefined ? '-' : `${formatNumber(value)}${unit === '' ? '' : ` ${unit}`}`)
const percent = (share: number): string => `${Math.round(share * 100)} %`

function peerCell(f: Figure): string {
  if (f.peer === undefined) return ''
  const { name, value, spread } = f.peer
  if (spread === undefined || spread.runs < 2) return `${cell(value, f.unit)} (${name})`
  const range = `median of ${spread.runs}: ${formatNumber(spread.min)}-${formatNumber(spread.max)}, spread ${percent(spread.relative)}`
  const flag = tooWide(spread) ? `; TOO WIDE TO COMPARE (> ${percent(PEER_SPREAD_LIMIT)})` : ''
  return `${cell(value, f.unit)} (${name}; ${range}${flag})`
}

function cpuCell(f: Figure): string {
  if (f.cpuPerReadingUs === undefined) return ''
  const { fleetgate, peer } = f.cpuPerReadingUs
  return `${formatNumber(fleetgate, 1)}${peer === undefined ? '' : ` (peer ${formatNumber(peer, 1)})`}`
}

/** The figures of an earlier run, to print beside this run's. */
export interface PreviousRun {
  /** Where they came from, e.g. "full run of 2026-11-21T13:22:51.034Z (docs/bench/published.json)". */
  readonly label: string
  readonly figures: ReadonlyMap<string, Figure>
}

const figureKey = (f: Pick<Figure, 'scenario' | 'figure'>): string => `${f.scenario} / ${f.figure}`

/** The previous run's row of the same scenario and figure, as one cell: its value and its peer's. */
function previousCell(f: Figure, previous: PreviousRun | undefined): string {
  const before = previous?.figures.get(figureKey(f))
  if (before === undefined) return ''
  const peer = before.peer === undefined ? '' : ` (peer ${cell(before.peer.value, before.unit)})`
  return `${cell(before.fleetgate, before.unit)}${peer}`
}

/**
 * Reads a run's JSON document (what `run.ts` writes) as the previous run; throws with the path
 * when it cannot be read or holds no figures.
 */
export function readPrevious(path: string): PreviousRun {
  let document: { mode?: unknown; startedAt?: unknown; figures?: unknown }
  try {
    document = JSON.parse(readFileSync(path, 'utf8')) as typeof document
  } catch (err) {
    throw new Error(`previous figures ${path}: ${(err as Error).message}`, { cause: err })
  }
  if (!Array.isArray(document.figures)) throw new Error(`previous figures ${path}: no "figures" array`)
  const figures = new Map<string, Figure>()
  for (const f of document.figures as Figure[]) {
    if (typeof f.scenario === 'string' && typeof f.figure === 'string') figures.set(figureKey(f), f)
  }
  return { label: `${String(document.mode)} run of ${String(document.startedAt)} (${relative(REPO_ROOT, path)})`, figures }
}

/** The table's rows as text cells. */
function rows(figures: readonly Figure[], previous: PreviousRun | undefined): string[][] {
  return figures.map((f) => [
    f.scenario,
    f.figure,
    cell(f.fleetgate, f.unit),
    cpuCell(f),
    peerCell(f),
    f.ratio === undefined ? '' : `${formatNumber(f.ratio)}x`,
    f.target ?? '',
    f.verdict,
    previousCell(f, previous),
  ])
}

const HEADER = ['scenario', 'figure', 'Fleetgate', 'hub CPU µs/reading', 'peer', 'ratio', 'target', 'met/missed', 'previous']

const notes = (figures: readonly Figure[]): string[] => figures.filter((f) => f.note !== undefined).map((f) => `- ${f.scenario} / ${f.figure}: ${f.note ?? ''}`)

/** The table as aligned plain text, with notes under it; the last column holds `previous`'s figures. */
export function textTable(figures: readonly Figure[], previous?: PreviousRun): string {
  const body = rows(figures, previous)
  const all = [HEADER, ...body]
  const widths = HEADER.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)))
  const line = (r: string[]): string => r.map((v, c) => v.padEnd(widths[c] ?? 0)).join('  ').trimEnd()
  const out = [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)]
  const below = notes(figures)
  if (below.length > 0) out.push('', ...below)
  return out.join('\n')
}

/** The table as Markdown, with notes under it; the last column holds `previous`'s figures. */
export function markdownTable(figures: readonly Figure[], previous?: PreviousRun): string {
  const out = [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`, ...rows(figures, previous).map((r) => `| ${r.join(' | ')} |`)]
  const below = notes(figures)
  if (below.length > 0) out.push('', ...below)
  return out.join('\n')
}

/** Facts about the machine the figures came from. */
export interface Machine {
  readonly os: string
  readonly release: string
  readonly arch: string
  readonly cpuModel: string
  readonly cpus: number
  readonly totalMemoryBytes: number
  readonly loadAverageAtStart: readonly number[]
  /** This process's open-files limit (sessions are file descriptors). */
  readonly openFilesLimit: string
}

export function machine(): Machine {
  const limits = readFileSync('/proc/self/limits', 'utf8')
  const files = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)
  return {
    os: type(),
    release: release(),
    arch: arch(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cpus: cpus().length,
    totalMemoryBytes: totalmem(),
    loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))),
    openFilesLimit: files === null ? 'unknown' : `soft ${files[1] ?? '?'}, hard ${files[2] ?? '?'}`,
  }
}

function firstLine(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000 })
  if (result.error !== undefined) return `not available (${result.error.message})`
  return `${result.stdout}${result.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown'
}

function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, path), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

/** Versions of everything measured. */
export function versions(): Record<string, string> {
  return {
    node: process.version,
    fleetgateHub: packageVersion('hub/package.json'),
    influxd: firstLine('influxd', ['version']),
    mosquitto: firstLine('mosquitto', ['-h']),
    uWebSocketsJs: packageVersion('node_modules/uWebSockets.js/package.json'),
    ws: packageVersion('node_modules/ws/package.json'),
    aedes: packageVersion('node_modules/aedes/package.json'),
    mqtt: packageVersion('node_modules/mqtt/package.json'),
    influx: packageVersion('node_modules/influx/package.json'),
    lmdb: packageVersion('node_modules/lmdb/package.json'),
  }
}
