// The end of a run: every count in one object (what --json writes), and the checks that decide
// the exit code. A run passes only when every sent reading was acked or deliberately naked and,
// with --verify, found stored exactly once.
import type { FleetTiming } from './fleet.js'
import type { ModelName } from './models.js'
import type { SimOptions } from './options.js'
import type { CommandOutcome, DisconnectCause, ModelCounts, Percentiles, Stats } from './stats.js'
import type { TwinVerifyResult } from './twin-driver.js'
import type { VerifyResult } from './verify.js'

/** Everything a run measured. Counts of readings are readings, not frames; latencies are ms. */
export interface Summary {
  /** Whether every check passed (exit code 0). */
  readonly ok: boolean
  /** Why not, one line each; empty when ok. */
  readonly reasons: readonly string[]
  /** Things to know that are not failures (the simulator falling behind, a rate above the hub's). */
  readonly warnings: readonly string[]
  readonly seed: number
  readonly startedAt: string
  readonly endedAt: string
  readonly hub: string
  readonly config: {
    readonly devices: number
    readonly model: string
    readonly rate: number
    readonly batch: number
    readonly durationMs: number | null
    readonly readings: number | null
    readonly churnPercentPerMin: number
    readonly stormEveryMs: number | null
    readonly clockSkewMs: number
    readonly badFramesPercent: number
    readonly commandRate: number
    readonly twinRate: number
    readonly localAddresses: number
  }
  readonly timing: Omit<FleetTiming, 'connectedAtEnd'> & { readonly verifyMs: number; readonly totalMs: number }
  readonly devices: {
    readonly target: number
    readonly booted: number
    readonly everConnected: number
    readonly neverConnected: number
    readonly connectedAtEnd: number
    readonly maxConnected: number
  }
  readonly sessions: {
    readonly connects: number
    readonly reconnects: number
    readonly failedAttempts: number
    readonly disconnects: Readonly<Record<DisconnectCause, number>>
    readonly closeCodes: Readonly<Record<string, number>>
    readonly storms: number
    readonly lastFailures: readonly string[]
  }
  readonly readings: {
    readonly sent: number
    readonly acked: number
    readonly naked: { readonly expected: number; readonly unexpected: number }
    readonly dropped: number
    /** Sent and neither acked nor naked nor dropped when the run ended. */
    readonly unacked: number
    /** Refused by the SDK for another reason (should never happen). */
    readonly failed: number
  }
  readonly naks: { readonly expected: number; readonly unexpected: number; readonly byReason: Readonly<Record<string, number>> }
  readonly badFrames: { readonly sent: number; readonly naked: number; readonly resent: number }
  /** sentPerSec over the sending phase; offeredPerSec what was asked (devices x rate, less bad frames). */
  readonly rates: { readonly offeredPerSec: number; readonly sentPerSec: number; readonly ackedPerSec: number }
  /**
   * How late the devices' reading timers fired: a simulator short of CPU falls behind and offers
   * less load than asked (skippedFrames: frames given up when over 5 s late). Not a check.
   */
  readonly schedule: { readonly lagMs: Percentiles; readonly skippedFrames: number; readonly behind: boolean }
  /** From each send()/sendBatch() call to its promise resolving at the ack (one call = `batch` readings). */
  readonly ackLatencyMs: Percentiles
  readonly commands: {
    readonly sent: number
    readonly succeeded: number
    readonly expectedFailures: number
    readonly unexpected: number
    readonly timeout: number
    readonly offline: number
    readonly errors: number
    readonly skipped: number
    /** Calls made again after no answer or a 502/503 (a node killed under the balancer): the command's own id keeps it one command. */
    readonly repeated: number
    readonly byName: Readonly<Record<string, Readonly<Record<CommandOutcome, number>>>>
    /** From the REST call to the final record (200 answers only). */
    readonly rttMs: Percentiles
    readonly last: readonly string[]
    readonly lastByOutcome: Readonly<Partial<Record<CommandOutcome, string>>>
  }
  /** Desired twin changes (--twin-rate) and their convergence. */
  readonly twins: {
    /** Changes answered 200. */
    readonly changed: number
    readonly errors: number
    /** Changes not made: too many in flight. */
    readonly skipped: number
    /** Calls made again after no answer or a 502/503. */
    readonly repeated: number
    readonly converged: number
    /** Changes answered 200 whose device had not reported applying them when the run ended. */
    readonly unconverged: number
    /** From each change's REST call to its device's report of settings applying it (or a later change). */
    readonly convergenceMs: Percentiles
    readonly last: readonly string[]
    /** --verify: every changed device's twin read back (delta `{}`). */
    readonly verify: TwinVerifyResult | null
  }
  /** Commands the simulated devices received, by name. */
  readonly handled: Readonly<Record<string, number>>
  readonly perModel: Readonly<Record<ModelName, ModelCounts>>
  readonly errors: { readonly total: number; readonly byCode: Readonly<Record<string, number>>; readonly last: readonly string[] }
  readonly process: { readonly rssMaxBytes: number; readonly rssEndBytes: number; readonly heapUsedBytes: number; readonly cpuUserMs: number; readonly cpuSystemMs: number }
  readonly verify: VerifyResult | null
}

/** What buildSummary is given besides the stats. */
export interface SummaryInput {
  readonly options: SimOptions
  readonly stats: Stats
  readonly timing: FleetTiming
  readonly verify: VerifyResult | undefined
  /** Desired changes not converged at the end, and the twins' --verify. */
  readonly twins: { readonly unconverged: number; readonly verify: TwinVerifyResult | undefined }
  readonly verifyMs: number
  readonly startedAt: number
  readonly endedAt: number
  readonly booted: number
  readonly everConnected: number
  readonly rssMaxBytes: number
  readonly cpu: NodeJS.CpuUsage
}

const perSec = (count: number, ms: number): number => Math.round((count / Math.max(1, ms)) * 1000 * 10) / 10

/** The summary of a finished run, with its verdict. */
export function buildSummary(input: SummaryInput): Summary {
  const { options, stats, timing, verify } = input
  const r = stats.readings
  const scheduleLag = stats.scheduleLag()
  const memory = process.memoryUsage()
  const summary: Omit<Summary, 'ok' | 'reasons' | 'warnings'> = {
    seed: options.seed,
    startedAt: new Date(input.startedAt).toISOString(),
    endedAt: new Date(input.endedAt).toISOString(),
    hub: options.hub,
    config: {
      devices: options.devices,
      model: options.model,
      rate: options.rate,
      batch: options.batch,
      durationMs: options.durationMs ?? null,
      readings: options.readings ?? null,
      churnPercentPerMin: options.churnPercentPerMin,
      stormEveryMs: options.stormEveryMs ?? null,
      clockSkewMs: options.clockSkewMs,
      badFramesPercent: options.badFramesPercent,
      commandRate: options.commandRate,
      twinRate: options.twinRate,
      localAddresses: options.localAddresses.length,
    },
    timing: {
      sendingMs: timing.sendingMs,
      drainMs: timing.drainMs,
      drained: timing.drained,
      stopped: timing.stopped,
      verifyMs: input.verifyMs,
      totalMs: input.endedAt - input.startedAt,
    },
    devices: {
      target: options.devices,
      booted: input.booted,
      everConnected: input.everConnected,
      neverConnected: input.booted - input.everConnected,
      connectedAtEnd: timing.connectedAtEnd,
      maxConnected: stats.maxConnected,
    },
    sessions: {
      ...stats.sessions,
      disconnects: { ...stats.sessions.disconnects },
      closeCodes: { ...stats.sessions.closeCodes },
      lastFailures: [...stats.sessions.lastFailures],
    },
    readings: {
      sent: r.sent,
      acked: r.acked,
      naked: { expected: r.nakedExpected, unexpected: r.nakedUnexpected },
      dropped: r.dropped,
      unacked: stats.unsettled,
      failed: r.failed,
    },
    naks: { ...stats.naks, byReason: { ...stats.naks.byReason } },
    badFrames: { ...stats.badFrames },
    rates: {
      offeredPerSec: options.devices * options.rate,
      sentPerSec: perSec(r.sent - stats.badFrames.sent, timing.sendingMs),
      ackedPerSec: perSec(r.acked, timing.sendingMs + timing.drainMs),
    },
    schedule: {
      lagMs: scheduleLag,
      skippedFrames: stats.generator.skippedFrames,
      // behind when a tenth of the ticks were late by more than a frame interval
      behind: stats.generator.skippedFrames > 0 || (options.rate > 0 && scheduleLag.p95 > (1000 * options.batch) / options.rate),
    },
    ackLatencyMs: stats.ackLatency(),
    commands: {
      ...stats.commands,
      byName: structuredClone(stats.commands.byName),
      rttMs: stats.commandRtt(),
      last: [...stats.commands.last],
      lastByOutcome: { ...stats.commands.lastByOutcome },
    },
    twins: {
      changed: stats.twins.changed,
      errors: stats.twins.errors,
      skipped: stats.twins.skipped,
      repeated: stats.twins.repeated,
      converged: stats.twins.converged,
      unconverged: input.twins.unconverged,
      convergenceMs: stats.twinConvergence(),
      last: [...stats.twins.last],
      verify: input.twins.verify ?? null,
    },
    handled: { ...stats.handled },
    perModel: structuredClone(stats.perModel),
    errors: { total: stats.errorCount, byCode: { ...stats.errors.byCode }, last: [...stats.errors.last] },
    process: {
      rssMaxBytes: Math.max(input.rssMaxBytes, memory.rss),
      rssEndBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      cpuUserMs: Math.round(input.cpu.user / 1000),
      cpuSystemMs: Math.round(input.cpu.system / 1000),
    },
    verify: verify ?? null,
  }
  const reasons = checks(summary, options)
  const warnings = [...stats.warnings]
  if (summary.schedule.behind) warnings.push('the simulator fell behind its schedule (short of CPU?): it offered less load than asked')
  return { ok: reasons.length === 0, reasons, warnings, ...summary }
}

const n = (value: number): string => value.toLocaleString('en-US')

/** The failed checks of a summary, one line each. */
export function checks(s: Omit<Summary, 'ok' | 'reasons' | 'warnings'>, options: SimOptions): string[] {
  const reasons: string[] = []
  const { readings, devices, commands, verify } = s
  if (devices.neverConnected > 0) reasons.push(`${n(devices.neverConnected)} of ${n(devices.booted)} devices never connected (wrong keys, hub unreachable, or refused: see errors)`)
  if (readings.naked.unexpected > 0) reasons.push(`${n(readings.naked.unexpected)} readings naked unexpectedly (${Object.entries(s.naks.byReason).map(([k, v]) => `${k} ${v}`).join(', ')})`)
  if (s.naks.unexpected > 0 && readings.naked.unexpected === 0) reasons.push(`${n(s.naks.unexpected)} naks for frames not in flight`)
  if (readings.dropped > 0) reasons.push(`${n(readings.dropped)} readings dropped by full device queues`)
  if (readings.unacked > 0) reasons.push(`${n(readings.unacked)} readings unacked at the end (drain ${s.timing.drained ? 'finished' : `timed out after ${options.drainTimeoutMs} ms`})`)
  if (readings.failed > 0) reasons.push(`${n(readings.failed)} readings refused by the SDK`)
  if (s.errors.total > 0) reasons.push(`${n(s.errors.total)} device errors (${Object.entries(s.errors.byCode).map(([k, v]) => `${k} ${v}`).join(', ')})`)
  if (commands.unexpected > 0) reasons.push(`${n(commands.unexpected)} commands answered wrongly (last: ${commands.lastByOutcome.unexpected ?? '?'})`)
  if (commands.errors > 0) reasons.push(`${n(commands.errors)} command calls failed (last: ${commands.lastByOutcome.error ?? '?'})`)
  // a command can only time out when its device lost the session; without chaos that is a failure
  const chaos = options.churnPercentPerMin > 0 || options.stormEveryMs !== undefined || options.commands.includes('reboot') || options.clockSkewMs >= options.commandTimeoutMs
  if (commands.timeout > 0 && !chaos) reasons.push(`${n(commands.timeout)} commands timed out with no chaos to explain it (last: ${commands.lastByOutcome.timeout ?? '?'})`)
  const twins = s.twins
  if (twins.errors > 0) reasons.push(`${n(twins.errors)} desired changes failed (last: ${twins.last.at(-1) ?? '?'})`)
  if (twins.unconverged > 0) reasons.push(`${n(twins.unconverged)} desired changes not converged at the end (drain ${s.timing.drained ? 'finished' : `timed out after ${options.drainTimeoutMs} ms`})`)
  if (twins.verify !== null && twins.verify.outOfSyncCount > 0) {
    reasons.push(`verify: ${n(twins.verify.outOfSyncCount)} of ${n(twins.verify.devices)} twins not in sync (first: ${twins.verify.outOfSync[0] ?? '?'})`)
  }
  if (verify !== null) {
    if (verify.error !== undefined) reasons.push(`verify: ${verify.error}`)
    if (verify.missing > 0) reasons.push(`verify: ${n(verify.missing)} acked readings not stored`)
    if (verify.duplicates > 0) reasons.push(`verify: ${n(verify.duplicates)} readings stored twice`)
    if (verify.extra > 0) reasons.push(`verify: ${n(verify.extra)} stored points never acked`)
  }
  return reasons
}
