import { getCodec, telemetryTopic, type MqttFormat, type TelemetryMessage } from '@fleetgate/bridge'
import { DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import type { EventBus, EventType, HubEvents } from '../events/index.js'
import type { Logger } from '../logger.js'
import { CLUSTER_TOPIC_ROOT, type ClusterBus } from './bus.js'

/** The topic under which node `nodeId` relays its events: `fleetgate-cluster/events/{nodeId}`. */
const eventsTopic = (nodeId: string): string => `${CLUSTER_TOPIC_ROOT}/events/${nodeId}`
const EVENTS_FILTER = `${CLUSTER_TOPIC_ROOT}/events/+`
/** The event types a node relays to the others; telemetry comes from the broker's own topics. */
const RELAYED: ReadonlySet<unknown> = new Set<EventType>(['status', 'command', 'twin'])

/** What the events of the cluster need. */
export interface ClusterEventsOptions {
  readonly bus: ClusterBus
  readonly nodeId: string
  /** This node's event bus, which its streams read. */
  readonly events: EventBus
  /** `FLEETGATE_MQTT_FORMAT`: how the uplink encodes telemetry on the shared broker. */
  readonly format: MqttFormat
  /** Whether `device`'s session is on this node (its telemetry events are this node's own). */
  readonly here: (device: string) => boolean
  readonly log: Pick<Logger, 'debug'>
}

/**
 * Every node's events on every node's streams (docs/rest.md, docs/cluster.md). Status, command and twin events
 * are few: each node relays its own on `fleetgate-cluster/events/{nodeId}` (QoS 0: live news, kept
 * for nobody; one JSON array per turn of the event loop) and takes the others'. Telemetry is many: it is on the shared broker already (the
 * uplink mirrors `fleetgate/devices/{id}/telemetry`), so a node subscribes to it only for the
 * devices its streams name, and takes it only while the device's session is elsewhere. Events
 * are live news: what happens while the broker is away, or while a device moves, may be missed.
 */
export class ClusterEvents {
  readonly #options: ClusterEventsOptions
  readonly #codec: ReturnType<typeof getCodec>
  /** Events of this turn, relayed together at its end: a connect storm's statuses cost a message a turn. */
  #pending: Array<{ readonly type: EventType; readonly device: string; readonly data: unknown }> = []

  constructor(options: ClusterEventsOptions) {
    this.#options = options
    this.#codec = getCodec(options.format)
    options.bus.subscribe(EVENTS_FILTER)
    options.events.watchNamed((device, named) => {
      if (named) options.bus.subscribe(telemetryTopic(device))
      else options.bus.unsubscribe(telemetryTopic(device))
    })
  }

  /** Relays an event of this node to the others (telemetry excepted: see the class), with the others of its turn. */
  relay<T extends EventType>(type: T, device: string, payload: HubEvents[T]): void {
    if (!RELAYED.has(type)) return
    if (this.#pending.length === 0) setImmediate(() => this.#flush())
    this.#pending.push({ type, device, data: payload })
  }

  #flush(): void {
    const events = this.#pending
    this.#pending = []
    this.#options.bus.publish(eventsTopic(this.#options.nodeId), JSON.stringify(events))
  }

  /** A message of the bus on a topic other than the node's own: another node's event, or a device's telemetry. */
  received(topic: string, payload: Buffer): void {
    const { events, nodeId, here, log } = this.#options
    const levels = topic.split('/')
    if (levels[0] === CLUSTER_TOPIC_ROOT) {
      if (levels[1] !== 'events' || levels[2] === nodeId) return
      for (const event of decodeEvents(payload)) {
        if (event === undefined) log.debug({ topic }, 'cluster: an event that is not one was dropped')
        else events.publish(event.type, event.device, event.data as HubEvents[typeof event.type])
      }
      return
    }
    // fleetgate/devices/{id}/telemetry, as the uplink of the device's node mirrored it.
    const device = levels[2]
    if (device === undefined || !DEVICE_ID_PATTERN.test(device) || here(device)) return
    const decoded = this.#codec.decode(payload)
    if (decoded.ok && typeof decoded.value === 'object' && decoded.value !== null) events.publish('telemetry', device, decoded.value as TelemetryMessage)
  }
}

type RelayedEvent = { type: 'status' | 'command' | 'twin'; device: string; data: object }

/** A node's relayed events (a JSON array), each checked field by field: undefined for one that is not an event. */
function decodeEvents(payload: Buffer): Array<RelayedEvent | undefined> {
  let value: unknown
  try {
    value = JSON.parse(payload.toString('utf8'))
  } catch {
    return [undefined]
  }
  return Array.isArray(value) ? value.map(decodeEvent) : [undefined]
}

/** One relayed event, checked field by field: `{type, device, data}`. */
function decodeEvent(value: unknown): RelayedEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { type, device, data } = value as Record<string, unknown>
  if (!RELAYED.has(type) || typeof device !== 'string' || !DEVICE_ID_PATTERN.test(device) || typeof data !== 'object' || data === null) return undefined
  return { type: type as 'status' | 'command' | 'twin', device, data }
}
