import { accessSync, constants, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { realClock, type Clock } from '@fleetgate/device-sdk'
import { CloseCode } from '@fleetgate/device-sdk/wire'
import type { TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js'
import {
  influxProbe,
  registerCommandRoutes,
  registerConsoleRoutes,
  registerDeviceRoutes,
  registerEventRoutes,
  registerHealthRoutes,
  registerNodeRoutes,
  registerOpenApiRoute,
  registerTelemetryRoutes,
  registerTwinRoutes,
} from './api/index.js'
import { AuditLog } from './audit/index.js'
import { DeviceAuthenticator, FailureLimiter, OperatorAuthenticator, readTokensFile, resolveAdminToken, tokenDigest, type FailureLimitOptions } from './auth/index.js'
import { startCluster, type Cluster } from './cluster/index.js'
import { commandView, createCommands, type BatchesTuning, type CommandsTuning } from './commands/index.js'
import type { HubConfig } from './config.js'
import { localPresence, Registry, Sessions } from './devices/index.js'
import { EventBus, EventStreams, type EventStreamsTuning, type EventType, type HubEvents } from './events/index.js'
import { HubError } from './errors.js'
import type { Logger } from './logger.js'
import { HubMetrics, startHubStats } from './observability/index.js'
import { openLmdbSpool, openLmdbStores, openPostgresStores, readAtStartAsync, type HubStores } from './store/index.js'
import { createTelemetry, type HistoryTuning, type IngestTuning, type ShipperTuning } from './telemetry/index.js'
import {
  GuardedApp,
  loadNativeUws,
  mountDeviceEndpoint,
  Router,
  startMqtt,
  type DeviceEndpointTuning,
  type MqttListener,
  type RouteInfo,
  type UncaughtSink,
} from './transport/index.js'
import { Twins, type TwinsTuning, type TwinView } from './twins/index.js'

/** The hub's version, from its package.json (sent to devices in `hello`). */
export const HUB_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version

/** MQTT publishes in flight above which acks wait (egress back-pressure), by default. */
const MQTT_HIGH_WATER = 4096

/** What `startHub` needs beyond the configuration; every field has a production default. */
export interface HubOptions {
  readonly config: HubConfig
  readonly log: Logger
  /** Time and timers for every part of the hub; default the real clock. */
  readonly clock?: Clock
  /** Failed device authentications allowed per address and window; default 20 per 60 s. */
  readonly authFailureLimit?: Partial<FailureLimitOptions>
  /**
   * Failed operator authentications (REST 401s) allowed per address and window, counted apart from
   * devices' failures; beyond them the address is answered 429 until its window ends. Default 20 per 60 s.
   */
  readonly operatorAuthFailureLimit?: Partial<FailureLimitOptions>
  /** How often the hub writes its figures to InfluxDB, in ms; default 10,000 (docs/telemetry.md). */
  readonly hubStatsIntervalMs?: number
  /** MQTT publishes in flight (not yet handed to every subscriber's queue) above which acks wait (egress back-pressure); default 4,096. */
  readonly mqttHighWater?: number
  /** Readings a reachable InfluxDB may lag behind before commits (and so acks) wait; default 60,000. */
  readonly influxLagHighWater?: number
  /** Ingest's tuning knobs; defaults in INGEST_DEFAULTS. */
  readonly ingest?: Partial<IngestTuning>
  /** The InfluxDB shipper's tuning knobs (`influxLagHighWater` is its `maxLagReadings`); defaults in SHIPPER_DEFAULTS. */
  readonly shipper?: Partial<ShipperTuning>
  /** The command module's tuning knobs; defaults in COMMANDS_DEFAULTS. */
  readonly commands?: Partial<CommandsTuning>
  /** Fan-out's tuning knobs; defaults in BATCHES_DEFAULTS. */
  readonly batches?: Partial<BatchesTuning>
  /** The twin module's tuning knobs; defaults in TWINS_DEFAULTS. */
  readonly twins?: Partial<TwinsTuning>
  /** The device endpoint's tuning knobs (the bytes held for a device that does not read); defaults in DEVICE_ENDPOINT_DEFAULTS. */
  readonly deviceEndpoint?: Partial<DeviceEndpointTuning>
  /** The history's tuning knobs; defaults in HISTORY_DEFAULTS. */
  readonly history?: Partial<HistoryTuning>
  /** The live event streams' tuning knobs; defaults in EVENT_STREAMS_DEFAULTS. */
  readonly eventStreams?: Partial<EventStreamsTuning>
}

/** A running hub. */
export interface Hub {
  /** Bound ports, as logged in the `listening` line. */
  readonly ports: { readonly http: number; readonly mqtt?: number }
  /** The admin token in force (from the environment or the data dir). */
  readonly adminToken: string
  /** The REST routes served, as registered (the OpenAPI document must hold exactly these). */
  readonly routes: readonly RouteInfo[]
  /**
   * Logs (with its stack) and counts an error that reached the process's last resort
   * (`uncaughtException`, `unhandledRejection`; see main.ts), as `where="process"`.
   */
  uncaught(err: unknown, origin: string): void
  /** Stops accepting, closes device sessions with 1001, flushes the store. */
  stop(): Promise<void>
}

/**
 * The composition root: opens the stores, builds each concern and hands it what it needs, and
 * listens. Concerns build their own internals (telemetry: ingest and shipper; commands: commands
 * and fan-out); here they are only wired to each other.
 */
export async function startHub(options: HubOptions): Promise<Hub> {
  const { config, log } = options
  const clock = options.clock ?? realClock
  const mqttHighWater = options.mqttHighWater ?? MQTT_HIGH_WATER
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

  const stores = await openStores(config, log)
  const audit = new AuditLog(stores.audit, clock, log)
  const registry = new Registry(stores.registry, clock)
  // The broker starts last, once what it calls (commands) is ready; until then nothing is published.
  let mqtt: MqttListener | undefined
  // docs/rest.md: the live events carry what MQTT carries, published beside it; in cluster mode
  // (docs/cluster.md) every node's events reach every node's streams (see Cluster.relay).
  const events = new EventBus()
  const publishEvent = <T extends EventType>(type: T, device: string, payload: HubEvents[T]): void => {
    events.publish(type, device, payload)
    cluster?.relay(type, device, payload)
  }
  const status = (deviceId: string, online: boolean): void => {
    const message = { device: deviceId, online, at: new Date(clock.now()).toISOString() }
    mqtt?.broker.publishStatus(deviceId, message)
    publishEvent('status', deviceId, message)
  }
  // Every change of a twin goes out through here (docs/twins.md: the retained MQTT topic; docs/rest.md:
  // the `twin` event of the live event stream); a deleted device's retained twin is cleared.
  const publishTwin = (twin: TwinView): void => {
    mqtt?.broker.publishTwin(twin.device, twin)
    publishEvent('twin', twin.device, twin)
  }
  const clearTwin = (device: string): void => mqtt?.broker.publishTwin(device, undefined)
  // Sessions, the cluster, twins and commands call each other back (a device coming online is
  // claimed, gets its desired twin, then its queued commands; a command or a twin change goes to
  // the device's session); each callback runs only after all exist.
  const sessions = new Sessions({
    online: (peer) => {
      status(peer.deviceId, true)
      cluster?.opened(peer)
      // docs/twins.md: the desired twin comes right after hello, before any queued command
      twins
        .opened(peer)
        .catch((err: unknown) => log.error({ err, deviceId: peer.deviceId }, 'desired twin not sent'))
        .finally(() => commands.online(peer))
    },
    offline: (peer) => {
      status(peer.deviceId, false)
      registry.touch(peer.deviceId, clock.now())
      cluster?.closed(peer)
    },
    // Replaced by a newer session on another node: still online, there.
    replaced: (peer) => cluster?.closed(peer),
    current: (id) => registry.get(id),
  })
  // docs/protocol.md, docs/cluster.md: a session ends once its device's record no longer admits it, whichever node changed the record.
  registry.watch((id, record) => sessions.recordChanged(id, record))
  const metrics = new HubMetrics({
    sessions: () => sessions.size,
    spoolBytes: () => stores.spool.bytes,
    pendingFrames: (): number => telemetry.ingest.pendingFrames,
    historyBytes: (): number | undefined => telemetry.history?.bytes,
    eventStreams: (): number => streams.size,
  })
  const streams: EventStreams = new EventStreams({ bus: events, clock, log, counters: metrics, ...(options.eventStreams === undefined ? {} : { tuning: options.eventStreams }) })
  const cluster: Cluster | undefined =
    stores.cluster === undefined || config.mqttUplink === undefined
      ? undefined
      : await startCluster({
          store: stores.cluster,
          nodeId: config.nodeId,
          version: HUB_VERSION,
          brokerUrl: config.mqttUplink,
          sessions,
          events,
          format: config.mqttFormat,
          log,
          counters: metrics,
          deliver: (peer) => void commands.deliverQueued(peer).catch((err: unknown) => log.error({ err, deviceId: peer.deviceId }, 'queued commands not delivered')),
          commandChanged: (record) => commands.changedElsewhere(record),
          sendFor: (record) => commands.sendFor(record),
          twinChanged: (peer) => void twins.opened(peer).catch((err: unknown) => log.error({ err, deviceId: peer.deviceId }, 'desired twin not sent')),
          sweep: async (here) => {
            await commands.sweep(here)
            await twins.sweep(here)
          },
          // docs/cluster.md: a dead node's devices read offline; the retained status says so too.
          released: (devices) => {
            for (const device of devices) status(device, false)
          },
        })
  // What commands and twins both work with: which devices exist, where they are connected, the audit.
  const concern = { registry, sessions, audit, log, clock, counters: metrics }
  const { commands, batches } = createCommands({
    ...concern,
    store: stores.commands,
    batchStore: stores.batches,
    sharedStore: stores.shared,
    ...(cluster === undefined ? {} : { routing: cluster.routing }),
    publishResult: (record) => mqtt?.broker.publishCommandResult(record.device, record.id, commandView(record)),
    // The event stream carries every change of a record, so that a console follows a command live; MQTT, its end (docs/mqtt.md).
    stored: (record) => publishEvent('command', record.device, commandView(record)),
    ...(options.commands === undefined ? {} : { commands: options.commands }),
    ...(options.batches === undefined ? {} : { batches: options.batches }),
  })
  const twins = new Twins({
    ...concern,
    store: stores.twins,
    changed: publishTwin,
    removed: clearTwin,
    ...(cluster === undefined ? {} : { elsewhere: (device: string) => cluster.twinChanged(device) }),
    ...(options.twins === undefined ? {} : { tuning: options.twins }),
  })
  // Reads of stored state at start: a value that does not decode is damage, said as such (store-check.ts).
  await readAtStartAsync(config.dataDir, 'the command queue', () => commands.start())
  const shipperTuning = { ...options.shipper, ...(options.influxLagHighWater === undefined ? {} : { maxLagReadings: options.influxLagHighWater }) }
  const telemetry = createTelemetry({
    spool: stores.spool,
    history:
      config.history === undefined
        ? undefined
        : { store: stores.history, ...config.history, ...(options.history === undefined ? {} : { tuning: options.history }) },
    registry,
    influx: config.influxUrl === undefined ? undefined : { url: config.influxUrl, database: config.influxDb },
    dataDir: config.dataDir,
    log,
    clock,
    counters: metrics,
    ratePerSec: config.deviceRatePerSec,
    spoolMaxBytes: config.spoolMaxBytes,
    publish: (message) => {
      mqtt?.broker.publishTelemetry(message.device, message)
      events.publish('telemetry', message.device, message)
    },
    egressBusy: () => (mqtt?.broker.pendingPublishes ?? 0) >= mqttHighWater,
    ...(options.ingest === undefined ? {} : { ingest: options.ingest }),
    shipper: shipperTuning,
  })
  telemetry.start()
  const writer = telemetry.writer
  const stopHubStats = writer === undefined ? () => undefined : startHubStats(metrics, writer, log, clock, options.hubStatsIntervalMs)
  const limits = config.mqttLimits
  mqtt = await startMqtt(
    {
      host: config.mqttHost,
      port: config.mqttPort,
      format: config.mqttFormat,
      uplink: config.mqttUplink,
      shareCommands: cluster !== undefined,
      limits: {
        maxConnectPacketBytes: limits.maxConnectPacketBytes,
        maxPacketBytes: limits.maxPacketBytes,
        maxUnauthenticated: limits.maxUnauthenticated,
        connectTimeoutMs: limits.connectTimeoutSec * 1000,
        maxBacklogBytes: limits.maxBacklogBytes,
        softBacklogBytes: limits.softBacklogBytes,
        softBacklogMs: limits.softBacklogSec * 1000,
      },
    },
    operators,
    { onCommand: (deviceId, payload, actor) => commands.fromMqtt(deviceId, payload, actor.name) },
    log,
    metrics.registry,
  )

  const app: TemplatedApp = tlsOptions === undefined ? uws.App() : uws.SSLApp(tlsOptions)
  const uncaught: UncaughtSink = (where, err, detail) => {
    metrics.uncaught(where)
    log.error({ err, where, ...detail }, 'uncaught error; the hub keeps serving')
  }
  // Every route and socket callback is registered through the guard; `app` itself only listens.
  const guarded = new GuardedApp(app, uncaught)
  mountDeviceEndpoint(guarded, {
    authenticator: new DeviceAuthenticator(registry, clock),
    failures: new FailureLimiter(options.authFailureLimit, clock),
    sessions,
    ingest: telemetry.ingest,
    commands,
    twins,
    metrics,
    log,
    version: HUB_VERSION,
    maxFrameBytes: config.maxFrameBytes,
    deviceRatePerSec: config.deviceRatePerSec,
    idleTimeoutSec: config.idleTimeoutSec,
    clock,
    ...(options.deviceEndpoint === undefined ? {} : { tuning: options.deviceEndpoint }),
  })
  // REST writes are refused (503 `not_ready`) while a storage engine does not answer (PostgreSQL restarting).
  const storesAnswer = (): boolean => stores.engines.every((engine) => engine.healthy())
  const router = new Router(guarded, operators, new FailureLimiter(options.operatorAuthFailureLimit, clock), storesAnswer)
  registerDeviceRoutes(router, {
    registry,
    presence: cluster?.presence ?? localPresence(sessions),
    audit,
    deleted: async (id) => {
      await Promise.all([commands.deviceDeleted(id), twins.deviceDeleted(id)])
    },
  })
  registerCommandRoutes(router, { commands, batches, audit })
  registerTwinRoutes(router, { twins })
  registerTelemetryRoutes(router, {
    registry,
    // docs/cluster.md: in cluster mode the telemetry API reads InfluxDB only (a node's history holds what that node received).
    query: stores.shared && telemetry.writer === undefined ? undefined : telemetry.query,
    unavailable: stores.shared
      ? 'in cluster mode the telemetry API reads InfluxDB, and FLEETGATE_INFLUX_URL is unset'
      : 'this hub keeps no telemetry: FLEETGATE_INFLUX_URL is unset and FLEETGATE_HISTORY=off',
    log,
    clock,
  })
  registerEventRoutes(router, streams)
  registerHealthRoutes(
    router,
    [
      ...stores.engines.map((engine) => ({ name: engine.name, check: () => (engine.healthy() ? 'ok' as const : 'unreachable' as const) })),
      // docs/cluster.md: in cluster mode, the shared broker the nodes talk through.
      { name: 'broker', check: () => (cluster !== undefined ? (cluster.busConnected ? 'ok' : 'unreachable') : mqtt === undefined ? 'off' : 'ok') },
      influxProbe(writer, log, clock),
    ],
    metrics,
  )
  registerNodeRoutes(router, { nodes: cluster === undefined ? undefined : () => cluster.nodes() })
  registerOpenApiRoute(router)
  registerConsoleRoutes(guarded, log)
  router.fallback()

  const listenSocket = await listen(app, config.host, config.port)
  // A listen socket is a socket to uSockets; the typings only name the wider type.
  const http = uws.us_socket_local_port(listenSocket as unknown as us_socket)
  const ports = mqtt?.port === undefined ? { http } : { http, mqtt: mqtt.port }
  // docs/configuration.md: tools read the bound ports from this line, so a quieter log level keeps it.
  const lifecycle = log.isLevelEnabled('info') || log.level === 'silent' ? log : log.child({}, { level: 'info' })
  lifecycle.info({ ...ports, host: config.host, tls: tlsOptions !== undefined, version: HUB_VERSION }, 'listening')

  let stopping: Promise<void> | undefined
  return {
    ports,
    adminToken: admin.token,
    routes: router.routes(),
    uncaught: (err, origin) => uncaught('process', err, { origin }),
    stop() {
      stopping ??= (async () => {
        // docs/rest.md: event streams end cleanly, before the listener closes.
        streams.closeAll()
        stopHubStats()
        commands.stop()
        uws.us_listen_socket_close(listenSocket)
        // docs/configuration.md: flush what is accepted before exiting; the commit starts before the sessions
        // close, since a closing session drops its frames that wait for a commit.
        const flushed = telemetry.stop()
        sessions.disconnectAll(CloseCode.shuttingDown, 'hub shutting down')
        await flushed
        await cluster?.stop()
        await mqtt?.close()
        await stores.close()
        log.info('stopped')
      })()
      return stopping
    },
  }
}

/**
 * The stores: with `FLEETGATE_POSTGRES_URL`, the shared ones in PostgreSQL (cluster mode,
 * docs/cluster.md) beside this node's lmdb spool; else everything in the data dir's lmdb.
 */
async function openStores(config: HubConfig, log: Logger): Promise<HubStores> {
  if (config.postgresUrl === undefined) return openLmdbStores(config.dataDir)
  const stores = await openPostgresStores({ url: config.postgresUrl, nodeId: config.nodeId, log }, () => openLmdbSpool(config.dataDir))
  log.info({ nodeId: config.nodeId }, 'cluster mode: shared stores in PostgreSQL')
  return stores
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
