import type { Duplex } from 'node:stream'
import type { Aedes, Client } from 'aedes'
import { hasClientState, nextPacketId, retainedStore, type ClientState, type RetainedStore } from './aedes-internals.js'
import { asError, BridgeError } from './errors.js'
import { Outbox, topicBytes } from './outbox.js'
import { matchesFilter, telemetryTopic } from './topics.js'

/** One client a topic is delivered to, at the QoS it gets. */
interface Target {
  readonly outbox: Outbox
  readonly qos: 0 | 1
}

/** A topic, its wire bytes and the clients it goes to, as of the last change of any subscription. */
export interface Route {
  readonly topic: string
  readonly bytes: Buffer
  readonly targets: readonly Target[]
}

/**
 * Routes cached at most, of telemetry (by device id) and of other topics each (a route holds its
 * topic, its bytes and a short array: a few hundred bytes); at the bound a cache starts over.
 */
const MAX_CACHED_ROUTES = 16_384
/** Messages taken before every outbox is written, even within one turn: bounds what a turn holds. */
const FLUSH_MESSAGES = 1024

/**
 * Delivers the hub's own publishes to the embedded broker's subscribers without going through
 * aedes's per-message machinery (aedes.publish matches every message in qlobber, makes packet
 * objects per client, takes several event-loop turns and two persistence round trips per QoS 1
 * message, and mqtt-packet writes each packet in four or five chunks). Here:
 *
 * - The clients a topic goes to are found once and cached until any client subscribes,
 *   unsubscribes or leaves (aedes's `subscribe`, `unsubscribe`, `clientDisconnect` events, and
 *   the stream's close). A `subscribe` event follows the SUBACK, so a message goes to a new
 *   subscription no later than MQTT 3.1.1 §3.8.4 asks; after an UNSUBACK none does (§3.10.4).
 * - A client whose filters overlap on a topic gets one copy, at the highest QoS they grant
 *   (MQTT-3.3.5-1); aedes also sends one copy, but at the QoS of whichever filter its matcher
 *   lists first, and no higher than an exact filter's.
 * - A message is encoded only when someone receives it, once, and each client's packets of one
 *   turn go out in one write (Outbox). QoS 1 packet ids come from the client's own aedes counter,
 *   so they never clash with aedes's deliveries to the same client (retained messages on
 *   SUBSCRIBE, other clients' commands). Sessions are clean, so nothing is stored per message,
 *   and the client's PUBACKs are taken out before aedes reads them (ConnectionLimits).
 * - Every client stays under its connection limits: the bytes waiting in its outbox count
 *   towards its backlog bound, checked before each message.
 * - A retained message is stored in aedes's persistence, where aedes finds it for a later
 *   SUBSCRIBE, before it is delivered. Live deliveries carry retain 0 (MQTT-3.3.1-9).
 *
 * Order: every hub publish goes this one way, in the order of the calls, so a client gets the
 * hub's messages in the order they were published (a status is never overtaken by telemetry
 * published after it). aedes's dedupe of a client's deliveries by broker counter does not apply
 * to these packets: they never pass through aedes's emitter.
 */
export class HubPublisher {
  readonly #mayReceive: (client: Client) => boolean
  readonly #encode: (value: unknown) => Buffer
  readonly #onError: (err: BridgeError) => void
  readonly #retained: RetainedStore
  readonly #clients = new Map<Client & ClientState, Outbox>()
  readonly #routes = new Map<string, Route>()
  /** Telemetry routes by device id: no topic is built, checked or hashed per message. */
  readonly #telemetry = new Map<string, Route>()
  #written: Outbox[] = []
  #pending = 0
  #flushQueued = false
  #closed = false

  /**
   * `mayReceive`: whether a client may be sent the hub's messages (it authenticated); `encode`:
   * the payload of a message value; `onError`: failures with no caller (storing a retained message).
   */
  constructor(aedes: Aedes, mayReceive: (client: Client) => boolean, encode: (value: unknown) => Buffer, onError: (err: BridgeError) => void) {
    this.#mayReceive = mayReceive
    this.#encode = encode
    this.#onError = onError
    const retained = retainedStore(aedes)
    if (retained === undefined) throw new BridgeError('BRIDGE_ERR_BROKER', 'aedes has no persistence with storeRetained: an unsupported aedes version')
    this.#retained = retained
    const forget = (): void => this.#forget()
    aedes.on('subscribe', forget)
    aedes.on('unsubscribe', forget)
    aedes.on('clientDisconnect', forget)
  }

  /** Messages taken and not yet written to every matching client's stream (at most a turn's, or FLUSH_MESSAGES). */
  get pending(): number {
    return this.#pending
  }

  /**
   * Serves the hub's messages to `client` on `stream`; `backlogFull` is its connection limits'
   * check (see Outbox). Answers false when this aedes's clients do not look as expected (another
   * version): the caller refuses the connection.
   */
  attach(client: Client, stream: Duplex, backlogFull: (unwrittenBytes: number) => boolean): boolean {
    if (!hasClientState(client)) return false
    const outbox = new Outbox({
      stream,
      backlogFull,
      nextPacketId: () => nextPacketId(client),
    })
    this.#clients.set(client, outbox)
    stream.once('close', () => {
      this.#clients.delete(client)
      this.#forget()
    })
    return true
  }

  /** The route of `topic`. */
  route(topic: string): Route {
    return this.#routes.get(topic) ?? this.#cache(this.#routes, topic, topic)
  }

  /** The route of `fleetgate/devices/{deviceId}/telemetry`; throws `BRIDGE_ERR_INVALID_ARGUMENT` for a bad device id. */
  telemetryRoute(deviceId: string): Route {
    return this.#telemetry.get(deviceId) ?? this.#cache(this.#telemetry, deviceId, telemetryTopic(deviceId))
  }

  /**
   * Delivers one message on `route` to every client subscribed to it now, in the order of the
   * calls: `payload`, or else `value` encoded, only when someone receives it or it is retained
   * (stored for later subscribers as well).
   */
  publish(route: Route, payload: Buffer | undefined, value: unknown, retain: boolean): void {
    if (this.#closed) return
    if (route.targets.length === 0 && !retain) return
    const bytes = payload ?? this.#encode(value)
    if (retain) this.#storeRetained(route.topic, bytes)
    for (const { outbox, qos } of route.targets) {
      const first = outbox.empty
      if (outbox.add(route.bytes, bytes, qos) && first) this.#written.push(outbox)
    }
    if (++this.#pending >= FLUSH_MESSAGES) this.#flush()
    else if (!this.#flushQueued) {
      this.#flushQueued = true
      setImmediate(() => {
        this.#flushQueued = false
        this.#flush()
      })
    }
  }

  /** Takes no more messages; what waits in outboxes is dropped with the connections. */
  close(): void {
    this.#closed = true
    this.#written = []
    this.#pending = 0
  }

  #flush(): void {
    const written = this.#written
    this.#written = []
    this.#pending = 0
    for (const outbox of written) outbox.flush()
  }

  #forget(): void {
    this.#routes.clear()
    this.#telemetry.clear()
  }

  #cache(cache: Map<string, Route>, key: string, topic: string): Route {
    const targets: Target[] = []
    for (const [client, outbox] of this.#clients) {
      if (client.closed || !this.#mayReceive(client)) continue
      let qos = -1
      const subscriptions = client.subscriptions
      for (const filter of Object.keys(subscriptions)) {
        if (matchesFilter(filter, topic)) qos = Math.max(qos, subscriptions[filter]?.qos ?? -1)
      }
      // The hub publishes at QoS 1 (docs/mqtt.md); a QoS 2 subscription gets QoS 1 (MQTT 3.1.1 §3.8.4).
      if (qos >= 0) targets.push({ outbox, qos: qos === 0 ? 0 : 1 })
    }
    if (cache.size >= MAX_CACHED_ROUTES) cache.clear()
    const route: Route = { topic, bytes: topicBytes(topic), targets }
    cache.set(key, route)
    return route
  }

  #storeRetained(topic: string, payload: Buffer): void {
    this.#retained.storeRetained({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false }).catch((err: unknown) => {
      if (!this.#closed) this.#onError(new BridgeError('BRIDGE_ERR_BROKER', `storing the retained message of ${topic} failed`, { cause: asError(err) }))
    })
  }
}
