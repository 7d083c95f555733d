// Child processes of the benchmark: load generators and peers (RPC over the IPC channel), and the
// safety nets that stop every one of them when the benchmark ends, fails or is interrupted.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { sourceAddresses, type DeviceCreds } from './load.js'

/** The repository root: children run from here so that `--import tsx` resolves. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** The worker entry point (test/bench/worker.ts). */
const WORKER_MAIN = fileURLToPath(new URL('./worker.ts', import.meta.url))

const children = new Set<ChildProcess>()
const exitTasks = new Set<() => void>()
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  for (const task of exitTasks) task()
})

/** Runs `task` (synchronous: a temp dir to remove) when this process exits, unless the returned function cancels it. */
export function atExit(task: () => void): () => void {
  exitTasks.add(task)
  return () => exitTasks.delete(task)
}

/** What `spawnNode` may add to a plain `node script`. */
export interface SpawnNodeOptions {
  /** Node flags, e.g. `--cpu-prof`. TypeScript entry points get `--import tsx` first. */
  readonly execArgv?: readonly string[]
  readonly env?: NodeJS.ProcessEnv
  /** Opens an IPC channel (fd 3). */
  readonly ipc?: boolean
  /** Pipes stdout instead of inheriting it. */
  readonly pipeStdout?: boolean
}

/**
 * Spawns `node script` with the open-files soft limit raised to the hard limit first (sessions
 * are file descriptors: a shell's `ulimit -n` is the only portable way to raise it before exec,
 * and exec keeps the pid). The child is killed when this process exits, and a watchdog kills it
 * should this process die by a signal that runs no exit hook.
 */
export function spawnNode(script: string, args: readonly string[], options: SpawnNodeOptions = {}): ChildProcess {
  const flags = [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), ...(options.execArgv ?? [])]
  const child = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', process.execPath, ...flags, script, ...args], {
    cwd: REPO_ROOT,
    env: options.env ?? process.env,
    stdio: ['ignore', options.pipeStdout === true ? 'pipe' : 'inherit', 'inherit', ...(options.ipc === true ? (['ipc'] as const) : [])],
  })
  adopt(child)
  return child
}

/** Kills `child` when this process exits; a watchdog shell kills it if this process dies by SIGKILL. */
export function adopt(child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => children.delete(child))
  const pid = child.pid
  if (pid === undefined) return
  // Only a pid that still runs node is killed, so a reused pid is never hit.
  const script = `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${pid} 2>/dev/null; do sleep 1; done; ` +
    `[ "$(cat /proc/${pid}/comm 2>/dev/null)" = node ] && kill -9 ${pid}`
  spawn('sh', ['-c', script], { stdio: 'ignore', detached: true }).unref()
}

/** Kills every child still running (SIGKILL): the last resort of an interrupted run. */
export function killAllChildren(): void {
  for (const child of children) child.kill('SIGKILL')
}

/** Waits for `child` to exit; SIGTERM first, SIGKILL after `graceMs`. Resolves the exit code. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  const code = await exited
  clearTimeout(timer)
  return code
}

interface Reply {
  readonly id: number
  readonly ok: boolean
  readonly value?: unknown
  readonly error?: string
}

/** A load-generator process: `call` runs one of its handlers (worker.ts) and resolves its answer. */
export class Worker {
  readonly name: string
  readonly child: ChildProcess
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>()
  #nextId = 1
  #exitError: Error | undefined

  private constructor(name: string, child: ChildProcess) {
    this.name = name
    this.child = child
    child.on('message', (message: Reply) => {
      const waiter = this.#pending.get(message.id)
      if (waiter === undefined) return
      this.#pending.delete(message.id)
      if (message.ok) waiter.resolve(message.value)
      else waiter.reject(new Error(`${this.name}: ${message.error ?? 'failed'}`))
    })
    child.once('exit', (code, signal) => {
      this.#exitError = new Error(`${this.name} exited (${signal ?? `code ${String(code)}`})`)
      for (const waiter of this.#pending.values()) waiter.reject(this.#exitError)
      this.#pending.clear()
    })
  }

  /**
   * Starts a worker process (test/bench/worker.ts, or another script that calls `serve`) and
   * waits until it serves.
   */
  static async start(name: string, options: { script?: string; env?: NodeJS.ProcessEnv; execArgv?: readonly string[] } = {}): Promise<Worker> {
    const child = spawnNode(options.script ?? WORKER_MAIN, [name], {
      ipc: true,
      env: { ...process.env, ...options.env, BENCH_WORKER: name },
      ...(options.execArgv === undefined ? {} : { execArgv: options.execArgv }),
    })
    const worker = new Worker(name, child)
    await worker.call('ping', undefined, 30_000)
    return worker
  }

  /** The worker's pid. */
  get pid(): number {
    return this.child.pid ?? -1
  }

  /** Runs `method` in the worker; rejects with its error, or after `timeoutMs` (default 10 min). */
  call<T>(method: string, params?: unknown, timeoutMs = 600_000): Promise<T> {
    if (this.#exitError !== undefined) return Promise.reject(this.#exitError)
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name}: ${method} did not answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value as T)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      })
      this.child.send({ id, method, params })
    })
  }

  /** Ends the worker: it exits when its IPC channel closes; SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    if (this.child.connected) this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
}

/** Handlers a worker serves, by method name. */
export type Handlers = Readonly<Record<string, (params: unknown) => unknown>>

/** Child side: answers `call`s with `handlers`, and exits when the parent goes away. */
export function serve(handlers: Handlers): void {
  process.on('disconnect', () => process.exit(0))
  process.on('message', (message: { id: number; method: string; params: unknown }) => {
    const reply = (answer: Omit<Reply, 'id'>): void => {
      if (process.connected) process.send?.({ id: message.id, ...answer })
    }
    const handler = message.method === 'ping' ? () => 'pong' : handlers[message.method]
    if (handler === undefined) {
      reply({ ok: false, error: `no handler ${message.method}` })
      return
    }
    Promise.resolve()
      .then(() => handler(message.params))
      .then(
        (value) => reply({ ok: true, value }),
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      )
  })
}

/** Devices one fleet worker holds, from one loopback source address (about 28k ephemeral ports each). */
export const DEVICES_PER_WORKER = 10_000

/**
 * Connects `devices` (sending nothing yet) in fleets of DEVICES_PER_WORKER, one per worker
 * process, each from its own source address: `first` takes the first share, and a worker is
 * started for each further one (added to `started`, for the caller to stop). Resolves with the
 * workers in device order once every device has its hello.
 */
export async function connectFleets(url: string, devices: readonly DeviceCreds[], first: Worker, started: Worker[]): Promise<Worker[]> {
  const shares = Math.ceil(devices.length / DEVICES_PER_WORKER)
  const addresses = sourceAddresses(shares)
  const fleets = [first]
  while (fleets.length < shares) {
    const worker = await Worker.start(`fleet-${fleets.length}`)
    started.push(worker)
    fleets.push(worker)
  }
  await Promise.all(
    fleets.map((worker, i) =>
      worker.call('fleet.connect', {
        url,
        devices: devices.slice(i * DEVICES_PER_WORKER, (i + 1) * DEVICES_PER_WORKER),
        readingsPerFrame: 1,
        t0: Date.now(),
        localAddresses: [addresses[i] as string],
        concurrency: 500,
      }),
    ),
  )
  return fleets
}
