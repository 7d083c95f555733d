// Fleetgate's benchmark suite: `npm run bench` (quick) or `npm run bench -- --full` (the issue's
// sizes), `--only ingest-single,connections` (the cluster scenarios run only when named: `--only
// cluster-commands,cluster-connect,cluster-ingest`), `--out FILE` (default bench-results/latest.json),
// `--previous FILE` (default docs/bench/published.json, the figures the README shows; `none` for no
// previous column), `--profile` (each hub runs with --cpu-prof; hot spots are printed).
//
// How to read the results: every scenario runs Fleetgate and then its peer back to back, on this
// machine, against the same influxd and with load generators that are separate processes, so a
// ratio compares two things measured minutes apart under the same conditions. Rates are taken over
// a steady window after a warm-up; "zero loss" means that after the load stopped, InfluxDB (counted
// by query) and the MQTT subscriber held exactly the readings that were acked, no fewer. A ratio is
// Fleetgate / peer, so above 1 is better for rates and below 1 is better for memory. The load
// generators, the subscriber, influxd and the hub share the machine's cores: the "load generator
// CPU" and "hub CPU" rows say who was busy, and a hub well under one core while the generator is
// near one points at the generator, not the hub. Each peer is measured PEER_RUNS times and shows
// its median with the spread; a spread wider than PEER_SPREAD_LIMIT is flagged as too wide to
// compare. "hub CPU µs/reading" is the hub's CPU core-seconds over readings acked in the same window
// (the peer's: the reference hub per reading, Mosquitto per message delivered): unlike a rate, it
// carries to a machine with other cores. Figures from a busy machine are noise; the JSON keeps the
// machine, the versions and every raw count so a run can be checked and compared.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { startInfluxd, type Influxd } from '../support/influxd.js'
import { stopAll } from '../support/service.js'
import { clusterCommands, clusterConnect, clusterIngest } from './cluster.js'
import { commands } from './commands.js'
import { connections } from './connections.js'
import { history } from './history.js'
import type { BenchContext } from './context.js'
import { ingestBatch } from './ingest-batch.js'
import { ingestSingle } from './ingest-single.js'
import { sleep } from './measure.js'
import { overload } from './overload.js'
import { twins } from './twins.js'
import { killAllChildren, REPO_ROOT } from './procs.js'
import { machine, markdownTable, readPrevious, textTable, versions, type Figure, type PreviousRun } from './report.js'

/** The scenarios; those `optIn` run only when `--only` names them (cluster mode needs PostgreSQL, Mosquitto and HAProxy, and minutes more). */
const SCENARIOS: ReadonlyArray<{ readonly name: string; readonly run: (ctx: BenchContext) => Promise<void>; readonly optIn?: true }> = [
  { name: 'ingest-single', run: ingestSingle },
  { name: 'ingest-batch', run: ingestBatch },
  { name: 'connections', run: connections },
  { name: 'commands', run: commands },
  { name: 'twins', run: twins },
  { name: 'overload', run: overload },
  { name: 'history', run: history },
  { name: 'cluster-commands', run: clusterCommands, optIn: true },
  { name: 'cluster-connect', run: clusterConnect, optIn: true },
  { name: 'cluster-ingest', run: clusterIngest, optIn: true },
]

interface Args {
  readonly full: boolean
  readonly profile: boolean
  readonly only: readonly string[]
  readonly out: string
  /** The JSON of the run to print beside this one; undefined: no previous column. */
  readonly previous: string | undefined
}

/** The figures the README shows, committed: the default previous run. */
const PUBLISHED = join(REPO_ROOT, 'docs', 'bench', 'published.json')

function parseArgs(argv: readonly string[]): Args {
  let full = false
  let profile = false
  let only = SCENARIOS.filter((s) => s.optIn !== true).map((s) => s.name)
  let out = join(REPO_ROOT, 'bench-results', 'latest.json')
  let previous: string | undefined = existsSync(PUBLISHED) ? PUBLISHED : undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const value = (): string => {
      const next = argv[++i]
      if (next === undefined) throw new Error(`${arg} needs a value`)
      return next
    }
    if (arg === '--full') full = true
    else if (arg === '--profile') profile = true
    else if (arg === '--only') only = value().split(',').map((s) => s.trim()).filter((s) => s !== '')
    else if (arg.startsWith('--only=')) only = arg.slice(7).split(',').map((s) => s.trim()).filter((s) => s !== '')
    else if (arg === '--out') out = resolve(value())
    else if (arg.startsWith('--out=')) out = resolve(arg.slice(6))
    else if (arg === '--previous' || arg.startsWith('--previous=')) {
      const file = arg === '--previous' ? value() : arg.slice(11)
      previous = file === 'none' ? undefined : resolve(file)
    } else throw new Error(`unknown argument ${arg}; usage: run.ts [--full] [--only ${SCENARIOS.map((s) => s.name).join(',')}] [--out FILE] [--previous FILE|none] [--profile]`)
  }
  const unknown = only.filter((name) => !SCENARIOS.some((s) => s.name === name))
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`)
  return { full, profile, only, out, previous }
}

const args = parseArgs(process.argv.slice(2))
// Read before the run: `--previous bench-results/latest.json` compares with the last run, which this one overwrites.
const previous: PreviousRun | undefined = args.previous === undefined ? undefined : readPrevious(args.previous)
const started = new Date()
const startedAt = performance.now()
const log = (message: string): void => console.log(`[${((performance.now() - startedAt) / 1000).toFixed(0).padStart(4)} s] ${message}`)

let influx: Influxd | undefined
let interrupted = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true
    console.error(`\n${signal}: stopping every hub, load generator, influxd and mosquitto`)
    killAllChildren()
    void Promise.race([Promise.allSettled([stopAll(), influx?.destroy()]), sleep(5000)]).then(() => process.exit(130))
  })
}

const facts = { machine: machine(), versions: versions() }
log(`Fleetgate bench, ${args.full ? 'full' : 'quick'} run of ${args.only.join(', ')}`)
log(`${facts.machine.cpuModel} x ${facts.machine.cpus}, ${(facts.machine.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, load ${facts.machine.loadAverageAtStart.join(' ')}`)
log(previous === undefined ? 'no previous figures' : `previous figures: ${previous.label}`)

const figures: Figure[] = []
const scenarios: Record<string, { durationSec: number; details: Record<string, unknown>; error?: string }> = {}
const shared = new Map<string, number>()
let failed = 0
try {
  influx = await startInfluxd()
  for (const scenario of SCENARIOS.filter((s) => args.only.includes(s.name))) {
    if (interrupted) break
    const details: Record<string, unknown> = {}
    const began = performance.now()
    log(`== ${scenario.name}`)
    const ctx: BenchContext = {
      full: args.full,
      profile: args.profile,
      outDir: dirname(args.out),
      influx,
      shared,
      figure: (f) => figures.push(f),
      detail: (key, value) => (details[key] = value),
      log: (message) => log(`${scenario.name}: ${message}`),
    }
    try {
      await scenario.run(ctx)
      scenarios[scenario.name] = { durationSec: Math.round((performance.now() - began) / 1000), details }
    } catch (err) {
      failed++
      const message = err instanceof Error ? err.message : String(err)
      log(`${scenario.name} FAILED: ${err instanceof Error ? (err.stack ?? message) : message}`)
      figures.push({ scenario: scenario.name, figure: 'scenario failed', unit: '', fleetgate: undefined, verdict: 'missed', note: message.split('\n')[0] ?? message })
      scenarios[scenario.name] = { durationSec: Math.round((performance.now() - began) / 1000), details, error: message }
    }
    log(`${scenario.name} took ${scenarios[scenario.name]?.durationSec ?? 0} s`)
  }
} finally {
  await influx?.destroy()
  await stopAll()
}

const durationSec = Math.round((performance.now() - startedAt) / 1000)
const verdicts = { met: figures.filter((f) => f.verdict === 'met').length, missed: figures.filter((f) => f.verdict === 'missed').length }
const document = {
  tool: 'fleetgate-bench',
  mode: args.full ? 'full' : 'quick',
  startedAt: started.toISOString(),
  durationSec,
  argv: process.argv.slice(2),
  previous: previous?.label,
  machine: { ...facts.machine, loadAverageAtEnd: loadavg().map((l) => Number(l.toFixed(2))) },
  versions: facts.versions,
  verdicts,
  figures,
  scenarios,
}
mkdirSync(dirname(args.out), { recursive: true })
writeFileSync(args.out, `${JSON.stringify(document, null, 2)}\n`)
const markdown = [
  `Fleetgate bench, ${document.mode} run, ${document.startedAt}, ${durationSec} s.`,
  `Machine: ${facts.machine.cpuModel} x ${facts.machine.cpus}, ${(facts.machine.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB, ${facts.machine.os} ${facts.machine.release}, ` +
    `load average ${facts.machine.loadAverageAtStart.join(' ')} at start, ${document.machine.loadAverageAtEnd.join(' ')} at the end.`,
  `Versions: node ${facts.versions['node'] ?? ''}, hub ${facts.versions['fleetgateHub'] ?? ''}, ${facts.versions['influxd'] ?? ''}, ${facts.versions['mosquitto'] ?? ''}, uWebSockets.js ${facts.versions['uWebSocketsJs'] ?? ''}.`,
  `Previous: ${previous?.label ?? 'none'}.`,
  '',
  markdownTable(figures, previous),
  '',
].join('\n')
writeFileSync(args.out.replace(/\.json$/, '') + '.md', markdown)

console.log(`\n${textTable(figures, previous)}\n`)
console.log(`targets met: ${verdicts.met}, missed: ${verdicts.missed}; ${failed} scenario(s) failed; ${durationSec} s in all`)
console.log(`JSON: ${args.out}`)
process.exit(failed > 0 ? 1 : 0)
