// The cluster soak of issue 14's acceptance: three hub processes behind HAProxy on one PostgreSQL,
// one Mosquitto (password file and ACL) and one influxd; `fleetgate-sim` (the CLI, as an operator
// runs it) with 5,000 devices, churn, commands and desired twin changes through the balancer; one
// node killed with SIGKILL in the middle and started again on its data dir; then `--verify`.
//
//   npm run build && npx tsx test/bench/cluster-soak.ts [--devices 5000] [--duration 10m]
//     [--rate 0.5] [--out soak.json]
//
// Prints the simulator's summary and what the kill did, and exits with the simulator's status
// (0: every reading acked once and stored once, every desired change converged).
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Summary } from '@fleetgate/firmware-sim'
import { NodeProcesses, startClusterServices } from '../support/cluster.js'
import { startHaproxy } from '../support/haproxy.js'
import { ADMIN_TOKEN, api, tempDir, type HubProcess } from '../support/hub.js'
import { startInfluxd } from '../support/influxd.js'
import { stopAll } from '../support/service.js'
import { eventually } from '../support/telemetry.js'
import { hubMetrics } from './context.js'
import { sleep } from './measure.js'
import { adopt, REPO_ROOT } from './procs.js'

const SIM_CLI = join(REPO_ROOT, 'firmware-sim', 'dist', 'cli.js')
const DB = 'fleetgate_soak'

function parseArgs(argv: readonly string[]): { devices: number; durationSec: number; rate: number; out: string | undefined } {
  const args = { devices: 5000, durationSec: 600, rate: 0.5, out: undefined as string | undefined }
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1] ?? ''
    switch (argv[i]) {
      case '--devices':
        args.devices = Number(value)
        break
      case '--duration':
        args.durationSec = /^\d+m$/.test(value) ? Number(value.slice(0, -1)) * 60 : Number(value.replace(/s$/, ''))
        break
      case '--rate':
        args.rate = Number(value)
        break
      case '--out':
        args.out = resolve(value)
        break
      default:
        throw new Error(`unknown argument ${argv[i] ?? ''}; usage: cluster-soak.ts [--devices N] [--duration 10m] [--rate R] [--out FILE]`)
    }
    i++
  }
  if (!Number.isInteger(args.devices) || args.devices < 1 || !(args.durationSec >= 60) || !(args.rate > 0)) throw new Error('--devices >= 1, --duration >= 60s, --rate > 0')
  return args
}

const args = parseArgs(process.argv.slice(2))
const t0 = performance.now()
const log = (message: string): void => console.log(`[soak ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}`)

const dirs: Array<{ cleanup(): void }> = []
let nodes: NodeProcesses | undefined
let exitCode = 3
try {
  const [services, influx] = await Promise.all([startClusterServices({ persistence: true }), startInfluxd()])
  const database = await services.pg.createDatabase()
  const dbName = database.slice(database.lastIndexOf('/') + 1)
  nodes = new NodeProcesses(services, database, { FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB, FLEETGATE_IDLE_SEC: '120' }, { raiseOpenFiles: true })
  const cluster = nodes
  const start = async (id: string): Promise<HubProcess> => {
    const hub = await cluster.start(id)
    adopt(hub.child)
    return hub
  }
  const hubOf = (id: string): HubProcess => cluster.hub(id)
  for (const id of ['n1', 'n2', 'n3']) await start(id)
  const balancer = await startHaproxy(['n1', 'n2', 'n3'].map((id) => ({ name: id, port: hubOf(id).ports.http })))
  log(`3 nodes behind HAProxy at ${balancer.url}; PostgreSQL, Mosquitto (ACL) and influxd started`)

  const work = tempDir('fleetgate-soak-sim-')
  dirs.push(work)
  const summaryFile = args.out ?? join(work.path, 'summary.json')
  const simArgs = [
    SIM_CLI,
    '--hub', balancer.url,
    '--token', ADMIN_TOKEN,
    '--devices', String(args.devices),
    '--provision',
    '--fleet', join(work.path, 'fleet.json'),
    '--rate', `${args.rate}/s`,
    '--duration', `${args.durationSec}s`,
    '--connect-rate', '500/s',
    '--churn', '2%/min',
    '--command-rate', '10/s',
    '--command-timeout', '5s',
    '--twin-rate', '5/s',
    '--verify',
    '--verify-timeout', '180s',
    '--drain-timeout', '60s',
    '--json', summaryFile,
    '--status-every', '30s',
  ]
  log(`fleetgate-sim ${simArgs.slice(1).join(' ')}`)
  const sim = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', process.execPath, ...simArgs], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] })
  adopt(sim)
  const simExit = new Promise<number | null>((resolveExit) => sim.once('exit', (code) => resolveExit(code)))

  // The kill, in the middle of the sending phase.
  await sleep((args.durationSec * 1000) / 2)
  const before = (await api(hubOf('n1').base, 'GET', '/api/v1/nodes')).body as { items: Array<{ id: string; sessions: number }> }
  const victimSessions = before.items.find((n) => n.id === 'n2')?.sessions ?? 0
  const victimMetrics = await hubMetrics(hubOf('n2').base).catch(() => new Map<string, number>())
  const killedAt = Date.now()
  await cluster.kill('n2')
  log(`killed n2 (SIGKILL) holding ${victimSessions} sessions, ${victimMetrics.get('fleetgate_spool_bytes') ?? '?'} spool bytes not yet shipped`)
  const dead = await eventually(() => api(hubOf('n1').base, 'GET', '/api/v1/nodes'), (reply) => reply.body.items.find((n: { id: string; alive: boolean }) => n.id === 'n2')?.alive === false, 20_000)
  const deadAfterSec = (Date.now() - killedAt) / 1000
  log(`n2 read dead on n1 after ${deadAfterSec.toFixed(1)} s: ${JSON.stringify(dead.body.items.map((n: { id: string; sessions: number; alive: boolean }) => [n.id, n.sessions, n.alive]))}`)
  await sleep(30_000)
  const during = (await api(hubOf('n1').base, 'GET', '/api/v1/nodes')).body as { items: Array<{ id: string; sessions: number; alive: boolean }> }
  log(`30 s after the kill: ${JSON.stringify(during.items.map((n) => [n.id, n.sessions, n.alive]))}`)
  await start('n2')
  await eventually(() => balancer.servers(), (servers) => servers['n2'] === 'UP', 20_000)
  log(`n2 started again on its data dir, ${((Date.now() - killedAt) / 1000).toFixed(0)} s after the kill; HAProxy has it up`)
  const spoolAfter = await eventually(
    async () => (await hubMetrics(hubOf('n2').base)).get('fleetgate_spool_bytes') ?? -1,
    (bytes) => bytes === 0,
    120_000,
  ).catch(() => -1)
  log(`n2's spool after the restart: ${spoolAfter === 0 ? 'shipped (0 bytes left)' : 'NOT emptied within 2 min'}`)

  exitCode = (await simExit) ?? 4
  const sent = await services.pg.query<{ n: string }>("SELECT count(*) AS n FROM fleetgate.commands WHERE status = 'sent'", [], dbName)
  const byStatus = await services.pg.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM fleetgate.commands GROUP BY status ORDER BY status', [], dbName)
  log(`commands by status in PostgreSQL: ${byStatus.map((row) => `${row.status} ${row.n}`).join(', ')}; left sent: ${sent[0]?.n ?? '?'}`)
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as Summary
  const report = {
    command: `npx tsx test/bench/cluster-soak.ts --devices ${args.devices} --duration ${args.durationSec / 60}m --rate ${args.rate}`,
    simExit: exitCode,
    ok: summary.ok,
    reasons: summary.reasons,
    kill: { victimSessions, deadAfterSec, sessionsAfter30s: during.items, spoolShippedAfterRestart: spoolAfter === 0 },
    commandsLeftSent: Number(sent[0]?.n ?? -1),
  }
  log(`summary: ${JSON.stringify(report)}`)
  if (args.out !== undefined) writeFileSync(`${args.out}.soak.json`, JSON.stringify({ ...report, summary }, null, 2))
  await balancer.stop()
  for (const id of ['n1', 'n2', 'n3']) await cluster.kill(id, 'SIGTERM')
  await Promise.all([services.stop(), influx.destroy()])
} catch (err) {
  console.error(err)
} finally {
  await nodes?.cleanup()
  await stopAll()
  for (const dir of dirs) dir.cleanup()
}
process.exit(exitCode)
