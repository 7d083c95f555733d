import { parseUplinkUrl } from '@fleetgate/bridge'
import { DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import { Socket } from 'node:net'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { Logger } from '../logger.js'
import type { CommandRecord } from '../store/index.js'
import { COMMAND_STATUSES } from '../store/index.js'

/**
 * The first topic level of node-to-node messages. Outside clients must not be able to write under
 * it: the broker's ACL lets only the nodes' own credentials publish there (docs/cluster.md).
 */
export const CLUSTER_TOPIC_ROOT = 'fleetgate-cluster'

/** The topic a node reads its messages from: `fleetgate-cluster/nodes/{nodeId}`. */
export const nodeTopic = (nodeId: string): string => `${CLUSTER_TOPIC_ROOT}/nodes/${nodeId}`

/** What one node tells another. Each carries news of what PostgreSQL already holds: losing one only delays. */
export type BusMessage =
  /** A newer session of `device` opened elsewhere with `epoch`: close yours with 4001 if it is older. */
  | { readonly t: 'takeover'; readonly device: string; readonly epoch: number }
  /** `device`, whose session you hold, has queued commands: deliver them. */
  | { readonly t: 'deliver'; readonly device: string }
  /** A command stored as sent by you, for a device whose session you hold: write its frame. */
  | { readonly t: 'send'; readonly record: CommandRecord }
  /** A command that a REST call on your node waits for changed: here is its record as stored. */
  | { readonly t: 'command'; readonly record: CommandRecord }
  /** The desired twin of `device`, whose session you hold, changed: send it the latest. */
  | { readonly t: 'twin'; readonly device: string }

/** What the bus hands each message to. */
export type BusHandlers = { readonly [K in BusMessage['t']]: (message: Extract<BusMessage, { t: K }>) => void }

/** The bus's counters for `/metrics`. */
export interface BusCounters {
  busMessage(direction: 'sent' | 'received' | 'refused', type: string): void
}

/** What the bus needs. */
export interface ClusterBusOptions {
  /** `FLEETGATE_MQTT_UPLINK`: the shared broker, with the nodes' own credentials. */
  readonly url: string
  readonly nodeId: string
  readonly handlers: BusHandlers
  /** Messages on the other topics it subscribed to (`subscribe`): other nodes' events, devices' telemetry. */
  readonly onTopic: (topic: string, payload: Buffer) => void
  readonly counters: BusCounters
  readonly log: Pick<Logger, 'info' | 'warn'>
  /** Wait between reconnects, in ms; default 1,000. */
  readonly reconnectPeriodMs?: number
  /** MQTT keepalive, in s; default 10 (a broker that stops answering is noticed within 15 s; one that closes, at once). */
  readonly keepaliveSec?: number
}

const isDevice = (value: unknown): value is string => typeof value === 'string' && DEVICE_ID_PATTERN.test(value)
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const STATUSES: ReadonlySet<unknown> = new Set(COMMAND_STATUSES)

/**
 * Reads a message from its JSON text; undefined when it is not one. Only the nodes may write to
 * their topics (the broker's ACL), but a message is still checked field by field before use.
 */
export function decodeBusMessage(payload: Buffer): BusMessage | undefined {
  let value: unknown
  try {
    value = JSON.parse(payload.toString('utf8'))
  } catch {
    return undefined
  }
  if (!isObject(value)) return undefined
  switch (value['t']) {
    case 'takeover':
      return isDevice(value['device']) && Number.isSafeInteger(value['epoch']) ? { t: 'takeover', device: value['device'], epoch: value['epoch'] as number } : undefined
    case 'deliver':
    case 'twin':
      return isDevice(value['device']) ? { t: value['t'], device: value['device'] } : undefined
    case 'send':
    case 'command': {
      const record = value['record']
      if (!isObject(record) || !isDevice(record['device']) || typeof record['id'] !== 'string' || !STATUSES.has(record['status'])) return undefined
      if (typeof record['name'] !== 'string' || !Number.isSafeInteger(record['timeoutMs'])) return undefined
      return { t: value['t'], record: record as unknown as CommandRecord }
    }
    default:
      return undefined
  }
}

/**
 * The node-to-node bus over the shared MQTT broker (docs/cluster.md). Each node reads its own topic
 * with a persistent session (`clean: false`, client id `fleetgate-node-{nodeId}`) at QoS 1, so a
 * node that blips gets, when it is back, what was sent to it meanwhile. Sending never waits: while
 * the broker is away `send` says so at once (the caller fails fast or leaves it to a sweep).
 */
export class ClusterBus {
  readonly #options: ClusterBusOptions
  readonly #client: MqttClient
  readonly #topic: string
  /** Filters subscribed beside the node's topic, at QoS 0, made again on a session the broker did not keep. */
  readonly #filters = new Set<string>()
  #connected = false
  #closed = false

  constructor(options: ClusterBusOptions) {
    this.#options = options
    this.#topic = nodeTopic(options.nodeId)
    const target = parseUplinkUrl(options.url)
    const clientOptions: IClientOptions = {
      protocol: target.protocol,
      host: target.host,
      port: target.port,
      clientId: `fleetgate-node-${options.nodeId}`,
      clean: false,
      protocolVersion: 4,
      keepalive: options.keepaliveSec ?? 10,
      reconnectPeriod: options.reconnectPeriodMs ?? 1000,
      connectTimeout: 5000,
      reconnectOnConnackError: true,
      resubscribe: false,
      queueQoSZero: false,
    }
    if (target.username !== undefined) clientOptions.username = target.username
    if (target.password !== undefined) clientOptions.password = target.password
    const client = connect(clientOptions)
    this.#client = client
    client.on('connect', (connack) => {
      // Node-to-node messages are small and each waits for the next hop: Nagle's algorithm would
      // hold one back until the previous write is acknowledged (up to 40 ms of delayed ACK).
      const stream: unknown = client.stream
      if (stream instanceof Socket) stream.setNoDelay(true)
      // A session the broker kept holds the subscription; a new one needs it.
      if (!connack.sessionPresent) {
        client.subscribe(this.#topic, { qos: 1 }, (err) => {
          if (err) options.log.warn({ err: err.message, topic: this.#topic }, 'cluster bus: subscription refused (check the broker ACL)')
        })
        for (const filter of this.#filters) this.#subscribe(filter)
      }
      if (!this.#connected) options.log.info({ target: target.redacted }, 'cluster bus connected')
      this.#connected = true
    })
    client.on('close', () => {
      if (this.#connected && !this.#closed) options.log.warn({ target: target.redacted }, 'cluster bus lost; reconnecting')
      this.#connected = false
    })
    client.on('error', (err) => options.log.warn({ err: err.message, target: target.redacted }, 'cluster bus error'))
    client.on('message', (topic, payload) => {
      if (topic === this.#topic) this.#received(payload)
      else options.onTopic(topic, payload)
    })
  }

  /** Whether the broker is connected now: messages can be sent. */
  get connected(): boolean {
    return this.#connected
  }

  /** Sends `message` to `node` at QoS 1; false (and nothing sent) while the broker is away. */
  send(node: string, message: BusMessage): boolean {
    if (!this.#connected || this.#closed) return false
    this.#client.publish(nodeTopic(node), JSON.stringify(message), { qos: 1 })
    this.#options.counters.busMessage('sent', message.t)
    return true
  }

  /** Publishes at QoS 0 (news nobody needs later: live events); dropped while the broker is away. */
  publish(topic: string, payload: string): void {
    if (this.#connected && !this.#closed) this.#client.publish(topic, payload, { qos: 0 })
  }

  /** Subscribes to `filter` at QoS 0 (nothing is kept for this node while it is away), also on later sessions. */
  subscribe(filter: string): void {
    if (this.#filters.has(filter)) return
    this.#filters.add(filter)
    if (this.#connected) this.#subscribe(filter)
  }

  /** Ends a subscription of `subscribe`. */
  unsubscribe(filter: string): void {
    if (!this.#filters.delete(filter)) return
    if (this.#connected) this.#client.unsubscribe(filter)
  }

  /** Disconnects; the broker keeps the session, so a restart under the same node id misses nothing. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000)
      this.#client.end(!this.#connected, {}, () => {
        clearTimeout(timer)
        resolve()
      })
    })
    this.#connected = false
  }

  #subscribe(filter: string): void {
    this.#client.subscribe(filter, { qos: 0 }, (err) => {
      if (err) this.#options.log.warn({ err: err.message, topic: filter }, 'cluster bus: subscription refused (check the broker ACL)')
    })
  }

  #received(payload: Buffer): void {
    const message = decodeBusMessage(payload)
    const { counters, handlers, log } = this.#options
    if (message === undefined) {
      counters.busMessage('refused', 'unknown')
      log.warn({ bytes: payload.length }, 'cluster bus: a message that is not one was dropped')
      return
    }
    counters.busMessage('received', message.t)
    const handler = handlers[message.t] as (message: BusMessage) => void
    try {
      handler(message)
    } catch (err) {
      log.warn({ err, type: message.t }, 'cluster bus: a handler failed')
    }
  }
}
