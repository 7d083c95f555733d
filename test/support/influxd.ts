import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'

/** A private influxd (InfluxDB 1.x) for one test file, on loopback ports of its own. */
export interface Influxd {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string
  /** The HTTP port. */
  readonly port: number
  /** The temp dir holding config, meta, data and wal (removed by `destroy`). */
  readonly dir: string
  /** The running process's pid (a restart changes it), or undefined while stopped. */
  readonly pid: number | undefined
  /** Stops the process (SIGTERM, SIGKILL after 5 s), keeping ports and dirs for `restart` (removed by `destroy` or at exit). Idempotent. */
  stop(): Promise<void>
  /** Starts it again on the same ports and dirs (stopping it first if it runs) and waits for `/ping`. */
  restart(): Promise<void>
  /** Freezes the process (SIGSTOP): it keeps its ports but answers nothing, like a hung server. */
  pause(): void
  /** Thaws a paused process (SIGCONT). */
  resume(): void
  /** Stops the process and removes its temp dir; call it in `afterAll`. Idempotent. */
  destroy(): Promise<void>
  /** Runs InfluxQL (POST /query, `epoch=ms`) in `db` (none by default) and returns the parsed JSON. */
  query(q: string, db?: string): Promise<unknown>
}

/** Options of `startInfluxd`. */
export interface InfluxdOptions {
  /** `[http] max-body-size`, in bytes; default influxd's own (25,000,000). */
  readonly maxBodyBytes?: number
}

/** How long influxd may take to answer `GET /ping` with 204, in ms. */
const READY_DEADLINE_MS = 20_000
/** How long SIGTERM may take before SIGKILL, in ms. */
const STOP_GRACE_MS = 5_000
/** The last this many characters of influxd's output are kept for error messages. */
const OUTPUT_KEEP_CHARS = 16_384

const INSTALL_HINT = 'influxd (InfluxDB 1.x) is not on PATH: install it with `apt-get install influxdb` (Debian/Ubuntu)'

/**
 * The config for influxd 1.6.7 (keys from `influxd config`). Unknown keys are ignored by influxd, so
 * both spellings of the reporting switch are given: Debian's build reads `reporting-enabled`, upstream
 * `reporting-disabled`. Everything that would listen or write outside the temp dir is off.
 */
function configText(dir: string, httpPort: number, rpcPort: number, options: InfluxdOptions): string {
  const maxBody = options.maxBodyBytes === undefined ? '' : `\n  max-body-size = ${options.maxBodyBytes}`
  return `reporting-enabled = false
reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dir, 'meta')}"
  logging-enabled = false

[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  unix-socket-enabled = false${maxBody}

[logging]
  level = "warn"
  suppress-logo = true

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[ifql]
  enabled = false
`
}

/** Children still running in this process, killed on exit whatever way the test ends. */
const live = new Set<ChildProcess>()
const watchdogs = new Set<ChildProcess>()
const dirs = new Set<string>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL')
    for (const watchdog of watchdogs) watchdog.kill('SIGKILL')
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
}

/**
 * Starts influxd in a fresh temp dir with its own HTTP and RPC ports and waits until `/ping` answers
 * 204 (20 s deadline, influxd's output in the error). Throws with an install hint when influxd is
 * missing: a missing service fails the test, it never skips it.
 */
export async function startInfluxd(options: InfluxdOptions = {}): Promise<Influxd> {
  const probe = spawnSync('influxd', ['version'], { encoding: 'utf8' })
  if (probe.error !== undefined) throw new Error(INSTALL_HINT, { cause: probe.error })
  installExitHook()

  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-influxd-'))
  dirs.add(dir)
  const configFile = join(dir, 'influxd.conf')
  let httpPort = 0
  let child: ChildProcess | undefined
  let watchdog: ChildProcess | undefined
  let output = ''

  const launch = async (): Promise<void> => {
    output = ''
    // influxd reads INFLUXDB_* variables over its config file: keep the caller's out of it.
    const env: Record<string, string> = {}
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && !key.startsWith('INFLUXDB_')) env[key] = value
    }
    const proc = spawn('influxd', ['run', '-config', configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-OUTPUT_KEEP_CHARS)
    }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.once('exit', () => live.delete(proc))
    live.add(proc)
    child = proc
    // A vitest worker killed by a signal runs no exit hook: this watchdog kills influxd once we are
    // gone (only if that pid is still an influxd, so a reused pid is never hit) and removes the dir.
    stopWatchdog()
    const pid = proc.pid ?? 0
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
      `[ "$(cat /proc/${pid}/comm 2>/dev/null)" = influxd ] && kill -9 ${pid}; rm -rf '${dir}'`
    const dog = spawn('sh', ['-c', script], { stdio: 'ignore' })
    dog.once('exit', () => watchdogs.delete(dog))
    dog.unref()
    watchdogs.add(dog)
    watchdog = dog

    const deadline = Date.now() + READY_DEADLINE_MS
    let gone = false
    void exited.then(() => (gone = true))
    for (;;) {
      if (gone) throw new Error(`influxd exited before answering /ping (code ${proc.exitCode}); output:\n${output}`)
      try {
        const response = await fetch(`http://127.0.0.1:${httpPort}/ping`, { signal: AbortSignal.timeout(1000) })
        if (response.status === 204) return
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await stopChild()
        throw new Error(`influxd did not answer /ping with 204 within ${READY_DEADLINE_MS} ms; output:\n${output}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  const stopWatchdog = (): void => {
    watchdog?.kill('SIGKILL')
    watchdog = undefined
  }

  const stopChild = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.kill('SIGTERM')
    proc.kill('SIGCONT') // a paused influxd acts on SIGTERM only once it runs again
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS)
    await exited
    clearTimeout(timer)
  }

  // The free-port probe can race with another process: one retry on fresh ports.
  for (let attempt = 1; ; attempt++) {
    httpPort = await freePort()
    const rpcPort = await freePort()
    writeFileSync(configFile, configText(dir, httpPort, rpcPort, options))
    try {
      await launch()
      break
    } catch (err) {
      if (attempt >= 2 || !/address already in use/.test(output)) {
        dirs.delete(dir)
        stopWatchdog()
        rmSync(dir, { recursive: true, force: true })
        throw err
      }
    }
  }

  const url = `http://127.0.0.1:${httpPort}`
  let destroyed = false
  return {
    url,
    port: httpPort,
    dir,
    get pid() {
      return child?.exitCode === null ? child.pid : undefined
    },
    stop: stopChild,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async restart() {
      if (destroyed) throw new Error('influxd was destroyed')
      await stopChild()
      await launch()
    },
    async destroy() {
      if (destroyed) return
      destroyed = true
      await stopChild()
      stopWatchdog()
      dirs.delete(dir)
      rmSync(dir, { recursive: true, force: true })
    },
    async query(q, db) {
      const form = new URLSearchParams({ q, epoch: 'ms' })
      if (db !== undefined) form.set('db', db)
      const response = await fetch(`${url}/query`, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) })
      const text = await response.text()
      if (response.status !== 200) throw new Error(`influxd answered ${response.status} to ${q}: ${text}`)
      return JSON.parse(text) as unknown
    },
  }
}
