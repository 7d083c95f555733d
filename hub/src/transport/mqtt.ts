import { createServer, type Server } from 'node:net'
import { createBroker, type Broker, type CommandSource, type MqttFormat } from '@fleetgate/bridge'
import type { Operator, OperatorAuthenticator } from '../auth/index.js'
import { HubError } from '../errors.js'
import type { Logger } from '../logger.js'

/** Where the embedded broker listens and how it speaks (CONTRACT §1, §6). */
export interface MqttListenerOptions {
  /** `FLEETGATE_MQTT_HOST`. */
  readonly host: string
  /** `FLEETGATE_MQTT_PORT`, 0 = any free port, undefined = broker `off`. */
  readonly port: number | undefined
  /** `FLEETGATE_MQTT_FORMAT`. */
  readonly format: MqttFormat
  /** `FLEETGATE_MQTT_UPLINK`, already validated, or undefined. */
  readonly uplink: string | undefined
}

/** The embedded MQTT broker and the TCP listener the hub owns for it. */
export interface MqttListener {
  readonly broker: Broker
  readonly port: number
  close(): Promise<void>
}

/** What the broker hands the hub. */
export interface MqttHooks {
  /** A decoded command from a local client or the uplink (CONTRACT §6). */
  readonly onCommand: (deviceId: string, payload: unknown, actor: Operator, source: CommandSource) => void
}

/**
 * Starts the aedes broker (authenticated by operator tokens, CONTRACT §6) and listens for it on
 * `FLEETGATE_MQTT_HOST:PORT`; resolves undefined when the broker is `off`.
 */
export async function startMqtt(
  options: MqttListenerOptions,
  operators: OperatorAuthenticator,
  hooks: MqttHooks,
  log: Logger,
): Promise<MqttListener | undefined> {
  const { host, port: wanted } = options
  if (wanted === undefined) return undefined
  const broker = await createBroker({
    authenticate: (password) => operators.authenticate(password),
    onCommand: hooks.onCommand,
    onInvalidCommand: (deviceId, reason, actor, source) => log.info({ deviceId, reason, actor: actor.name, source }, 'mqtt command refused'),
    onRefused: (refusal) => log.info({ refusal }, 'mqtt request refused'),
    onError: (err) => log.warn({ err }, 'mqtt bridge error'),
    onUplinkConnectionChange: (connected) => log.info({ connected }, connected ? 'mqtt uplink connected' : 'mqtt uplink lost'),
    format: options.format,
    // Ingest holds acks once MQTT lags (egress back-pressure), so the broker's own drop limit is
    // only a last resort far above that point.
    maxPendingPublishes: 1_000_000,
    ...(options.uplink === undefined ? {} : { uplink: { url: options.uplink } }),
  })
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
