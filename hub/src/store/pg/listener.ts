import pg from 'pg'
import { HubError } from '../../errors.js'
import type { Logger } from '../../logger.js'
import { isUnavailable, storeError, type PostgresTuning } from './pool.js'

/** Work that runs on the listener's connection after each (re)connect, before the store counts as healthy. */
export type ConnectHook = () => Promise<void>

/**
 * One connection of its own that LISTENs for the stores' notifications, runs the reads that follow
 * them one at a time (so that their answers come in the order they were asked), and tells whether
 * PostgreSQL answers. When the connection is lost it reconnects with a backoff (100 ms doubling to
 * 1 s by default), listens again and runs every connect hook (the registry's full check, which
 * makes good any notification missed meanwhile) before it counts as healthy again. A ping every
 * second notices a server that stopped answering without closing the connection.
 */
export class PgListener {
  readonly #config: pg.ClientConfig
  readonly #tuning: PostgresTuning
  readonly #log: Pick<Logger, 'warn' | 'info'>
  readonly #channels = new Map<string, (payload: string) => void>()
  readonly #hooks: ConnectHook[] = []
  #client: pg.Client | undefined
  /** The connection whose connect hooks have all run. */
  #caughtUp: pg.Client | undefined
  #healthy = false
  #started = false
  #closed = false
  #backoffMs: number
  #reconnect: ReturnType<typeof setTimeout> | undefined
  #ping: ReturnType<typeof setInterval> | undefined
  /** The tail of the work queued on the connection. */
  #tail: Promise<unknown> = Promise.resolve()

  constructor(config: pg.ClientConfig, tuning: PostgresTuning, log: Pick<Logger, 'warn' | 'info'>) {
    this.#config = config
    this.#tuning = tuning
    this.#log = log
    this.#backoffMs = tuning.reconnectMinMs
  }

  /** Calls `handler` with the payload of each notification on `channel`; register before `start`. */
  listen(channel: string, handler: (payload: string) => void): void {
    this.#channels.set(channel, handler)
  }

  /** Runs `hook` after every connect, the first included; register before `start`. */
  onConnect(hook: ConnectHook): void {
    this.#hooks.push(hook)
  }

  /**
   * Connects for the first time and runs the connect hooks.
   * @throws HubError `HUB_ERR_STORE_UNAVAILABLE` when PostgreSQL cannot be reached.
   */
  async start(): Promise<void> {
    await this.#connect()
    this.#started = true
    this.#ping = setInterval(() => this.#checkAlive(), this.#tuning.pingIntervalMs)
    this.#ping.unref()
  }

  /** Whether PostgreSQL answered last time it was asked, and every connect hook has run since the last reconnect. */
  healthy(): boolean {
    return this.#healthy
  }

  /** A call elsewhere could not reach PostgreSQL: unhealthy until the listener's next ping answers, which is asked now. */
  unreachable(): void {
    if (!this.#healthy) return
    this.#healthy = false
    this.#checkAlive()
  }

  /**
   * Runs `work` on the listener's connection once the work queued before it has finished.
   * @throws HubError `HUB_ERR_STORE_UNAVAILABLE` while the connection is down.
   */
  run<T>(what: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
    const next = this.#tail.then(async () => {
      const client = this.#client
      if (client === undefined) throw new HubError('HUB_ERR_STORE_UNAVAILABLE', `${what}: PostgreSQL is unreachable (reconnecting)`)
      try {
        return await work(client)
      } catch (err) {
        if (err instanceof HubError) throw err
        if (isUnavailable(err)) this.#lost(client, err as Error)
        throw storeError(what, err)
      }
    })
    this.#tail = next.catch(() => undefined)
    return next
  }

  /** Ends the connection for good. */
  async close(): Promise<void> {
    this.#closed = true
    this.#healthy = false
    clearTimeout(this.#reconnect)
    clearInterval(this.#ping)
    const client = this.#client
    this.#client = undefined
    await this.#tail
    await client?.end().catch(() => undefined)
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config)
    client.on('error', (err) => this.#lost(client, err))
    client.on('end', () => this.#lost(client, new Error('Connection terminated')))
    client.on('notification', (message) => this.#channels.get(message.channel)?.(message.payload ?? ''))
    try {
      await client.connect()
      for (const channel of this.#channels.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
    } catch (err) {
      await client.end().catch(() => undefined)
      throw storeError('connecting the listener', err)
    }
    this.#client = client
    try {
      for (const hook of this.#hooks) await hook()
      if (this.#client !== client) throw new HubError('HUB_ERR_STORE_UNAVAILABLE', 'the listener lost its connection while catching up')
    } catch (err) {
      this.#lost(client, err as Error)
      throw err
    }
    this.#caughtUp = client
    this.#healthy = true
    this.#backoffMs = this.#tuning.reconnectMinMs
  }

  #checkAlive(): void {
    if (this.#client === undefined || this.#closed) return
    this.run('ping', (client) => client.query('SELECT 1')).then(
      () => {
        if (this.#caughtUp !== undefined && this.#caughtUp === this.#client && !this.#closed) this.#healthy = true
      },
      () => undefined, // run() has dropped the connection if it was lost; the reconnect follows
    )
  }

  /** The connection failed: unhealthy, and a new one after the backoff. Idempotent per connection. */
  #lost(client: pg.Client, err: Error): void {
    if (this.#client !== client) return
    this.#client = undefined
    this.#caughtUp = undefined
    this.#healthy = false
    client.end().catch(() => undefined)
    if (!this.#started) return // the first connect throws to `start`, which fails
    this.#log.warn({ err: err.message }, 'PostgreSQL listener connection lost; reconnecting')
    this.#schedule()
  }

  #schedule(): void {
    if (this.#closed || this.#reconnect !== undefined) return
    const waitMs = this.#backoffMs
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#tuning.reconnectMaxMs)
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined
      if (this.#closed || this.#client !== undefined) return
      this.#connect().then(
        () => this.#log.info('PostgreSQL listener reconnected'),
        () => this.#schedule(),
      )
    }, waitMs)
  }
}
