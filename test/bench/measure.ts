import { readFileSync } from 'node:fs'

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

/** The p-th percentile (0-100) of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)
  return sorted[Math.max(0, index)] as number
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
