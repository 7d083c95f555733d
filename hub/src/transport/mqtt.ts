import { createServer, type Server } from 'node:net'
import {
  createBroker,
  CUT_REASONS,
  type Broker,
  type BrokerStats,
  type CommandSource,
  type ConnectionLimitsConfig,
  type Disconnection,
  type MqttFormat,
} from '@fleetgate/bridge'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Operator, OperatorAuthenticator } from '../auth/index.js'
import { HubError } from '../errors.js'
import type { Logger } from '../logger.js'

/** The share name under which the nodes of a cluster take commands from the shared broker. */
export const SHARED_COMMAND_GROUP = 'fleetgate-nodes'

/** Where the embedded broker listens, how it speaks, and the bounds of its connections (docs/configuration.md, docs/mqtt.md). */
export interface MqttListenerOptions {
  /** `FLEETGATE_MQTT_HOST`. */
  readonly host: string
  /** `FLEETGATE_MQTT_PORT`, 0 = any free port, undefined = broker `off`. */
  readonly port: number | undefined
  /** `FLEETGATE_MQTT_FORMAT`. */
  readonly format: MqttFormat
  /** `FLEETGATE_MQTT_UPLINK`, already validated, or undefined. */
  readonly uplink: string | undefined
  /**
   * Cluster mode: the nodes share the uplink's command subscription (`$share/fleetgate-nodes/...`),
   * so that each command published on the shared broker is created once, by one node.
   */
  readonly shareCommands: boolean
  /** The bounds of every connection (`FLEETGATE_MQTT_MAX_PACKET` and friends). */
  readonly limits: ConnectionLimitsConfig
}

/** The embedded MQTT broker and the TCP listener the hub owns for it. */
export interface MqttListener {
  readonly broker: Broker
  /** The listener's port; undefined when the port is `off` and the broker serves only the uplink. */
  readonly port: number | undefined
  close(): Promise<void>
}

/** What the broker hands the hub. */
export interface MqttHooks {
  /** A decoded command from a local client or the uplink (docs/mqtt.md). */
  readonly onCommand: (deviceId: string, payload: unknown, actor: Operator, source: CommandSource) => void
}

/**
 * Starts the aedes broker (authenticated by operator tokens, docs/mqtt.md) and listens for it on
 * `FLEETGATE_MQTT_HOST:PORT`; resolves undefined when the broker is `off` and there is no uplink.
 * With the port `off` and an uplink, the broker runs without a listener: what the hub publishes
 * still reaches the external broker, and commands come from it (a cluster's nodes need that, docs/cluster.md).
 * Its figures go to `registry` (`fleetgate_mqtt_*`).
 */
export async function startMqtt(
  options: MqttListenerOptions,
  operators: OperatorAuthenticator,
  hooks: MqttHooks,
  log: Logger,
  registry: Registry,
): Promise<MqttListener | undefined> {
  const { host, port: wanted } = options
  if (wanted === undefined && options.uplink === undefined) return undefined
  const disconnects = new Counter({
    name: 'fleetgate_mqtt_disconnects_total',
    help: 'MQTT connections the broker cut by a limit, by reason (docs/security.md)',
    labelNames: ['reason'],
    registers: [registry],
  })
  for (const reason of CUT_REASONS) disconnects.inc({ reason }, 0)
  const disconnected = (d: Disconnection): void => {
    disconnects.inc({ reason: d.reason })
    // A slow subscriber loses messages: its operator needs to know. The rest are attacks or broken
    // clients, logged once per connection.
    const level = d.reason === 'backlog_full' || d.reason === 'backlog_slow' ? 'warn' : 'info'
    log[level]({ reason: d.reason, clientId: d.clientId, actor: d.actor, bytes: d.bytes }, 'mqtt connection cut')
  }
  const broker = await createBroker({
    authenticate: (password) => operators.authenticate(password),
    onCommand: hooks.onCommand,
    onInvalidCommand: (deviceId, reason, actor, source) => log.info({ deviceId, reason, actor: actor.name, source }, 'mqtt command refused'),
    onRefused: (refusal) => log.info({ refusal }, 'mqtt request refused'),
    onDisconnect: disconnected,
    onError: (err) => log.warn({ err }, 'mqtt bridge error'),
    onUplinkConnectionChange: (connected) => log.info({ connected }, connected ? 'mqtt uplink connected' : 'mqtt uplink lost'),
    format: options.format,
    ...options.limits,
    ...(options.uplink === undefined ? {} : { uplink: { url: options.uplink, ...(options.shareCommands ? { commandGroup: SHARED_COMMAND_GROUP } : {}) } }),
  })
  registerBrokerGauges(registry, broker)
  if (wanted === undefined) return { broker, port: undefined, close: () => broker.close() }
  const server: Server = createServer((socket) => broker.handle(socket))
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(wanted, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (cause) {
    await broker.close()
    throw new HubError(
      'HUB_ERR_LISTEN',
      `cannot listen on ${host}:${wanted} (FLEETGATE_MQTT_HOST, FLEETGATE_MQTT_PORT): ${(cause as Error).message}`,
      { cause },
    )
  }
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : wanted
  return {
    broker,
    port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      await broker.close()
      await closed
    },
  }
}

/** What the broker holds now, for `/metrics`: each gauge reads the broker when scraped. */
function registerBrokerGauges(registry: Registry, broker: Broker): void {
  const gauges: ReadonlyArray<readonly [string, string, (stats: BrokerStats) => number]> = [
    ['fleetgate_mqtt_clients', 'Connected (authenticated) MQTT clients', (s) => s.clients],
    ['fleetgate_mqtt_unauthenticated_connections', 'MQTT connections whose CONNECT is not accepted yet', (s) => s.unauthenticated],
    ['fleetgate_mqtt_pending_publishes', 'Hub publishes not yet delivered to every MQTT subscriber', (s) => s.pendingPublishes],
    ['fleetgate_mqtt_backlog_bytes', 'Bytes queued for all MQTT clients together', (s) => s.backlogBytes],
    ['fleetgate_mqtt_backlog_largest_bytes', 'Bytes queued for the MQTT client with the most', (s) => s.largestBacklogBytes],
  ]
  for (const [name, help, read] of gauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(broker.stats()))
      },
    })
  }
}
