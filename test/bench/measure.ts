import { readFileSync } from 'node:fs'
import { medianOf, spreadOf, type Spread } from './report.js'

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status)
  if (match?.[1] === undefined) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1]) * 1024
}

/** CPU time (user + system) a process has used, in ms (Linux /proc, clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  // After the command name: field 14 (utime) and 15 (stime) of stat(5) are at 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) * 10
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The open-files soft limit of a process (Linux /proc); Infinity when unlimited. */
export function openFilesLimit(pid: number): number {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8')
  const match = /^Max open files\s+(\S+)/m.exec(limits)
  return match?.[1] === undefined || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1])
}

/** A point in a process's CPU time, to measure the cores it used since. */
export interface CpuMark {
  readonly cpuMs: number
  readonly at: number
}

/** Marks a process's CPU time now. */
export function cpuMark(pid: number): CpuMark {
  return { cpuMs: cpuMs(pid), at: performance.now() }
}

/** Cores a process used since `mark` (1.0 = one core busy all the time). */
export function coresSince(pid: number, mark: CpuMark): number {
  const elapsed = performance.now() - mark.at
  return elapsed <= 0 ? 0 : (cpuMs(pid) - mark.cpuMs) / elapsed
}

/** Samples a process's RSS every `intervalMs` (default 1 s) until `stop`; keeps the highest. */
export class RssSampler {
  readonly #pid: number
  readonly #timer: NodeJS.Timeout
  #max = 0

  constructor(pid: number, intervalMs = 1000) {
    this.#pid = pid
    this.#sample()
    this.#timer = setInterval(() => this.#sample(), intervalMs)
  }

  /** Highest RSS seen, in bytes. */
  get maxBytes(): number {
    return this.#max
  }

  /** Stops sampling (one last sample first) and returns the highest RSS, in bytes. */
  stop(): number {
    this.#sample()
    clearInterval(this.#timer)
    return this.#max
  }

  #sample(): void {
    try {
      this.#max = Math.max(this.#max, rssBytes(this.#pid))
    } catch {
      // the process has exited: the figures so far stand
    }
  }
}

/** How a wait for a count ended. */
export interface CatchUp {
  readonly reached: boolean
  /** The last count seen. */
  readonly last: number
  /** When the count was reached (or the wait ended), in s after it began. */
  readonly afterSec: number
  /** The count's rate of progress over the wait, per second. */
  readonly perSec: number
}

/**
 * Polls `probe` until it reaches `target` or `timeoutMs` passes. Gives up early when the count has
 * not moved for 3 s (what is missing is not coming), or when after 5 s, at the rate seen so far,
 * the target is more than twice the remaining time away (it will not make it).
 */
export async function catchUp(probe: () => Promise<number>, target: number, timeoutMs: number, intervalMs = 200): Promise<CatchUp> {
  const started = performance.now()
  const first = await probe()
  let last = first
  let movedAt = started
  for (;;) {
    const now = performance.now()
    const elapsed = now - started
    if (last >= target || elapsed >= timeoutMs || now - movedAt >= 3000) break
    const rate = (last - first) / Math.max(1, elapsed)
    if (elapsed > 5000 && (rate <= 0 || (target - last) / rate > 2 * (timeoutMs - elapsed))) break
    await sleep(intervalMs)
    const next = await probe()
    if (next !== last) movedAt = performance.now()
    last = next
  }
  const elapsed = performance.now() - started
  return { reached: last >= target, last, afterSec: elapsed / 1000, perSec: ((last - first) * 1000) / Math.max(1, elapsed) }
}

/** RSS split as /proc reports it: anonymous memory (heaps) and file-backed pages (lmdb's map), in bytes. */
export function rssParts(pid: number): { anonBytes: number; fileBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024
  return { anonBytes: kb('RssAnon'), fileBytes: kb('RssFile') }
}

/** TCP counters of this network namespace (/proc/net/netstat): accept-queue overflows and SYN retransmits. */
export function tcpCounters(): { listenOverflows: number; synRetransmits: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n')
  const header = lines.findIndex((l) => l.startsWith('TcpExt:'))
  const names = lines[header]?.split(/\s+/) ?? []
  const values = lines[header + 1]?.split(/\s+/) ?? []
  const value = (name: string): number => Number(values[names.indexOf(name)] ?? Number.NaN)
  return { listenOverflows: value('ListenOverflows'), synRetransmits: value('TCPSynRetrans') }
}

/**
 * How many times each peer is measured in one run: 3. The table shows the median and flags a
 * spread too wide to compare (report.ts, `PEER_SPREAD_LIMIT`).
 */
export const PEER_RUNS = 3

/** A measurement repeated: every run, the run whose figure is the median, and the figures' spread. */
export interface Repeated<T> {
  readonly runs: readonly T[]
  /** The run with the median figure; undefined when no run had a figure. */
  readonly median: T | undefined
  /** Over the runs that had a figure; undefined when none had. */
  readonly spread: Spread | undefined
}

/**
 * Runs `measure` `count` times, one after another (each sees the runs before it, e.g. to start a
 * rate search where the last one ended), and picks the run whose `figure` is the median. Runs
 * without a figure (nothing passed) are kept but neither chosen nor counted in the spread.
 */
export async function repeatRuns<T>(count: number, measure: (before: readonly T[]) => Promise<T>, figure: (run: T) => number | undefined): Promise<Repeated<T>> {
  const runs: T[] = []
  for (let i = 0; i < count; i++) runs.push(await measure(runs))
  const measured = runs.filter((r) => figure(r) !== undefined)
  if (measured.length === 0) return { runs, median: undefined, spread: undefined }
  const values = measured.map((r) => figure(r) as number)
  const median = measured[values.indexOf(medianOf(values))]
  return { runs, median, spread: spreadOf(values) }
}
