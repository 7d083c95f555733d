import { spawn, type ChildProcess } from 'node:child_process'
import { access, constants, mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/** Anything a test starts and must stop: a child process, a broker, a temp dir. */
export interface Stoppable {
  stop(): Promise<void>
}

/** How to start a child process and know that it serves. */
export interface ServiceOptions {
  /** Shown in every error, e.g. `mosquitto`. */
  readonly name: string
  /** The executable (a path, or a name looked up in PATH). */
  readonly command: string
  readonly args: readonly string[]
  /** Working directory; when absent a temp dir is made, and removed by `stop()`. */
  readonly dir?: string
  /** Environment; default: this process's. */
  readonly env?: NodeJS.ProcessEnv
  /** Ready when this TCP port accepts a connection, or when this probe resolves true. */
  readonly ready: { readonly port: number; readonly host?: string } | (() => Promise<boolean>)
  /** Deadline for `ready`, in milliseconds; default 15000. */
  readonly readyTimeoutMs?: number
  /** Wait after SIGTERM before SIGKILL, in milliseconds; default 5000. */
  readonly stopTimeoutMs?: number
  /** How to install the executable, for the error when it is missing, e.g. `apt-get install mosquitto`. */
  readonly installHint?: string
}

/** A running child process. */
export interface Service extends Stoppable {
  readonly name: string
  readonly dir: string
  readonly pid: number
  /** Whether the process has exited. */
  readonly exited: boolean
  /** The last 64 KiB of its stdout and stderr. */
  output(): string
  /** SIGTERM, then SIGKILL after `stopTimeoutMs`; resolves once it has exited. Idempotent. */
  stop(): Promise<void>
}

const OUTPUT_LIMIT = 65_536
const live = new Set<Stoppable>()
const children = new Set<ChildProcess>()

/** Stops `resource` after the test file, whatever happened, unless it was stopped before. */
export function track<T extends Stoppable>(resource: T): T {
  live.add(resource)
  return resource
}

/** Removes `resource` from the safety net (after it was stopped). */
export function untrack(resource: Stoppable): void {
  live.delete(resource)
}

/** Stops everything still tracked; errors are collected and thrown together at the end. */
export async function stopAll(): Promise<void> {
  const errors: unknown[] = []
  for (const resource of [...live].reverse()) {
    try {
      await resource.stop()
    } catch (err) {
      errors.push(err)
    }
    live.delete(resource)
  }
  if (errors.length > 0) throw new AggregateError(errors, 'stopping test services failed')
}

// Safety nets: after the test file (also when it failed), and, should the worker die before
// that, a synchronous SIGKILL so no child outlives the test run. vitest is imported only under
// vitest, so that plain scripts (the benchmarks, run by tsx) can start services too; they call
// `stopAll` themselves.
if (process.env['VITEST'] !== undefined) {
  const { afterAll } = await import('vitest')
  afterAll(stopAll)
}
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

/** A new empty directory under the OS temp dir. */
export async function makeTempDir(prefix: string): Promise<string> {
  return await mkdtemp(join(tmpdir(), `${prefix}-`))
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether a TCP connection to host:port succeeds within 1 s. */
export async function tcpAnswers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const socket = connect({ host, port })
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/**
 * Spawns `command` in a temp (or given) dir, waits until it is ready, and returns it. Fails with
 * the process's output when it exits early or misses the deadline, and with `installHint` when
 * the executable is missing. The service is tracked: it is stopped after the test file at the
 * latest, also when a test failed.
 */
export async function startService(options: ServiceOptions): Promise<Service> {
  const ownsDir = options.dir === undefined
  const dir = options.dir ?? (await makeTempDir(options.name))
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000
  const stopTimeoutMs = options.stopTimeoutMs ?? 5_000
  let output = ''
  const capture = (chunk: Buffer): void => {
    output += chunk.toString('utf8')
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT)
  }

  const child = spawn(options.command, options.args, { cwd: dir, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.stdout.on('data', capture)
  child.stderr.on('data', capture)
  let exitInfo: string | undefined
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal === null ? `exit code ${String(code)}` : `signal ${signal}`
      children.delete(child)
      resolve()
    })
  })
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))

  let stopping: Promise<void> | undefined
  const service: Service = {
    name: options.name,
    dir,
    get pid() {
      return child.pid ?? -1
    },
    get exited() {
      return exitInfo !== undefined
    },
    output: () => output,
    stop() {
      stopping ??= (async () => {
        if (exitInfo === undefined && child.pid !== undefined) {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
          await exited
          clearTimeout(timer)
        }
        untrack(service)
        if (ownsDir) await rm(dir, { recursive: true, force: true })
      })()
      return stopping
    },
  }
  track(service)

  const fail = async (why: string, cause?: Error): Promise<never> => {
    await service.stop()
    const shown = output.trim() === '' ? '(no output)' : output.trim()
    throw new Error(`${options.name} ${why}\n--- ${options.name} output ---\n${shown}`, cause === undefined ? undefined : { cause })
  }

  const probe = typeof options.ready === 'function' ? options.ready : (ready => () => tcpAnswers(ready.port, ready.host))(options.ready)
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    const early = await Promise.race([spawnError, exited.then(() => undefined), sleep(0).then(() => null)])
    if (early instanceof Error) {
      children.delete(child)
      const missing = 'code' in early && early.code === 'ENOENT'
      const hint = options.installHint === undefined ? '' : `; install it with \`${options.installHint}\``
      return await fail(missing ? `is not installed (${options.command} not found)${hint}` : `could not start: ${early.message}`, early)
    }
    if (early === undefined || exitInfo !== undefined) return await fail(`exited before it was ready (${exitInfo ?? 'unknown'})`)
    if (await probe()) return service
    if (Date.now() > deadline) return await fail(`was not ready within ${readyTimeoutMs} ms`)
    await sleep(50)
  }
}

/** Where Debian and Homebrew put servers, searched after PATH. */
const SEARCH = ['/usr/sbin', '/usr/local/sbin', '/usr/bin', '/usr/local/bin', '/opt/homebrew/sbin', '/opt/homebrew/bin']

/** The path of executable `name` (PATH, then the usual places); fails with `installHint` when there is none. */
export async function findExecutable(name: string, installHint: string): Promise<string> {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), ...SEARCH]
  for (const dir of dirs) {
    const candidate = join(dir, name)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here; try the next directory
    }
  }
  throw new Error(`${name} is not installed (looked in PATH and ${SEARCH.join(', ')}): install it with \`${installHint}\``)
}
