import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { accessSync, chownSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort } from './ports.js'
import { track, untrack } from './service.js'

/** A private PostgreSQL 15 server for one test file, on a loopback port and a socket dir of its own. */
export interface Postgres {
  /** `postgres://fleetgate@127.0.0.1:PORT/postgres`: the maintenance database, for the harness itself. */
  readonly url: string
  readonly port: number
  /** The temp dir holding the cluster (`data/`) and the unix socket; removed by `stop`. */
  readonly dir: string
  /** The postmaster's pid while it runs, else undefined. */
  readonly pid: number | undefined
  /** The URL of database `name` on this server. */
  urlOf(name: string): string
  /**
   * Creates a new, empty database (or a copy of `template`, which no session may be connected to)
   * and returns its URL. Names are `t1`, `t2`, ... unless `name` is given.
   */
  createDatabase(options?: { readonly name?: string; readonly template?: string }): Promise<string>
  /** Runs one statement in database `database` (default `postgres`) and returns its rows. */
  query<Row extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<Row[]>
  /** Fast shutdown (every session is cut), keeping the data for `start`. Idempotent. */
  halt(): Promise<void>
  /** Immediate shutdown (SIGQUIT: no checkpoint, as a crash), keeping the data: `start` recovers from the WAL. */
  crash(): Promise<void>
  /** Starts a halted server again on the same port and data. */
  start(): Promise<void>
  /** Halts the server and removes its temp dir. Idempotent; also run after the test file. */
  stop(): Promise<void>
}

/** Where Debian's `postgresql` package puts PostgreSQL 15. */
const BIN = '/usr/lib/postgresql/15/bin'
const INSTALL_HINT =
  'PostgreSQL 15 is not installed (no /usr/lib/postgresql/15/bin/postgres): install it with ' +
  '`apt-get install -y --no-install-recommends postgresql` (scripts/ensure-test-services.sh does, as root)'
/** The superuser initdb creates; tests connect as it without a password (trust, loopback and socket only). */
const SUPERUSER = 'fleetgate'
/** How long the server may take to accept a query, in ms. */
const READY_DEADLINE_MS = 30_000
/** How long a fast shutdown may take before SIGQUIT (immediate shutdown), in ms. */
const HALT_GRACE_MS = 10_000
/** The last this many characters of the server's output are kept for error messages. */
const OUTPUT_KEEP_CHARS = 16_384

/**
 * Server settings for tests: durable commits stay on (a commit survives a kill of the server, as in
 * production), but nothing is forced to the disk, which only matters when the machine itself fails.
 */
const SETTINGS = [
  'fsync=off',
  'full_page_writes=off',
  'max_connections=200',
  'shared_buffers=32MB',
  'log_min_messages=warning',
  'log_min_error_statement=panic',
]

/** PostgreSQL refuses to run as root: as root the harness runs it as Debian's `postgres` account. */
const asRoot = userInfo().uid === 0

function command(binary: string, args: readonly string[]): [string, string[]] {
  const path = join(BIN, binary)
  return asRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, [...args]]
}

/** Postmasters still running in this process, shut down immediately on exit whatever way the test ends. */
const running = new Map<number, string>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends down with it.
    for (const [pid, dir] of running) {
      try {
        process.kill(pid, 'SIGQUIT')
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

/**
 * Starts a real PostgreSQL 15 (Debian's `postgresql`) in a fresh temp dir: `initdb` with a trusted
 * superuser `fleetgate`, then `postgres` listening on 127.0.0.1 and a free port, with its unix
 * socket in the temp dir. As root both run as the `postgres` account through `runuser`, in a dir
 * that account owns. A missing binary fails with the install command; the test never skips. The
 * server is stopped and its dir removed after the test file at the latest, also when a test failed.
 */
export async function startPostgres(): Promise<Postgres> {
  try {
    accessSync(join(BIN, 'postgres'), constants.X_OK)
  } catch (cause) {
    throw new Error(INSTALL_HINT, { cause })
  }
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-pg-'))
  const data = join(dir, 'data')
  if (asRoot) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' })
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' })
    if (ids.status !== 0 || gids.status !== 0) {
      rmSync(dir, { recursive: true, force: true })
      throw new Error(`there is no \`postgres\` account to run PostgreSQL as (${INSTALL_HINT})`)
    }
    chownSync(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()))
  }
  const [initCommand, initArgs] = command('initdb', ['-D', data, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'])
  const init = spawnSync(initCommand, initArgs, { encoding: 'utf8' })
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`initdb failed (${init.status ?? init.signal ?? 'not run'}): ${init.error?.message ?? ''}\n${init.stdout}${init.stderr}`)
  }

  let port = 0
  let child: ChildProcess | undefined
  let postmaster: number | undefined
  let output = ''
  let counter = 0
  let watchdog: ChildProcess | undefined
  const urlOf = (name: string): string => `postgres://${SUPERUSER}@127.0.0.1:${port}/${name}`

  const query = async <Row extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<Row[]> => {
    const client = new pg.Client({ connectionString: urlOf(database), connectionTimeoutMillis: 5000 })
    await client.connect()
    try {
      return (await client.query<Row>(sql, params)).rows
    } finally {
      await client.end()
    }
  }

  const launch = async (): Promise<void> => {
    output = ''
    const [serverCommand, serverArgs] = command('postgres', ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', ...SETTINGS.flatMap((s) => ['-c', s])])
    const proc = spawn(serverCommand, serverArgs, { stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-OUTPUT_KEEP_CHARS)
    }
    proc.stdout?.on('data', keep)
    proc.stderr?.on('data', keep)
    let gone = false
    proc.once('exit', () => (gone = true))
    child = proc
    const deadline = Date.now() + READY_DEADLINE_MS
    for (;;) {
      if (gone) throw new Error(`postgres exited before it was ready (code ${proc.exitCode}); output:\n${output}`)
      // runuser's child is the postmaster; its pid is the first line of postmaster.pid.
      if (postmaster === undefined) {
        try {
          postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
          running.set(postmaster, dir)
          watch(postmaster)
        } catch {
          // not written yet
        }
      }
      try {
        await query('SELECT 1')
        if (postmaster !== undefined) return
      } catch {
        // starting up
      }
      if (Date.now() > deadline) {
        await halt()
        throw new Error(`postgres did not accept a query within ${READY_DEADLINE_MS} ms; output:\n${output}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /**
   * A vitest worker killed by a signal runs no exit hook: this watchdog shuts the postmaster down
   * once we are gone (only if that pid is still a postgres, so a reused pid is never hit) and
   * removes the dir.
   */
  const watch = (pid: number): void => {
    watchdog?.kill('SIGKILL')
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
      `[ "$(cat /proc/${pid}/comm 2>/dev/null)" = postgres ] && kill -QUIT ${pid}; sleep 2; rm -rf '${dir}'`
    const dog = spawn('sh', ['-c', script], { stdio: 'ignore' })
    dog.unref()
    watchdog = dog
  }

  /** SIGINT is PostgreSQL's fast shutdown, SIGQUIT its immediate one; runuser exits once the postmaster has. */
  const halt = async (first: NodeJS.Signals = 'SIGINT'): Promise<void> => {
    const proc = child
    const pid = postmaster
    child = undefined
    postmaster = undefined
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    const signal = (name: NodeJS.Signals): void => {
      try {
        if (pid !== undefined) process.kill(pid, name)
        else proc.kill(name)
      } catch {
        // already gone
      }
    }
    signal(first)
    const timer = setTimeout(() => signal('SIGQUIT'), HALT_GRACE_MS)
    await exited
    clearTimeout(timer)
    if (pid !== undefined) running.delete(pid)
  }

  let stopped = false
  const server: Postgres = {
    get url() {
      return urlOf('postgres')
    },
    get port() {
      return port
    },
    dir,
    get pid() {
      return postmaster
    },
    urlOf,
    async createDatabase(options = {}) {
      const name = options.name ?? `t${++counter}`
      const template = options.template === undefined ? '' : ` TEMPLATE ${pg.escapeIdentifier(options.template)}`
      await query(`CREATE DATABASE ${pg.escapeIdentifier(name)}${template}`)
      return urlOf(name)
    },
    query,
    halt: () => halt(),
    crash: () => halt('SIGQUIT'),
    async start() {
      if (stopped) throw new Error('postgres was stopped')
      if (child === undefined) await launch()
    },
    async stop() {
      if (stopped) return
      stopped = true
      untrack(server)
      await halt()
      watchdog?.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
  track(server)
  // The free-port probe can race with another process: one retry on a fresh port.
  for (let attempt = 1; ; attempt++) {
    port = await freePort()
    try {
      await launch()
      return server
    } catch (err) {
      if (attempt < 2 && /could not bind|already in use/i.test(output)) continue
      await server.stop()
      throw err
    }
  }
}
