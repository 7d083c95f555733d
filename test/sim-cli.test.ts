// The `fleetgate-sim` command (firmware-sim/dist/cli.js) as a child process: its exit codes and
// their reasons, the summary on stdout and in --json, and the fleet file reused by a second run.
import { spawn } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assertBuilt } from './support/build.js'
import { ADMIN_TOKEN, startHubProcess, startTestHub, stopHubProcess, tempDir, testEnv, type TestHub } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { UNREACHABLE_URL } from './support/ports.js'

const CLI = fileURLToPath(new URL('../firmware-sim/dist/cli.js', import.meta.url))


interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const children = new Set<ReturnType<typeof spawn>>()

/** Runs the CLI to its end (killed after `timeoutMs`). */
function sim(args: readonly string[], timeoutMs = 60_000): Promise<Ran> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

describe('the fleetgate-sim command', () => {
  let influx: Influxd
  let hub: TestHub
  let offHub: TestHub
  let historyHub: TestHub
  const dir = tempDir('fleetgate-sim-cli-')

  beforeAll(async () => {
    assertBuilt('firmware-sim')
    influx = await startInfluxd()
    hub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: 'sim_cli' })
    offHub = await startTestHub({ FLEETGATE_HISTORY: 'off' })
    historyHub = await startTestHub()
  })
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL')
    await hub?.stop()
    await offHub?.stop()
    await historyHub?.stop()
    await influx?.destroy()
    dir.cleanup()
  })

  it('passes (exit 0) with --provision and --verify, then a second run reuses the fleet file without creating devices', async () => {
    const fleet = join(dir.path, 'fleet.json')
    const json = join(dir.path, 'first.json')
    const common = ['--hub', hub.base, '--token', ADMIN_TOKEN, '--devices', '20', '--fleet', fleet, '--rate', '20/s', '--readings', '20', '--verify', '--seed', '99']
    const first = await sim([...common, '--provision', '--bad-frames', '5%', '--json', json, '--status-every', '500ms'])
    expect(first.code, first.stderr + first.stdout).toBe(0)
    expect(first.stdout).toMatch(/^fleetgate-sim PASS {2}seed 99, 20 devices, mixed, /)
    expect(first.stdout).toMatch(/\n {2}verify \(api\) +devices 20\/20 match {2}acked 400 {2}stored 400 {2}missing 0 {2}duplicates 0 {2}extra 0 /)
    expect(first.stdout).not.toContain('FAIL')
    // not a terminal: log lines every --status-every, and the phases
    expect(first.stderr).toContain('fleetgate-sim: fleet: 20 devices from')
    expect(first.stderr).toContain('(20 created)')
    expect(first.stderr).toMatch(/\| 20\/20 connected \|/)
    const summary = JSON.parse(readFileSync(json, 'utf8'))
    expect(summary).toMatchObject({ ok: true, reasons: [], seed: 99, readings: { acked: 400, naked: { unexpected: 0 }, dropped: 0, unacked: 0 } })
    expect(summary.readings.sent).toBe(400 + summary.badFrames.sent)
    expect(summary.readings.naked.expected).toBe(summary.badFrames.sent)
    expect(statSync(fleet).mode & 0o777).toBe(0o600)
    const keys = readFileSync(fleet, 'utf8')

    const second = await sim([...common, '--quiet'])
    expect(second.code, second.stderr + second.stdout).toBe(0)
    expect(second.stderr).toBe('')
    expect(second.stdout).toContain('acked 400 ')
    expect(readFileSync(fleet, 'utf8')).toBe(keys)
    const listed = await hub.api('GET', '/api/v1/devices?limit=1000')
    expect(listed.body.items.filter((d: { id: string }) => d.id.startsWith('sim-'))).toHaveLength(20)
  }, 90_000)

  it('runs a soak until SIGINT, then drains and reports (exit 0), with a --jsonl snapshot per interval', async () => {
    const jsonl = join(dir.path, 'soak.jsonl')
    const child = spawn(process.execPath, [CLI, '--hub', hub.base, '--token', ADMIN_TOKEN, '--provision', '--fleet', join(dir.path, 'soak.json'), '--prefix', 'soak-', '--devices', '5', '--rate', '20', '--jsonl', jsonl, '--snapshot-every', '300ms', '--quiet'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    await new Promise((resolve) => setTimeout(resolve, 2500))
    child.kill('SIGINT')
    expect(await exited, stderr).toBe(0)
    children.delete(child)
    expect(stderr).toBe('fleetgate-sim: SIGINT: stopping, draining and reporting (again to quit at once)\n')
    expect(stdout).toMatch(/^fleetgate-sim PASS .* \(stopped early\)\n/)
    const snapshots = readFileSync(jsonl, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { readings: { sent: number; acked: number; unsettled: number }; target: number })
    expect(snapshots.length).toBeGreaterThanOrEqual(4)
    const sent = snapshots.map((s) => s.readings.sent)
    expect([...sent].sort((a, b) => a - b)).toStrictEqual(sent)
    // the last snapshot is taken after the drain
    expect(snapshots.at(-1)?.readings.unsettled).toBe(0)
    expect(snapshots.at(-1)?.readings.acked).toBe(snapshots.at(-1)?.readings.sent)
  }, 30_000)

  it('passes --verify against the embedded history, with no InfluxDB (docs/telemetry.md)', async () => {
    const run = await sim(['--hub', historyHub.base, '--token', ADMIN_TOKEN, '--provision', '--fleet', join(dir.path, 'history.json'), '--devices', '5', '--readings', '30', '--rate', '30', '--verify', '--quiet'])
    expect(run.code, run.stderr + run.stdout).toBe(0)
    expect(run.stdout).toMatch(/\n {2}verify \(api\) +devices 5\/5 match {2}acked 150 {2}stored 150 {2}missing 0 {2}duplicates 0 {2}extra 0 /)
  }, 60_000)

  it('exits 1 when --verify cannot read the points back (no InfluxDB, history off), with the reason', async () => {
    const run = await sim(['--hub', offHub.base, '--token', ADMIN_TOKEN, '--provision', '--fleet', join(dir.path, 'off.json'), '--devices', '3', '--readings', '5', '--rate', '10', '--verify', '--quiet'])
    expect(run.code, run.stderr).toBe(1)
    expect(run.stdout).toMatch(/^fleetgate-sim FAIL /)
    expect(run.stdout).toContain('  FAIL: verify: GET /api/v1/devices/sim-000001/telemetry answered 503 not_ready: this hub keeps no telemetry: FLEETGATE_INFLUX_URL is unset and FLEETGATE_HISTORY=off\n')
    expect(run.stdout).toContain('  FAIL: verify: 15 acked readings not stored\n')
    expect(run.stdout).toMatch(/\n {4}acked +15 /)
  }, 60_000)

  it('exits 1 with the unacked count when the hub stops acknowledging (spool full, InfluxDB unreachable)', async () => {
    // a hub process, killed at the end: stopping a hub whose InfluxDB is away waits for the shipper
    const data = tempDir('fleetgate-sim-stuck-')
    const stuck = await startHubProcess(
      testEnv(data.path, { FLEETGATE_INFLUX_URL: UNREACHABLE_URL, FLEETGATE_SPOOL_MAX_BYTES: String(1024 * 1024) }),
    )
    try {
      const run = await sim([
        ...['--hub', stuck.base, '--token', ADMIN_TOKEN, '--provision', '--fleet', join(dir.path, 'stuck.json'), '--devices', '10', '--model', 'tracker'],
        ...['--rate', '1000', '--batch', '500', '--duration', '3s', '--drain-timeout', '1s', '--json', join(dir.path, 'stuck-summary.json'), '--quiet'],
      ])
      expect(run.code, run.stderr).toBe(1)
      const summary = JSON.parse(readFileSync(join(dir.path, 'stuck-summary.json'), 'utf8'))
      expect(summary.readings.unacked).toBeGreaterThan(0)
      expect(summary.readings.sent).toBe(summary.readings.acked + summary.readings.unacked)
      expect(summary.reasons).toStrictEqual([`${summary.readings.unacked.toLocaleString('en-US')} readings unacked at the end (drain timed out after 1000 ms)`])
      expect(run.stdout).toContain(`  FAIL: ${summary.reasons[0]}\n`)
    } finally {
      await stopHubProcess(stuck)
      data.cleanup()
    }
  }, 60_000)

  it('exits 3 when provisioning is refused (a wrong token) or the hub is unreachable, naming why', async () => {
    const wrong = await sim(['--hub', hub.base, '--token', 'not-a-token-at-all', '--provision', '--fleet', join(dir.path, 'wrong.json')])
    expect(wrong).toStrictEqual({
      code: 3,
      stdout: '',
      stderr: 'fleetgate-sim: POST /api/v1/devices/bulk answered 401 unauthorized: a valid operator token is required (Authorization: Bearer <token>) (--provision needs an admin token)\n',
    })
    const none = await sim(['--hub', hub.base, '--fleet', join(dir.path, 'absent.json')])
    expect(none.code).toBe(3)
    expect(none.stderr).toBe(`fleetgate-sim: there is no fleet file ${join(dir.path, 'absent.json')}: run with --provision (and an admin --token) to create them\n`)
    const down = await sim(['--hub', UNREACHABLE_URL, '--token', ADMIN_TOKEN, '--provision', '--fleet', join(dir.path, 'down.json')])
    expect(down.code).toBe(3)
    expect(down.stderr).toMatch(/^fleetgate-sim: cannot reach the hub at http:\/\/127\.0\.0\.1:\d+ \(POST \/api\/v1\/devices\/bulk\): connect ECONNREFUSED/)
  }, 60_000)

  it('exits 2 on a bad option naming the flag, and 0 for --help', async () => {
    expect(await sim(['--hub', hub.base, '--rate', 'fast'])).toStrictEqual({
      code: 2,
      stdout: '',
      stderr: 'fleetgate-sim: --rate: expected a rate such as 200/s, 0.5/s or 600/min, got "fast"\nfleetgate-sim --help shows every flag\n',
    })
    const local = await sim(['--hub', hub.base, '--local-address', '192.0.2.7', '--fleet', join(dir.path, 'x.json')])
    expect(local.code).toBe(2)
    expect(local.stderr).toBe('fleetgate-sim: --local-address: cannot bind 192.0.2.7 on this machine (EADDRNOTAVAIL)\n')
    const help = await sim(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^fleetgate-sim: a fleet of simulated devices/)
    expect(help.stdout).toContain('  --churn P%/min ')
  }, 30_000)
})
