// What people read: the live status line (a TTY), a log line every 10 s (otherwise), --jsonl
// snapshots, and the summary table at the end.
import { formatDuration } from './parse.js'
import type { Percentiles, Stats, StatsWindow } from './stats.js'
import type { Summary } from './summary.js'

/** The run at one instant: cumulative counts, and rates and latencies over the last window. */
export interface Snapshot {
  readonly at: string
  readonly elapsedMs: number
  readonly connected: number
  readonly target: number
  readonly booted: number
  readonly readings: { readonly sent: number; readonly acked: number; readonly nakedExpected: number; readonly nakedUnexpected: number; readonly dropped: number; readonly unsettled: number }
  readonly window: {
    readonly ms: number
    readonly sentPerSec: number
    readonly ackedPerSec: number
    readonly ackMs: Percentiles
    readonly commands: number
    readonly commandRttMs: Percentiles
    readonly lagMs: Percentiles
  }
  readonly reconnects: number
  readonly failedAttempts: number
  readonly naks: { readonly expected: number; readonly unexpected: number }
  readonly errors: number
  readonly commands: { readonly sent: number; readonly succeeded: number; readonly timeout: number; readonly offline: number }
  readonly rssBytes: number
  readonly heapUsedBytes: number
}

const rate = (count: number, ms: number): number => Math.round((count / ms) * 1000 * 10) / 10

/** Reads `window` (which starts over) and the cumulative stats into a Snapshot. */
export function takeSnapshot(stats: Stats, window: StatsWindow, nowMs: number, startedMs: number, target: number, booted: number): Snapshot {
  const w = window.read(nowMs)
  const r = stats.readings
  const memory = process.memoryUsage()
  return {
    at: new Date(nowMs).toISOString(),
    elapsedMs: nowMs - startedMs,
    connected: stats.connected,
    target,
    booted,
    readings: { sent: r.sent, acked: r.acked, nakedExpected: r.nakedExpected, nakedUnexpected: r.nakedUnexpected, dropped: r.dropped, unsettled: stats.unsettled },
    window: { ms: w.ms, sentPerSec: rate(w.sent, w.ms), ackedPerSec: rate(w.acked, w.ms), ackMs: w.ack, commands: w.commands, commandRttMs: w.commandRtt, lagMs: w.lag },
    reconnects: stats.sessions.reconnects,
    failedAttempts: stats.sessions.failedAttempts,
    naks: { expected: stats.naks.expected, unexpected: stats.naks.unexpected },
    errors: stats.errorCount,
    commands: { sent: stats.commands.sent, succeeded: stats.commands.succeeded, timeout: stats.commands.timeout, offline: stats.commands.offline },
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
  }
}

const int = (value: number): string => Math.round(value).toLocaleString('en-US')
const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2))
const mib = (bytes: number): string => `${(bytes / 1_048_576).toFixed(0)} MiB`

/** The one live line on a TTY (no newline; the caller rewrites it with \r). */
export function statusLine(s: Snapshot): string {
  const w = s.window
  return (
    `${formatDuration(s.elapsedMs)} | ${int(s.connected)}/${int(s.target)} connected | ` +
    `sent ${int(w.sentPerSec)}/s acked ${int(w.ackedPerSec)}/s | ack p50 ${ms(w.ackMs.p50)} p99 ${ms(w.ackMs.p99)} ms | ` +
    `cmd ${rate(w.commands, w.ms)}/s rtt p50 ${ms(w.commandRttMs.p50)} ms | reconnects ${int(s.reconnects)} | ` +
    `naks ${int(s.naks.expected)} expected ${int(s.naks.unexpected)} unexpected | errors ${int(s.errors)} | lag p99 ${ms(w.lagMs.p99)} ms | rss ${mib(s.rssBytes)}`
  )
}

/** A log line (not a TTY): the status with the time and cumulative totals. */
export function logLine(s: Snapshot): string {
  return `${s.at} ${statusLine(s)} | total sent ${int(s.readings.sent)} acked ${int(s.readings.acked)} unsettled ${int(s.readings.unsettled)}`
}

function pct(p: Percentiles): string {
  return p.count === 0 ? '-' : `p50 ${ms(p.p50)}  p95 ${ms(p.p95)}  p99 ${ms(p.p99)}  max ${ms(p.max)}  (n ${int(p.count)})`
}

const row = (label: string, value: string): string => `  ${label.padEnd(22)}${value}`

/** The summary table printed at the end. */
export function summaryTable(s: Summary): string {
  const r = s.readings
  const c = s.commands
  const d = s.sessions.disconnects
  const lines = [
    `fleetgate-sim ${s.ok ? 'PASS' : 'FAIL'}  seed ${s.seed}, ${int(s.devices.target)} devices, ${s.config.model}, ` +
      `sending ${formatDuration(s.timing.sendingMs)}, drain ${formatDuration(s.timing.drainMs)}${s.timing.stopped ? ' (stopped early)' : ''}`,
    row('devices', `booted ${int(s.devices.booted)}  ever connected ${int(s.devices.everConnected)}  max connected ${int(s.devices.maxConnected)}`),
    row('sessions', `connects ${int(s.sessions.connects)}  reconnects ${int(s.sessions.reconnects)}  failed attempts ${int(s.sessions.failedAttempts)}  storms ${int(s.sessions.storms)}`),
    row('disconnects', `churn ${int(d.churn)}  storm ${int(d.storm)}  reboot ${int(d.reboot)}  hub ${int(d.hub)}  network ${int(d.network)}`),
    row('readings sent', `${int(r.sent)}  (${int(s.rates.sentPerSec)}/s of ${int(s.rates.offeredPerSec)}/s asked)`),
    row('  acked', `${int(r.acked)}  (${int(s.rates.ackedPerSec)}/s)`),
    row('  naked expected', `${int(r.naked.expected)}  (bad frames: sent ${int(s.badFrames.sent)}, naked ${int(s.badFrames.naked)}, resent ${int(s.badFrames.resent)})`),
    row('  naked unexpected', int(r.naked.unexpected)),
    row('  dropped', int(r.dropped)),
    row('  unacked at end', int(r.unacked)),
    row('ack latency ms', pct(s.ackLatencyMs)),
    row('schedule lag ms', `${pct(s.schedule.lagMs)}${s.schedule.skippedFrames > 0 ? `  skipped frames ${int(s.schedule.skippedFrames)}` : ''}`),
  ]
  if (c.sent > 0 || c.skipped > 0) {
    lines.push(
      row('commands', `sent ${int(c.sent)}  ok ${int(c.succeeded)}  unknown_command ${int(c.expectedFailures)}  wrong ${int(c.unexpected)}  timeout ${int(c.timeout)}  offline ${int(c.offline)}  errors ${int(c.errors)}  skipped ${int(c.skipped)}  repeated calls ${int(c.repeated)}`),
      row('command rtt ms', pct(c.rttMs)),
    )
  }
  const t = s.twins
  if (t.changed > 0 || t.errors > 0 || t.skipped > 0) {
    lines.push(
      row('twin changes', `ok ${int(t.changed)}  converged ${int(t.converged)}  unconverged ${int(t.unconverged)}  errors ${int(t.errors)}  skipped ${int(t.skipped)}  repeated calls ${int(t.repeated)}`),
      row('convergence ms', pct(t.convergenceMs)),
    )
  }
  if (t.verify !== null) lines.push(row('verify twins', `${int(t.verify.inSync)}/${int(t.verify.devices)} in sync  (${formatDuration(t.verify.waitedMs)})`))
  const handled = Object.entries(s.handled)
  if (handled.length > 0) lines.push(row('devices handled', handled.map(([name, count]) => `${name} ${int(count)}`).join('  ')))
  for (const [model, counts] of Object.entries(s.perModel)) {
    if (counts.devices === 0) continue
    lines.push(row(model, `devices ${int(counts.devices)}  sent ${int(counts.sent)}  acked ${int(counts.acked)}  naked ${int(counts.naked)}  commands ${int(counts.commandsHandled)}`))
  }
  if (s.errors.total > 0) lines.push(row('errors', Object.entries(s.errors.byCode).map(([code, count]) => `${code} ${int(count)}`).join('  ')))
  const v = s.verify
  if (v !== null) {
    lines.push(
      row(`verify (${v.via})`, `devices ${int(v.matchedDevices)}/${int(v.devices)} match  acked ${int(v.acked)}  stored ${int(v.stored)}  missing ${int(v.missing)}  duplicates ${int(v.duplicates)}  extra ${int(v.extra)}  (${formatDuration(v.waitedMs)})`),
    )
  }
  lines.push(row('process', `rss max ${mib(s.process.rssMaxBytes)}  cpu user ${formatDuration(s.process.cpuUserMs)} system ${formatDuration(s.process.cpuSystemMs)}`))
  for (const warning of s.warnings) lines.push(`  WARN: ${warning}`)
  for (const reason of s.reasons) lines.push(`  FAIL: ${reason}`)
  return `${lines.join('\n')}\n`
}
