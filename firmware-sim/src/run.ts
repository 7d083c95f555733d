// runFleet: the whole run in-process (the CLI, the tests and the benchmark all go through it):
// the fleet file, the fleet, status and snapshots, --verify, the summary and --json.
import { appendFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { realClock, type Clock } from './clock.js'
import { causeText, SimError } from './errors.js'
import { Fleet } from './fleet.js'
import { resolveSimOptions, FLAGS, type SimOptionsInput } from './options.js'
import { loadFleet } from './provision.js'
import { takeSnapshot, type Snapshot } from './report.js'
import { Stats } from './stats.js'
import { buildSummary, type Summary } from './summary.js'
import { verifyTwins, type TwinVerifyResult } from './twin-driver.js'
import { apiPointSource, influxPointSource, verifyFleet, type VerifyResult } from './verify.js'

/** What a caller of runFleet may add to the options. */
export interface RunHooks {
  /** Ends the sending phase early; the run then drains, verifies and reports as usual. */
  readonly signal?: AbortSignal
  /** Time for the schedule, timers and tokens; default the real clock. */
  readonly clock?: Clock
  /** Called with a snapshot every `statusEveryMs` (default 10 s). */
  readonly onStatus?: (snapshot: Snapshot) => void
  /** Progress of the phases around the run (provisioning, draining, verifying). */
  readonly onLog?: (line: string) => void
  /** Called once the fleet is built, before it boots (the benchmark reads the process figures from here). */
  readonly onFleet?: (fleet: Fleet) => void
}

/** How often RSS is sampled for the summary's maximum, in ms. */
const RSS_SAMPLE_MS = 1000

/**
 * Runs a fleet against a hub and resolves with its Summary (`ok` false with `reasons` when a
 * check failed). Rejects with SimError for what stops a run from starting: a bad option
 * (SIM_ERR_OPTION), the fleet file (SIM_ERR_FLEET), provisioning (SIM_ERR_PROVISION), an
 * unreachable hub (SIM_ERR_HUB), a report file (SIM_ERR_IO).
 */
export async function runFleet(input: SimOptionsInput, hooks: RunHooks = {}): Promise<Summary> {
  const options = resolveSimOptions(input)
  const clock = hooks.clock ?? realClock
  const log = hooks.onLog ?? (() => undefined)
  await checkLocalAddresses(options.localAddresses)
  if (options.jsonl !== undefined) await touch(options.jsonl, FLAGS.jsonl)

  const startedAt = clock.now()
  const { devices: identities, created, madeFor } = await loadFleet(options)
  log(`fleet: ${identities.length} devices from ${options.fleet}${created > 0 ? ` (${created} created)` : ''}`)
  // keys belong to the hub that made them: another hub refuses them all (401)
  if (madeFor !== undefined && madeFor !== options.hub) log(`warning: ${options.fleet} holds devices created on ${madeFor}, not ${options.hub}`)

  const stats = new Stats()
  const fleet = new Fleet(options, identities, stats, clock)
  hooks.onFleet?.(fleet)
  const timers = new Set<unknown>()
  const every = (ms: number, fn: (now: number) => void): void => {
    const timer = clock.setTimeout(() => {
      timers.delete(timer)
      fn(clock.now())
      every(ms, fn)
    }, ms)
    timers.add(timer)
  }
  let rssMaxBytes = process.memoryUsage().rss
  every(RSS_SAMPLE_MS, () => (rssMaxBytes = Math.max(rssMaxBytes, process.memoryUsage().rss)))
  if (hooks.onStatus !== undefined) {
    const window = stats.openWindow(clock.now())
    const onStatus = hooks.onStatus
    every(options.statusEveryMs ?? 10_000, (now) => onStatus(takeSnapshot(stats, window, now, startedAt, options.devices, fleet.booted)))
  }
  let writeSnapshot: (() => Promise<void>) | undefined
  if (options.jsonl !== undefined) {
    const file = options.jsonl
    const window = stats.openWindow(clock.now())
    writeSnapshot = async () => {
      const snapshot = takeSnapshot(stats, window, clock.now(), startedAt, options.devices, fleet.booted)
      await appendFile(file, `${JSON.stringify(snapshot)}\n`).catch((error: unknown) => log(`--jsonl ${file}: ${String(error)}`))
    }
    const write = writeSnapshot
    every(options.snapshotEveryMs, () => void write())
  }

  const cpuBefore = process.cpuUsage()
  let timing
  try {
    timing = await fleet.run(hooks.signal)
  } finally {
    for (const timer of timers) clock.clearTimeout(timer)
  }
  const cpu = process.cpuUsage(cpuBefore)
  await writeSnapshot?.()
  log(`drain: ${timing.drained ? 'every reading settled' : `timed out after ${options.drainTimeoutMs} ms`} in ${timing.drainMs} ms`)

  const verifyStarted = clock.now()
  let verify: VerifyResult | undefined
  if (options.verify) {
    log(`verify: reading back ${fleet.devices.length} devices' points from ${options.influxUrl ?? 'the telemetry API'}`)
    verify = await verifyFleet(
      fleet.devices.flatMap((device) =>
        device.minTs === undefined || device.maxTs === undefined
          ? []
          : [{ id: device.id, metric: device.model.primaryMetric, ackedTs: device.ackedTs ?? [], fromTs: device.minTs, toTs: device.maxTs }],
      ),
      options.influxUrl === undefined ? apiPointSource(options.hub, options.token) : influxPointSource(options.influxUrl, options.influxDb),
      { timeoutMs: options.verifyTimeoutMs, clock },
    )
  }
  let twinVerify: TwinVerifyResult | undefined
  if (options.verify && options.twinRate > 0) {
    log(`verify: reading back the twins of ${fleet.twins.changed.size} changed devices`)
    twinVerify = await verifyTwins(fleet.twins.changed, options.hub, options.token, clock, options.verifyTimeoutMs)
  }
  const endedAt = clock.now()
  const summary = buildSummary({
    options,
    stats,
    timing,
    verify,
    twins: { unconverged: fleet.twins.unconverged, verify: twinVerify },
    verifyMs: endedAt - verifyStarted,
    startedAt,
    endedAt,
    booted: fleet.booted,
    everConnected: fleet.devices.filter((device) => device.everConnected).length,
    rssMaxBytes,
    cpu,
  })
  if (options.json !== undefined) await writeReport(options.json, `${JSON.stringify(summary, null, 2)}\n`, FLAGS.json)
  return summary
}

async function writeReport(file: string, text: string, flag: string): Promise<void> {
  try {
    await writeFile(file, text)
  } catch (cause) {
    throw new SimError('SIM_ERR_IO', `${flag} ${file}: cannot write (${causeText(cause)})`, { cause })
  }
}

async function touch(file: string, flag: string): Promise<void> {
  try {
    await appendFile(file, '')
  } catch (cause) {
    throw new SimError('SIM_ERR_IO', `${flag} ${file}: cannot write (${causeText(cause)})`, { cause })
  }
}

/** Fails with SIM_ERR_OPTION naming the first --local-address this machine cannot bind. */
async function checkLocalAddresses(addresses: readonly string[]): Promise<void> {
  for (const address of addresses) {
    await new Promise<void>((resolve, reject) => {
      const server = createServer()
      server.once('error', (cause) =>
        reject(new SimError('SIM_ERR_OPTION', `${FLAGS.localAddresses}: cannot bind ${address} on this machine (${(cause as NodeJS.ErrnoException).code ?? cause.message})`, { option: FLAGS.localAddresses, cause })),
      )
      server.listen({ host: address, port: 0 }, () => server.close(() => resolve()))
    })
  }
}

