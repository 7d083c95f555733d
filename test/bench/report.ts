// Figures, verdicts, the printed table and the JSON document of a benchmark run.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { arch, cpus, loadavg, release, totalmem, type } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from './procs.js'

/** Whether a figure met its target; `n/a` when the run cannot judge it (say why in `note`). */
export type Verdict = 'met' | 'missed' | 'n/a'

/** One row of the table. */
export interface Figure {
  readonly scenario: string
  readonly figure: string
  readonly unit: string
  /** Fleetgate's value; undefined when the scenario failed before measuring it. */
  readonly fleetgate: number | undefined
  /** The peer's name and value from the same run, where the issue names a peer. */
  readonly peer?: { readonly name: string; readonly value: number | undefined }
  /** Fleetgate / peer (for "lower is better" figures too: the target says which way). */
  readonly ratio?: number | undefined
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

/** A number for the table: thousands separators, at most `digits` decimals. */
export function formatNumber(value: number | undefined, digits = 2): string {
  if (value === undefined || Number.isNaN(value)) return '-'
  const abs = Math.abs(value)
  const decimals = abs >= 1000 ? 0 : abs >= 100 ? Math.min(digits, 1) : digits
  return value.toLocaleString('en-US', { maximumFractionDigits: decimals, minimumFractionDigits: 0 })
}

const cell = (value: number | undefined, unit: string): string => (value === undefined ? '-' : `${formatNumber(value)}${unit === '' ? '' : ` ${unit}`}`)

/** The table's rows as text cells. */
function rows(figures: readonly Figure[]): string[][] {
  return figures.map((f) => [
    f.scenario,
    f.figure,
    cell(f.fleetgate, f.unit),
    f.peer === undefined ? '' : `${cell(f.peer.value, f.unit)} (${f.peer.name})`,
    f.ratio === undefined ? '' : `${formatNumber(f.ratio)}x`,
    f.target ?? '',
    f.verdict === 'n/a' ? 'n/a' : f.verdict,
  ])
}

const HEADER = ['scenario', 'figure', 'Fleetgate', 'peer', 'ratio', 'target', 'met/missed']

/** The table as aligned plain text, with notes under it. */
export function textTable(figures: readonly Figure[]): string {
  const all = [HEADER, ...rows(figures)]
  const widths = HEADER.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)))
  const line = (r: string[]): string => r.map((v, c) => v.padEnd(widths[c] ?? 0)).join('  ').trimEnd()
  const out = [line(HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...rows(figures).map(line)]
  const notes = figures.filter((f) => f.note !== undefined)
  if (notes.length > 0) out.push('', ...notes.map((f) => `- ${f.scenario} / ${f.figure}: ${f.note ?? ''}`))
  return out.join('\n')
}

/** The table as Markdown, with notes under it. */
export function markdownTable(figures: readonly Figure[]): string {
  const out = [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`, ...rows(figures).map((r) => `| ${r.join(' | ')} |`)]
  const notes = figures.filter((f) => f.note !== undefined)
  if (notes.length > 0) out.push('', ...notes.map((f) => `- ${f.scenario} / ${f.figure}: ${f.note ?? ''}`))
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
