import { accessSync, constants, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js'
import { registerCommandRoutes } from './api-commands.js'
import { registerConsoleRoutes } from './api-console.js'
import { registerDeviceRoutes } from './api-devices.js'
import { registerTelemetryRoutes } from './api-telemetry.js'
import { influxProbe, registerHealthRoutes } from './api-health.js'
import { AuditLog } from './audit.js'
import { CommandBatches } from './command-batches.js'
import { commandView } from './command-record.js'
import { CommandStore } from './command-store.js'
import { Commands } from './commands.js'
import type { HubConfig } from './config.js'
import { DeviceAuthenticator, FailureLimiter, type FailureLimitOptions } from './device-auth.js'
import { mountDeviceEndpoint } from './device-endpoint.js'
import { HubError } from './errors.js'
import { Router } from './http.js'
import { startHubStats } from './hub-stats.js'
import type { Logger } from './logger.js'
import { DeadLetter } from './dead-letter.js'
import { InfluxShipper } from './influx-shipper.js'
import { InfluxWriter } from './influx-writer.js'
import { Ingest } from './ingest.js'
import { HubMetrics } from './metrics.js'
import { OperatorAuthenticator, readTokensFile, resolveAdminToken, tokenDigest } from './operator-auth.js'
import { Registry } from './registry.js'
import { startMqtt } from './mqtt.js'
import { CloseCode, Sessions, type DeviceSession } from './sessions.js'
import { Spool } from './spool.js'
import { openStore } from './store.js'
import { readAtStart } from './store-check.js'
import { loadNativeUws } from './uws.js'
import { GuardedApp, type UncaughtSink } from './uws-guard.js'

/** The hub's version, from its package.json (sent to devices in `hello`). */
export const HUB_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version

/** What `startHub` needs beyond the configuration; every field has a production default. */
export interface HubOptions {
  readonly config: HubConfig
  readonly log: Logger
  /** Clock in Unix ms; default `Date.now`. */
  readonly now?: () => number
  /** Failed device authentications allowed per address and window; default 20 per 60 s. */
  readonly authFailureLimit?: FailureLimitOptions
  /**
   * Failed operator authentications (REST 401s) allowed per address and window, counted apart from
   * devices' failures; beyond them the address is answered 429 until its window ends. Default 20 per 60 s.
   */
  readonly operatorAuthFailureLimit?: FailureLimitOptions
  /** How often the hub writes its figures to InfluxDB, in ms; default 10,000 (CONTRACT §5). */
  readonly hubStatsIntervalMs?: number
  /** MQTT publishes in flight (not yet handed to every subscriber's queue) above which acks wait (egress back-pressure); default 4,096. */
  readonly mqttHighWater?: number
  /** Readings a reachable InfluxDB may lag behind before commits (and so acks) wait; default 60,000. */
  readonly influxLagHighWater?: number
}

/** A running hub. */
export interface Hub {
  /** Bound ports, as logged in the `listening` line. */
  readonly ports: { readonly http: number; readonly mqtt?: number }
  /** The admin token in force (from the environment or the data dir). */
  readonly adminToken: string
  /**
   * Logs (with its stack) and counts an error that reached the process's last resort
   * (`uncaughtException`, `unhandledRejection`; see main.ts), as `where="process"`.
   */
  uncaught(err: unknown, origin: string): void
  /** Stops accepting, closes device sessions with 1001, flushes the store. */
  stop(): Promise<void>
}

/** The composition root: builds every piece, hands each what it needs, and listens. */
export async function startHub(options: HubOptions): Promise<Hub> {
  const { config, log } = options
  const now = options.now ?? Date.now
  const mqttHighWater = options.mqttHighWater ?? 4096
  const uws = loadNativeUws()
  const tlsOptions = config.tls === undefined ? undefined : checkTlsFiles(config.tls)

  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  const admin = resolveAdminToken(config.dataDir, config.adminToken)
  if (admin.generated) {
    log.warn({ generatedAdminToken: admin.token, path: admin.path }, 'generated an admin token; it is shown only this once')
  }
  const extraTokens = config.tokensFile === undefined ? [] : readTokensFile(config.tokensFile)
  const operators = new OperatorAuthenticator([
    { name: 'admin', scope: 'admin', sha256: tokenDigest(admin.token) },
    ...extraTokens,
  ])

  const store = openStore(config.dataDir)
  // Reads of stored state at start: a value that does not decode is damage, said as such (store-check.ts).
  const loaded = <T>(what: string, read: () => T): T => readAtStart(config.dataDir, what, read)
  const audit = loaded('the audit log', () => new AuditLog(store, now, (err, entry) => log.error({ err, entry }, 'audit entry not stored')))
  const registry = new Registry(store, now)
  // The broker, sessions and commands call each other back (a command arrives over MQTT, a device
  // coming online gets its queued commands, a result is published); each callback runs only
  // after all of them exist.
  const metrics = new HubMetrics({ sessions: () => sessions.size, spoolBytes: () => spool.bytes, pendingFrames: (): number => ingest.pendingFrames })
  const mqtt = await startMqtt(
    config,
    operators,
    { onCommand: (deviceId, payload, actor) => commands.fromMqtt(deviceId, payload, actor.name) },
    log,
    metrics.registry,
  )
  const status = (session: DeviceSession, online: boolean): void =>
    mqtt?.broker.publishStatus(session.deviceId, { device: session.deviceId, online, at: new Date(now()).toISOString() })
  const sessions = new Sessions({
    online: (session) => {
      status(session, true)
      commands.deliverQueued(session)
    },
    offline: (session) => {
      status(session, false)
      registry.touch(session.deviceId, now())
    },
  })
  const spool = loaded('the telemetry spool', () => new Spool(store))
  const commandStore = new CommandStore(store)
  const commands = loaded(
    'the command queue',
    () =>
      new Commands({
        store: commandStore,
        registry,
        sessions,
        audit,
        log,
        counters: metrics,
        publishResult: (record) => mqtt?.broker.publishCommandResult(record.device, record.id, commandView(record)),
        changed: (before, after) => batches.changed(before, after),
        now,
      }),
  )
  const batches = new CommandBatches({ commands, commandStore, registry, store, log, now })
  loaded('the sent commands', () => commands.start())
  const deadLetter = new DeadLetter({ dir: config.dataDir, counters: metrics, now, onError: (err) => log.error({ err }, 'dead letter write failed') })
  const writer =
    config.influxUrl === undefined ? undefined : new InfluxWriter({ url: config.influxUrl, database: config.influxDb, deadLetter })
  // InfluxDB may be away at start; the writer creates the database on its first successful write too.
  writer?.ensureDatabase().catch((err: unknown) => log.warn({ err }, 'InfluxDB is not reachable yet; the spool holds telemetry'))
  // Ingest and shipper call each other back (commit wakes shipping, a trim resumes held acks);
  // each callback runs only after both exist.
  const ingest = new Ingest({
    spool,
    log,
    counters: metrics,
    publish: (message) => mqtt?.broker.publishTelemetry(message.device, message),
    committed: (frames) => shipper.committed(frames),
    ratePerSec: config.deviceRatePerSec,
    spoolMaxBytes: config.spoolMaxBytes,
    shippingLags: () => shipper.lagging,
    egressBusy: () => (mqtt?.broker.pendingPublishes ?? 0) >= mqttHighWater,
    now,
  })
  const shipper = new InfluxShipper({
    spool,
    registry,
    writer,
    deadLetter,
    log,
    counters: metrics,
    relieved: () => ingest.resume(),
    ...(options.influxLagHighWater === undefined ? {} : { maxLagReadings: options.influxLagHighWater }),
    now,
  })
  shipper.start()
  const stopHubStats = writer === undefined ? () => undefined : startHubStats(metrics, writer, log, options.hubStatsIntervalMs, now)

  const app: TemplatedApp = tlsOptions === undefined ? uws.App() : uws.SSLApp(tlsOptions)
  const uncaught: UncaughtSink = (where, err, detail) => {
    metrics.uncaught(where)
    log.error({ err, where, ...detail }, 'uncaught error; the hub keeps serving')
  }
  // Every route and socket callback is registered through the guard; `app` itself only listens.
  const guarded = new GuardedApp(app, uncaught)
  mountDeviceEndpoint(guarded, {
    authenticator: new DeviceAuthenticator(registry, now),
    failures: new FailureLimiter(options.authFailureLimit, now),
    sessions,
    ingest,
    commands,
    metrics,
    log,
    version: HUB_VERSION,
    maxFrameBytes: config.maxFrameBytes,
    deviceRatePerSec: config.deviceRatePerSec,
    idleTimeoutSec: config.idleTimeoutSec,
    now,
  })
  const router = new Router(guarded, operators, new FailureLimiter(options.operatorAuthFailureLimit, now))
  registerDeviceRoutes(router, { registry, sessions, audit, deleted: (id) => commands.deviceDeleted(id) })
  registerCommandRoutes(router, { commands, batches, audit })
  registerTelemetryRoutes(router, { registry, influx: writer, log, now })
  registerHealthRoutes(
    router,
    [
      { name: 'store', check: () => (store.healthy() ? 'ok' : 'unreachable') },
      { name: 'broker', check: () => (mqtt === undefined ? 'off' : 'ok') },
      influxProbe(writer, log),
    ],
    metrics,
  )
  registerConsoleRoutes(app, log)
  router.fallback()

  const listenSocket = await listen(app, config.host, config.port)
  // A listen socket is a socket to uSockets; the typings only name the wider type.
  const http = uws.us_socket_local_port(listenSocket as unknown as us_socket)
  const ports = mqtt === undefined ? { http } : { http, mqtt: mqtt.port }
  // CONTRACT §1: tools read the bound ports from this line, so a quieter log level keeps it.
  const lifecycle = log.isLevelEnabled('info') || log.level === 'silent' ? log : log.child({}, { level: 'info' })
  lifecycle.info({ ...ports, host: config.host, tls: tlsOptions !== undefined, version: HUB_VERSION }, 'listening')

  let stopping: Promise<void> | undefined
  return {
    ports,
    adminToken: admin.token,
    uncaught: (err, origin) => uncaught('process', err, { origin }),
    stop() {
      stopping ??= (async () => {
        stopHubStats()
        commands.stop()
        uws.us_listen_socket_close(listenSocket)
        // CONTRACT §1: flush what is accepted before exiting; it is committed before the sessions
        // close, since a closing session drops its frames that wait for a commit.
        const drained = ingest.drain()
        sessions.disconnectAll(CloseCode.shuttingDown, 'hub shutting down')
        await drained
        await shipper.stop()
        await deadLetter.flush()
        await mqtt?.close()
        await store.close()
        log.info('stopped')
      })()
      return stopping
    },
  }
}

function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) {
        reject(new HubError('HUB_ERR_LISTEN', `cannot listen on ${host}:${port} (FLEETGATE_HOST, FLEETGATE_PORT): in use or not allowed`))
      } else resolve(socket)
    })
  })
}

function checkTlsFiles(tls: NonNullable<HubConfig['tls']>): { cert_file_name: string; key_file_name: string } {
  for (const [name, path] of [
    ['FLEETGATE_TLS_CERT', tls.certFile],
    ['FLEETGATE_TLS_KEY', tls.keyFile],
  ] as const) {
    try {
      accessSync(path, constants.R_OK)
    } catch (cause) {
      throw new HubError('HUB_ERR_CONFIG', `${name}=${path} is not a readable PEM file`, { cause })
    }
  }
  return { cert_file_name: tls.certFile, key_file_name: tls.keyFile }
}
