import { execFile } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './ports.js'
import { findExecutable, makeTempDir, startService, track, untrack, type Service } from './service.js'

/** Options of `startMosquitto`. */
export interface MosquittoOptions {
  /** User name -> password; when given, anonymous clients are refused. Default: anonymous allowed. */
  readonly users?: Readonly<Record<string, string>>
  /**
   * Keep sessions and retained messages across `restart()` (mosquitto saves its database on
   * SIGTERM and loads it on start). Default false.
   */
  readonly persistence?: boolean
  /**
   * `max_queued_messages`: QoS 1 and 2 messages queued per client beyond those in flight; past it
   * mosquitto drops them silently. 0 means no maximum. Default 100,000 (mosquitto's own is 1,000).
   */
  readonly maxQueuedMessages?: number
  /** `max_inflight_messages`: outgoing QoS 1 and 2 messages in flight per client; 0 means no maximum. Default 1,000 (mosquitto's own is 20). */
  readonly maxInflightMessages?: number
  /**
   * The text of an `acl_file` (mosquitto.conf(5): `user NAME`, then `topic read|write|readwrite
   * FILTER` lines); with it, what a user may publish and subscribe to is only what the file grants.
   * Default: no ACL.
   */
  readonly acl?: string
}

/** A mosquitto started for a test, on 127.0.0.1 and a port of its own. */
export interface Mosquitto {
  /** `mqtt://127.0.0.1:PORT`, without credentials. */
  readonly url: string
  readonly port: number
  /** The running mosquitto's pid (a new one after `restart()`), for its CPU figures; throws while it is stopped. */
  readonly pid: number
  /** `mqtt://user:pass@127.0.0.1:PORT` for one of `users` (percent-encoded). */
  urlFor(user: string): string
  /** The last 64 KiB of mosquitto's log. */
  output(): string
  /** Stops mosquitto and removes its dir. Idempotent. */
  stop(): Promise<void>
  /** Stops mosquitto (SIGTERM, so it saves its database) and starts it again on the same port. */
  restart(): Promise<void>
  /** Stops mosquitto without removing anything; `start()` brings it back on the same port. */
  pause(): Promise<void>
  /** Starts a paused mosquitto again. */
  start(): Promise<void>
}

const INSTALL_HINT = 'apt-get install mosquitto'
/**
 * Starts a real mosquitto in a temp dir: a listener on 127.0.0.1 and a free port, anonymous
 * access unless `users` are given (then a password file made with `mosquitto_passwd -b`). A
 * missing binary fails with how to install it; the test is never skipped. Stopped after the test
 * file at the latest, also when a test failed.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const binary = await findExecutable('mosquitto', INSTALL_HINT)
  const dir = await makeTempDir('mosquitto')
  const port = await freePort()
  const users = Object.entries(options.users ?? {})
  const lines = [
    // As root, mosquitto would switch to the `mosquitto` user, which cannot read this dir.
    `user ${userInfo().username}`,
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${users.length === 0 ? 'true' : 'false'}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    `max_queued_messages ${options.maxQueuedMessages ?? 100_000}`,
    `max_inflight_messages ${options.maxInflightMessages ?? 1000}`,
    // Small messages that a hub waits for (a cluster's node-to-node messages) go out at once.
    'set_tcp_nodelay true',
  ]
  if (options.persistence === true) lines.push('persistence true', `persistence_location ${dir}/`, 'autosave_interval 0')
  if (users.length > 0) {
    const passwd = await findExecutable('mosquitto_passwd', INSTALL_HINT)
    const file = join(dir, 'passwd')
    let first = true
    for (const [user, password] of users) {
      await promisify(execFile)(passwd, first ? ['-c', '-b', file, user, password] : ['-b', file, user, password])
      first = false
    }
    lines.push(`password_file ${file}`)
  }
  if (options.acl !== undefined) {
    const file = join(dir, 'acl')
    await writeFile(file, options.acl)
    lines.push(`acl_file ${file}`)
  }
  const config = join(dir, 'mosquitto.conf')
  await writeFile(config, lines.join('\n') + '\n')

  let service: Service | undefined
  const start = async (): Promise<void> => {
    if (service !== undefined && !service.exited) return
    service = await startService({ name: 'mosquitto', command: binary, args: ['-c', config], dir, ready: { port }, installHint: INSTALL_HINT })
  }
  const pause = async (): Promise<void> => {
    await service?.stop()
  }
  let stopped = false
  const broker: Mosquitto = {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    get pid() {
      if (service === undefined || service.exited) throw new Error('mosquitto is not running')
      return service.pid
    },
    urlFor(user) {
      const password = options.users?.[user]
      if (password === undefined) throw new Error(`startMosquitto: no user ${JSON.stringify(user)}`)
      return `mqtt://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`
    },
    output: () => service?.output() ?? '',
    async stop() {
      if (stopped) return
      stopped = true
      await pause()
      untrack(broker)
      await rm(dir, { recursive: true, force: true })
    },
    async restart() {
      await pause()
      await start()
    },
    pause,
    start,
  }
  track(broker)
  try {
    await start()
  } catch (err) {
    await broker.stop()
    throw err
  }
  return broker
}
