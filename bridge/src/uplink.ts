import { randomBytes } from 'node:crypto'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import { BoundedQueue } from './bounded-queue.js'
import { asError, BridgeError } from './errors.js'
import { checkKeys, intOption, optionalFn, requiredFn } from './options.js'
import { COMMAND_FILTER, parseCommandTopic } from './topics.js'
import { parseUplinkUrl } from './uplink-url.js'

/** Tuning of the uplink; everything but `url` has a default. */
export interface UplinkConfig {
  /** `FLEETGATE_MQTT_UPLINK`: `mqtt://user:pass@host:port` (or `mqtts://`) of the external broker. */
  readonly url: string
  /** Messages kept while the external broker is away, oldest dropped first; default 10000. */
  readonly maxBufferedMessages?: number
  /** QoS 1 messages sent and not yet acknowledged by the external broker; default 100. */
  readonly maxInflight?: number
  /** Wait between reconnect attempts, in milliseconds; default 1000. Attempts never stop. */
  readonly reconnectPeriodMs?: number
  /** Time allowed for TCP connect + CONNACK, in milliseconds; default 10000. */
  readonly connectTimeoutMs?: number
  /** MQTT keepalive towards the external broker, in seconds; default 30. */
  readonly keepaliveSec?: number
  /** MQTT client id; default `fleetgate-` and 16 random hex digits (a clean session each time). */
  readonly clientId?: string
  /**
   * Takes commands through the shared subscription `$share/{group}/fleetgate/devices/+/commands`,
   * so that of several hubs reading one broker (the nodes of a cluster) exactly one gets each
   * command; default none: a plain subscription, every hub gets every command.
   */
  readonly commandGroup?: string
}

/** Options of `createUplink`: the tuning plus where inbound commands and errors go. */
export interface UplinkOptions extends UplinkConfig {
  /** A command message from the external broker: its device id and raw payload bytes. Must not throw. */
  readonly onCommand: (deviceId: string, payload: Buffer) => void
  /** Connection and subscription problems, as `BRIDGE_ERR_UPLINK`; repeats of one message are reported once. Default: ignored. */
  readonly onError?: (err: BridgeError) => void
  /** Called with true on every (re)connect and false on every loss. Default: none. */
  readonly onConnectionChange?: (connected: boolean) => void
}

/** Uplink figures for `/metrics` and `/readyz`; counters only grow. */
export interface UplinkStats {
  /** Whether the external broker is connected now. */
  readonly connected: boolean
  /** Whether the command subscription is granted on the current connection. */
  readonly subscribed: boolean
  /** Successful connects, the first one included. */
  readonly connects: number
  /** Errors reported by mqtt.js (refused connections, refused CONNACK, socket errors). */
  readonly errors: number
  /** Messages acknowledged by the external broker (PUBACK). */
  readonly mirrored: number
  /** Messages dropped because the buffer was full (oldest first). */
  readonly dropped: number
  /** Messages waiting to be sent, retained state included. */
  readonly buffered: number
  /** Messages sent and not yet acknowledged. */
  readonly inflight: number
  /** Command messages taken from the external broker and handed to `onCommand`. */
  readonly commands: number
  /** Command messages ignored: retained (stale) or on a topic that is not a command topic. */
  readonly ignoredCommands: number
}

/** A best-effort mirror of the local broker's publishes onto an external broker, and its command feed. */
export interface Uplink {
  /** Whether the external broker is connected now. */
  readonly connected: boolean
  /** The external broker's URL without its password. */
  readonly target: string
  /**
   * Queues one message for the external broker and returns at once (never waits, never throws).
   * `retain: true` marks state (device status): only the latest payload per topic is kept, outside
   * the drop-oldest buffer, so the external broker's retained state converges after an outage.
   */
  mirror(topic: string, payload: Buffer, retain: boolean): void
  /** A snapshot of the figures. */
  stats(): UplinkStats
  /** Disconnects (DISCONNECT when idle, else drops the socket) and discards what is buffered. */
  close(): Promise<void>
}

const CONFIG_KEYS = ['url', 'maxBufferedMessages', 'maxInflight', 'reconnectPeriodMs', 'connectTimeoutMs', 'keepaliveSec', 'clientId', 'commandGroup']
/** Every option of `createUplink`. */
export const UPLINK_OPTION_KEYS: readonly string[] = [...CONFIG_KEYS, 'onCommand', 'onError', 'onConnectionChange']
/** The options of `UplinkConfig`, as accepted by `createBroker({ uplink })`. */
export const UPLINK_CONFIG_KEYS: readonly string[] = CONFIG_KEYS

const CLOSE_TIMEOUT_MS = 2000

interface Pending {
  readonly topic: string
  readonly payload: Buffer
}

/**
 * Connects to the external broker of `FLEETGATE_MQTT_UPLINK` and keeps reconnecting forever.
 *
 * Outbound (docs/mqtt.md): the hub's telemetry, status and command results, published at QoS 1.
 * mqtt.js would queue without bound while offline, so the uplink keeps its own bounded buffer and
 * hands mqtt.js a message only while connected and fewer than `maxInflight` are unacknowledged;
 * whatever does not fit is dropped oldest-first and counted. The uplink is a best-effort mirror:
 * the hub's spool and InfluxDB are the durable path, and nothing here ever waits on the network.
 *
 * Inbound: `fleetgate/devices/+/commands` at QoS 1 (shared with `commandGroup`), on a clean session, re-subscribed on every
 * connect. Commands published while the uplink was away are not replayed later: a command that
 * runs hours late is worse than one that never runs (its sender sees no result record and can
 * retry with the same `id`). Retained command messages are ignored for the same reason: the
 * external broker would replay them at every reconnect.
 */
export function createUplink(options: UplinkOptions): Uplink {
  checkKeys(options, UPLINK_OPTION_KEYS, 'createUplink')
  const target = parseUplinkUrl(options.url)
  const onCommand = requiredFn(options.onCommand, 'onCommand')
  const onError = optionalFn(options.onError, 'onError')
  const onConnectionChange = optionalFn(options.onConnectionChange, 'onConnectionChange')
  const capacity = intOption(options.maxBufferedMessages, 'uplink maxBufferedMessages', 10_000, 1, 10_000_000)
  const maxInflight = intOption(options.maxInflight, 'uplink maxInflight', 100, 1, 60_000)
  const reconnectPeriodMs = intOption(options.reconnectPeriodMs, 'uplink reconnectPeriodMs', 1000, 10, 3_600_000)
  const connectTimeoutMs = intOption(options.connectTimeoutMs, 'uplink connectTimeoutMs', 10_000, 100, 600_000)
  const keepaliveSec = intOption(options.keepaliveSec, 'uplink keepaliveSec', 30, 0, 65_535)
  const clientId = options.clientId ?? `fleetgate-${randomBytes(8).toString('hex')}`
  if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 128) {
    throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', 'uplink clientId must be 1 to 128 characters')
  }
  const group = options.commandGroup
  // MQTT 5 §4.8.2: a share name is one topic level, without wildcards.
  if (group !== undefined && (typeof group !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(group))) {
    throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', 'uplink commandGroup must be 1 to 64 of A-Z a-z 0-9 _ . -')
  }
  const commandFilter = group === undefined ? COMMAND_FILTER : `$share/${group}/${COMMAND_FILTER}`

  const queue = new BoundedQueue<Pending>(capacity)
  // Latest payload per retained topic; Map order is insertion order, re-inserted on update.
  const retained = new Map<string, Buffer>()
  let connected = false
  let subscribed = false
  let closed = false
  let pumpScheduled = false
  let lastError = ''
  let inflight = 0
  const counts = { connects: 0, errors: 0, mirrored: 0, dropped: 0, commands: 0, ignoredCommands: 0 }

  // Hub callbacks run inside mqtt.js's event handlers: a throw there must not take the client down.
  const emitError = (err: BridgeError): void => {
    try {
      onError?.(err)
    } catch {
      // onError is the last resort; there is nowhere further to send its own failure.
    }
  }
  const report = (message: string, cause?: Error): void => {
    if (message === lastError) return
    lastError = message
    emitError(new BridgeError('BRIDGE_ERR_UPLINK', `uplink ${target.redacted}: ${message}`, cause === undefined ? undefined : { cause }))
  }
  const changed = (now: boolean): void => {
    try {
      onConnectionChange?.(now)
    } catch (err) {
      emitError(new BridgeError('BRIDGE_ERR_HANDLER', 'onConnectionChange threw', { cause: asError(err) }))
    }
  }

  const clientOptions: IClientOptions = {
    protocol: target.protocol,
    host: target.host,
    port: target.port,
    clientId,
    clean: true,
    protocolVersion: 4,
    keepalive: keepaliveSec,
    reconnectPeriod: reconnectPeriodMs,
    connectTimeout: connectTimeoutMs,
    // Forever means forever: a refused CONNACK (bad credentials, broker busy) is retried too.
    reconnectOnConnackError: true,
    // We subscribe on every connect ourselves; mqtt.js must not queue anything while offline.
    resubscribe: false,
    queueQoSZero: false,
  }
  if (target.username !== undefined) clientOptions.username = target.username
  if (target.password !== undefined) clientOptions.password = target.password
  const client: MqttClient = connect(clientOptions)

  const next = (): { topic: string; payload: Buffer; retain: boolean } | undefined => {
    const first = retained.entries().next()
    if (first.done !== true) {
      const [topic, payload] = first.value
      retained.delete(topic)
      return { topic, payload, retain: true }
    }
    const item = queue.shift()
    return item === undefined ? undefined : { topic: item.topic, payload: item.payload, retain: false }
  }

  const acked = (err?: Error | null): void => {
    inflight--
    if (err === undefined || err === null) counts.mirrored++
    else report(`publish failed: ${err.message}`, err)
    schedulePump()
  }

  const pump = (): void => {
    pumpScheduled = false
    while (connected && !closed && inflight < maxInflight) {
      const message = next()
      if (message === undefined) return
      inflight++
      client.publish(message.topic, message.payload, { qos: 1, retain: message.retain }, acked)
    }
  }

  // Sending is batched off the caller's stack: `mirror` runs on the hub's ingest path.
  function schedulePump(): void {
    if (pumpScheduled || !connected || closed) return
    pumpScheduled = true
    setImmediate(pump)
  }

  client.on('connect', () => {
    connected = true
    lastError = ''
    counts.connects++
    client.subscribe(commandFilter, { qos: 1 }, (err) => {
      // mqtt.js reports a refused filter (SUBACK 0x80) as an error too.
      if (err) report(`subscribe to ${commandFilter} failed: ${err.message}`, err)
      else subscribed = connected
    })
    changed(true)
    schedulePump()
  })
  client.on('close', () => {
    subscribed = false
    if (!connected) return
    connected = false
    changed(false)
  })
  client.on('error', (err) => {
    counts.errors++
    report(err.message, err)
  })
  client.on('message', (topic, payload, packet) => {
    const deviceId = parseCommandTopic(topic)
    if (packet.retain || deviceId === undefined) {
      counts.ignoredCommands++
      return
    }
    counts.commands++
    try {
      onCommand(deviceId, payload)
    } catch (err) {
      emitError(new BridgeError('BRIDGE_ERR_HANDLER', `onCommand threw for an uplink command to ${deviceId}`, { cause: asError(err) }))
    }
  })

  return {
    get connected() {
      return connected
    },
    target: target.redacted,
    mirror(topic, payload, retain) {
      if (closed) return
      if (retain) {
        retained.delete(topic)
        retained.set(topic, payload)
      } else if (queue.push({ topic, payload })) {
        counts.dropped++
      }
      schedulePump()
    },
    stats() {
      return { connected, subscribed, ...counts, buffered: queue.size + retained.size, inflight }
    },
    async close() {
      if (closed) return
      closed = true
      queue.clear()
      retained.clear()
      const graceful = connected && inflight === 0
      await new Promise<void>((resolve) => {
        // mqtt.js does not call back when the socket was already gone; the timer covers that.
        const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)
        client.end(!graceful, {}, () => {
          clearTimeout(timer)
          resolve()
        })
      })
      connected = false
      subscribed = false
    },
  }
}
