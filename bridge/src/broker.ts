import type { EventEmitter } from 'node:events'
import { Aedes, type AedesOptions, type AuthenticateError, type Client } from 'aedes'
import { authorizePublish, authorizeSubscribe, UPLINK_ACTOR, type Actor, type RefusalReason } from './acl.js'
import { refreshKeepalive } from './aedes-internals.js'
import type { Broker, BrokerOptions, CommandSource, Disconnection, Refusal } from './broker-api.js'
import { getCodec, type DecodeFailure } from './codec.js'
import { coalesceWrites } from './coalesce-writes.js'
import { CONNECTION_LIMIT_KEYS, ConnectionLimits, CUT_REASONS, type AdmittedConnection, type CutReason } from './connection-limits.js'
import { asError, BridgeError } from './errors.js'
import { HubPublisher } from './hub-publisher.js'
import { checkKeys, optionalFn, requiredFn } from './options.js'
import { isScope } from './scopes.js'
import { commandResultTopic, commandTopic, statusTopic, twinTopic, TOPIC_ROOT } from './topics.js'
import { parseUplinkUrl } from './uplink-url.js'
import { createUplink, UPLINK_CONFIG_KEYS, type Uplink } from './uplink.js'

const OPTION_KEYS = [
  'authenticate', 'onCommand', 'onInvalidCommand', 'onRefused', 'onDisconnect', 'onError', 'onUplinkConnectionChange',
  'format', 'uplink', ...CONNECTION_LIMIT_KEYS,
]
const ROOT_PREFIX = TOPIC_ROOT + '/'

// aedes answers a refused CONNECT with the `returnCode` of the error (MQTT 3.1.1 §3.2.2.3).
function connectError(returnCode: 3 | 4): AuthenticateError {
  return Object.assign(new Error(returnCode === 4 ? 'bad user name or password' : 'server unavailable'), { returnCode })
}

/**
 * Starts the embedded aedes broker. Every aedes hook denies by default (aedes itself allows
 * everything): no password or an unknown token gets CONNACK 4 "bad user name or password"; a
 * client may publish only commands (see `authorizePublish` in acl.ts) and subscribe only under
 * `fleetgate/`. Every connection lives under ConnectionLimits: packet sizes, connections not yet
 * authenticated and their deadline, and each client's backlog, so that no client can hold the
 * others' deliveries or grow memory without bound. With `uplink`, the hub's publishes are mirrored
 * to the external broker and its commands come in as source `uplink`.
 */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  checkKeys(options, OPTION_KEYS, 'createBroker')
  const authenticate = requiredFn(options.authenticate, 'authenticate')
  const onCommand = requiredFn(options.onCommand, 'onCommand')
  const onInvalidCommand = optionalFn(options.onInvalidCommand, 'onInvalidCommand')
  const onRefused = optionalFn(options.onRefused, 'onRefused')
  const onDisconnect = optionalFn(options.onDisconnect, 'onDisconnect')
  const onError = optionalFn(options.onError, 'onError')
  const onUplinkConnectionChange = optionalFn(options.onUplinkConnectionChange, 'onUplinkConnectionChange')
  const codec = getCodec(options.format ?? 'json')
  const limits = new ConnectionLimits(options)
  if (options.uplink !== undefined) {
    // Validate before anything starts, so a bad FLEETGATE_MQTT_UPLINK leaves nothing running.
    if (typeof options.uplink !== 'object' || options.uplink === null) {
      throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', 'createBroker: uplink must be an object { url, ... }')
    }
    checkKeys(options.uplink, UPLINK_CONFIG_KEYS, 'createBroker uplink')
    parseUplinkUrl(options.uplink.url)
  }

  // Every client that passed `authenticate`, with its operator; a client absent here is refused everything.
  const actors = new WeakMap<Client, Actor>()
  const admitted = new WeakMap<Client, AdmittedConnection>()
  const counts = {
    publishedTelemetry: 0, publishedStatus: 0, publishedResults: 0, publishedTwins: 0,
    refusedConnects: 0, refusedPublishes: 0, refusedSubscribes: 0,
    mqttCommands: 0, uplinkCommands: 0, invalidCommands: 0,
  }
  const disconnects = Object.fromEntries(CUT_REASONS.map((reason) => [reason, 0])) as Record<CutReason, number>
  let closed = false

  const emitError = (err: BridgeError): void => {
    try {
      onError?.(err)
    } catch {
      // onError is the last resort; there is nowhere further to send its own failure.
    }
  }
  // Hub callbacks run inside aedes's and mqtt.js's handlers: a throw must not break their flow.
  const guard = (name: string, call: () => void): void => {
    try {
      call()
    } catch (err) {
      emitError(new BridgeError('BRIDGE_ERR_HANDLER', `${name} threw`, { cause: asError(err) }))
    }
  }
  const refuse = (kind: Refusal['kind'], reason: RefusalReason, client: Client | null, topic?: string): void => {
    if (kind === 'connect') counts.refusedConnects++
    else if (kind === 'publish') counts.refusedPublishes++
    else counts.refusedSubscribes++
    if (onRefused === undefined) return
    const actor = client === null ? undefined : actors.get(client)?.name
    const refusal: Refusal = { kind, reason, clientId: client?.id ?? '', actor, topic }
    guard('onRefused', () => onRefused(refusal))
  }
  const cut = (reason: CutReason, bytes: number, client: Client | undefined): void => {
    disconnects[reason]++
    if (onDisconnect === undefined) return
    const disconnection: Disconnection = {
      reason,
      clientId: client?.id ?? '',
      actor: client === undefined ? undefined : actors.get(client)?.name,
      bytes,
    }
    guard('onDisconnect', () => onDisconnect(disconnection))
  }
  const invalidCommand = (deviceId: string, reason: DecodeFailure, actor: Actor, source: CommandSource): void => {
    counts.invalidCommands++
    if (onInvalidCommand !== undefined) guard('onInvalidCommand', () => onInvalidCommand(deviceId, reason, actor, source))
  }

  const hooks: AedesOptions = {
    // A backstop only: ConnectionLimits cuts first, and counts it.
    connectTimeout: limits.connectTimeoutMs + 1000,
    preConnect(_client, packet, callback) {
      // No Last Will: the only topic a client may publish is a command, and a command fired by a
      // dropped connection is not one its operator sent (docs/mqtt.md: commands are operators' acts).
      delete packet.will
      // No persistent sessions: aedes would queue every QoS 1 message for an absent subscriber in
      // memory without bound. CONNACK then says sessionPresent = 0, which is the truth.
      packet.clean = true
      callback(null, true)
    },
    authenticate(client, _username, password, done) {
      if (password === undefined || password.length === 0) {
        refuse('connect', 'no_password', client)
        return done(connectError(4), false)
      }
      let actor: Actor | undefined
      try {
        actor = authenticate(password.toString('utf8'))
      } catch (err) {
        emitError(new BridgeError('BRIDGE_ERR_HANDLER', 'authenticate threw', { cause: asError(err) }))
        refuse('connect', 'auth_error', client)
        return done(connectError(3), false)
      }
      if (actor === undefined) {
        refuse('connect', 'unknown_token', client)
        return done(connectError(4), false)
      }
      if (typeof actor.name !== 'string' || !isScope(actor.scope)) {
        emitError(new BridgeError('BRIDGE_ERR_HANDLER', 'authenticate returned an actor without a name or a known scope'))
        refuse('connect', 'auth_error', client)
        return done(connectError(3), false)
      }
      actors.set(client, Object.freeze({ name: actor.name, scope: actor.scope }))
      admitted.get(client)?.authenticated(() => refreshKeepalive(client))
      done(null, true)
    },
    // Called for client PUBLISHes and Last Wills only; the hub's own publishes (broker.publish) skip it.
    authorizePublish(client, packet, callback) {
      const actor = client === null ? undefined : actors.get(client)
      const verdict = authorizePublish(actor, packet.topic, packet.qos, packet.retain)
      if (!verdict.ok) {
        refuse('publish', verdict.reason, client, packet.topic)
        // MQTT-3.3.5-2: no way to tell the client; aedes closes the connection (as AWS IoT does).
        return callback(new Error(`publish to ${packet.topic} refused: ${verdict.reason}`))
      }
      const who = verdict.actor
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload, 'utf8') : packet.payload
      const decoded = codec.decode(payload)
      if (!decoded.ok) {
        // Refused like an ACL breach: garbage never reaches subscribers or the hub.
        invalidCommand(verdict.deviceId, decoded.reason, who, 'mqtt')
        return callback(new Error(`command payload for ${verdict.deviceId} refused: ${decoded.reason}`))
      }
      callback(null)
      counts.mqttCommands++
      guard('onCommand', () => onCommand(verdict.deviceId, decoded.value, who, 'mqtt'))
    },
    authorizeSubscribe(client, subscription, callback) {
      if (authorizeSubscribe(actors.get(client), subscription.topic)) return callback(null, subscription)
      refuse('subscribe', 'topic', client, subscription.topic)
      // A null subscription is granted 0x80 (MQTT 3.1.1 §3.9.3); the client stays connected.
      callback(null, null)
    },
    // Subscriptions are already confined to `fleetgate/` and every scope may read all of it, so
    // nothing needs filtering per delivery. This check is defence in depth, kept because it costs a
    // WeakMap lookup: should a filter ever slip past authorizeSubscribe (a restored session, a
    // future change), nothing outside `fleetgate/` and nothing for an unauthenticated client leaves.
    authorizeForward(client, packet) {
      return actors.has(client) && packet.topic.startsWith(ROOT_PREFIX) ? packet : null
    },
  }

  const aedes = await Aedes.createBroker(hooks)
  // aedes emits `error` on a persistence failure; its typings omit that event, so listen through the
  // base class (a widening, not a cast). Without a listener, EventEmitter would throw it.
  const emitter: EventEmitter = aedes
  emitter.on('error', (err: Error) => emitError(new BridgeError('BRIDGE_ERR_BROKER', `aedes: ${err.message}`, { cause: err })))

  // The hub's own publishes bypass aedes.publish (see HubPublisher); clients' command publishes
  // still go through aedes, which relays them to their subscribers itself.
  const publisher = new HubPublisher(aedes, (client) => actors.has(client), codec.encode, emitError)
  const publishLocal = (topic: string, payload: Buffer, retain: boolean): void => publisher.publish(publisher.route(topic), payload, undefined, retain)

  let uplink: Uplink | undefined
  if (options.uplink !== undefined) {
    const fromUplink = (deviceId: string, payload: Buffer): void => {
      const decoded = codec.decode(payload)
      if (!decoded.ok) return invalidCommand(deviceId, decoded.reason, UPLINK_ACTOR, 'uplink')
      counts.uplinkCommands++
      // Local subscribers see uplink commands too. An internal publish skips authorizePublish, so it
      // neither reaches onCommand a second time nor goes back out: commands are never mirrored.
      if (!closed) publishLocal(commandTopic(deviceId), payload, false)
      guard('onCommand', () => onCommand(deviceId, decoded.value, UPLINK_ACTOR, 'uplink'))
    }
    try {
      uplink = createUplink({
        ...options.uplink,
        onCommand: fromUplink,
        onError: emitError,
        ...(onUplinkConnectionChange === undefined ? {} : { onConnectionChange: onUplinkConnectionChange }),
      })
    } catch (err) {
      await new Promise<void>((resolve) => aedes.close(resolve))
      throw err
    }
  }

  // The hub's publishes: encoded once, for the local subscribers and the uplink, never awaited.
  const hubPublish = (topic: string, value: unknown, retain: boolean): Buffer => {
    const payload = codec.encode(value)
    uplink?.mirror(topic, payload, retain)
    return payload
  }

  return {
    handle(stream) {
      if (closed) {
        stream.destroy()
        return
      }
      // The client exists only once aedes has the stream; a cut before that has no client id to report.
      let client: Client | undefined
      const connection = limits.admit(stream, (reason, bytes) => cut(reason, bytes, client))
      if (connection === undefined) return
      coalesceWrites(stream)
      client = aedes.handle(stream)
      admitted.set(client, connection)
      if (!publisher.attach(client, stream, connection.backlogFull)) {
        emitError(new BridgeError('BRIDGE_ERR_BROKER', 'an aedes client without subscriptions or packet ids: an unsupported aedes version'))
        stream.destroy()
      }
    },
    publishTelemetry(deviceId, message) {
      // The hot path of ingest: with no client and no uplink nobody could receive it, so it is not
      // even encoded; without an uplink it is encoded only when a local client subscribed to it.
      const route = publisher.telemetryRoute(deviceId)
      if (closed || (uplink === undefined && aedes.connectedClients === 0)) return
      const payload = uplink === undefined ? undefined : hubPublish(route.topic, message, false)
      counts.publishedTelemetry++
      publisher.publish(route, payload, message, false)
    },
    publishStatus(deviceId, message) {
      const topic = statusTopic(deviceId)
      if (closed) return
      counts.publishedStatus++
      publishLocal(topic, hubPublish(topic, message, true), true)
    },
    publishTwin(deviceId, twin) {
      const topic = twinTopic(deviceId)
      if (closed) return
      counts.publishedTwins++
      // MQTT 3.1.1 §3.3.1.3: a retained message with an empty payload removes the retained one
      const payload = twin === undefined ? Buffer.alloc(0) : codec.encode(twin)
      uplink?.mirror(topic, payload, true)
      publishLocal(topic, payload, true)
    },
    publishCommandResult(deviceId, cmdId, record) {
      const topic = commandResultTopic(deviceId, cmdId)
      if (closed) return
      counts.publishedResults++
      publishLocal(topic, hubPublish(topic, record, false), false)
    },
    get clients() {
      return aedes.connectedClients
    },
    get pendingPublishes() {
      return publisher.pending
    },
    uplink,
    stats() {
      const backlog = limits.backlog()
      return {
        clients: aedes.connectedClients,
        unauthenticated: limits.unauthenticated,
        backlogBytes: backlog.totalBytes,
        largestBacklogBytes: backlog.largestBytes,
        ...counts,
        pendingPublishes: publisher.pending,
        disconnects: { ...disconnects },
      }
    },
    async close() {
      if (closed) return
      closed = true
      publisher.close()
      await uplink?.close()
      await new Promise<void>((resolve) => aedes.close(resolve))
      limits.destroyAll()
    },
  }
}
