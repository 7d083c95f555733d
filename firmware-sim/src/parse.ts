// Parsers of the simulator's flag values: durations, rates, percentages, address ranges. Pure;
// each returns the value or a reason, and options.ts names the flag around it.
import { isIPv4, isIPv6 } from 'node:net'

/** A parsed value, or why the text is not one. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string }

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value })
const bad = <T>(reason: string): Parsed<T> => ({ ok: false, reason })

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const NUMBER = '(\\d+(?:\\.\\d+)?|\\.\\d+)'
const DURATION_PART = new RegExp(`${NUMBER}(ms|s|m|h|d)`, 'g')
const DURATION = new RegExp(`^(?:${NUMBER}(?:ms|s|m|h|d))+$`)

/**
 * A duration in ms: `500ms`, `90s`, `10m`, `2h`, `1d`, combinations such as `1h30m`, or a bare
 * number of seconds (`45`).
 */
export function parseDuration(text: string): Parsed<number> {
  const trimmed = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return ok(Math.round(Number(trimmed) * 1000))
  if (!DURATION.test(trimmed)) return bad(`expected a duration such as 500ms, 90s, 10m, 2h or 1h30m, got ${JSON.stringify(text)}`)
  let ms = 0
  for (const match of trimmed.matchAll(DURATION_PART)) ms += Number(match[1]) * (UNIT_MS[match[2] as string] as number)
  return ok(Math.round(ms))
}

/** A rate per second: `200/s`, `12.5/s`, `600/min`, `3600/h`, or a bare number per second. */
export function parsePerSec(text: string): Parsed<number> {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:\/\s*(s|sec|m|min|h))?\s*$/.exec(text)
  if (match === null) return bad(`expected a rate such as 200/s, 0.5/s or 600/min, got ${JSON.stringify(text)}`)
  const value = Number(match[1])
  switch (match[2]) {
    case 'm':
    case 'min':
      return ok(value / 60)
    case 'h':
      return ok(value / 3600)
    default:
      return ok(value)
  }
}

/** A percentage: `2%`, `0.5%` or a bare number (`2`), 0 to 100. */
export function parsePercent(text: string): Parsed<number> {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%?\s*$/.exec(text)
  if (match === null) return bad(`expected a percentage such as 2% or 0.5%, got ${JSON.stringify(text)}`)
  const value = Number(match[1])
  return value > 100 ? bad(`expected at most 100%, got ${value}%`) : ok(value)
}

/** A percentage per minute: `5%/min`, `5%/m`, `5%` or `5` (per minute); above 100 % a device is hit more than once a minute. */
export function parsePercentPerMin(text: string): Parsed<number> {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%?\s*(?:\/\s*(min|m))?\s*$/.exec(text)
  if (match === null) return bad(`expected a percentage per minute such as 5%/min, got ${JSON.stringify(text)}`)
  return ok(Number(match[1]))
}

/** A whole number, `_` allowed between digits (`10_000`). */
export function parseWhole(text: string): Parsed<number> {
  const trimmed = text.trim()
  if (!/^\d+(?:_\d+)*$/.test(trimmed)) return bad(`expected a whole number, got ${JSON.stringify(text)}`)
  const value = Number(trimmed.replaceAll('_', ''))
  return Number.isSafeInteger(value) ? ok(value) : bad(`${trimmed} is too large`)
}

/** Most source addresses one `--local-address` may name. */
export const MAX_LOCAL_ADDRESSES = 4096

/**
 * Source addresses: a comma-separated list of IPv4 or IPv6 addresses and IPv4 ranges
 * (`127.0.0.2-127.0.0.40`, or `127.0.0.2-40` for the last octet), in order, duplicates removed.
 */
export function parseAddresses(text: string): Parsed<string[]> {
  const out = new Set<string>()
  for (const raw of text.split(',')) {
    const part = raw.trim()
    if (part === '') return bad(`expected addresses or ranges separated by commas, got ${JSON.stringify(text)}`)
    if (isIPv6(part)) {
      out.add(part)
    } else if (isIPv4(part)) {
      out.add(part)
    } else {
      const dash = part.indexOf('-')
      if (dash < 0) return bad(`${JSON.stringify(part)} is not an IP address or a range a.b.c.d-a.b.c.e`)
      const first = part.slice(0, dash)
      let last = part.slice(dash + 1)
      if (/^\d{1,3}$/.test(last)) last = `${first.slice(0, first.lastIndexOf('.') + 1)}${last}`
      if (!isIPv4(first) || !isIPv4(last)) return bad(`${JSON.stringify(part)} is not an IPv4 range a.b.c.d-a.b.c.e`)
      const from = ipv4ToInt(first)
      const to = ipv4ToInt(last)
      if (to < from) return bad(`${JSON.stringify(part)} ends before it starts`)
      if (to - from + 1 > MAX_LOCAL_ADDRESSES) return bad(`${JSON.stringify(part)} holds more than ${MAX_LOCAL_ADDRESSES} addresses`)
      for (let n = from; n <= to; n++) out.add(intToIpv4(n))
    }
    if (out.size > MAX_LOCAL_ADDRESSES) return bad(`more than ${MAX_LOCAL_ADDRESSES} addresses`)
  }
  return ok([...out])
}

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0)
}

function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.')
}

/** A duration for people: `850 ms`, `12.5 s`, `3 min 20 s`, `2 h 5 min`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  const totalSec = Math.round(ms / 1000)
  if (totalSec < 3600) return `${Math.floor(totalSec / 60)} min ${totalSec % 60} s`
  return `${Math.floor(totalSec / 3600)} h ${Math.floor((totalSec % 3600) / 60)} min`
}
