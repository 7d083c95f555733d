import type { StatusMessage, TelemetryMessage } from '@fleetgate/bridge'
import type { TwinView } from '../twins/index.js'

/** The live event types (docs/rest.md `GET /events`), in the order the contract names them. */
export const EVENT_TYPES = ['status', 'telemetry', 'command', 'twin'] as const
/** One of EVENT_TYPES. */
export type EventType = (typeof EVENT_TYPES)[number]

/**
 * Each event type's payload: exactly what MQTT carries for it (docs/rest.md, docs/mqtt.md, docs/twins.md), sent as JSON
 * whatever `FLEETGATE_MQTT_FORMAT` is.
 */
export interface HubEvents {
  /** `fleetgate/devices/{id}/status`: `{device, online, at}`. */
  readonly status: StatusMessage
  /** `fleetgate/devices/{id}/telemetry`: `{device, seq, readings}`, once a frame is durably stored. */
  readonly telemetry: TelemetryMessage
  /** `fleetgate/devices/{id}/commands/{cmdId}`: the command record (docs/rest.md), at every change of its status. */
  readonly command: Readonly<Record<string, unknown>>
  /** `fleetgate/devices/{id}/twin`: the twin as REST returns it (docs/twins.md), after every change. */
  readonly twin: TwinView
}

/** Who receives events: the types it asked for, the devices it named (undefined: every device), and where they go. */
export interface EventSubscriber {
  readonly types: ReadonlySet<EventType>
  /** Named devices; undefined for every device, which then gets no `telemetry` (docs/rest.md). */
  readonly devices: ReadonlySet<string> | undefined
  /** Takes one event, its payload as JSON text (shared by every subscriber); must not block. */
  deliver(type: EventType, json: string): void
}

/**
 * The hub's one in-process event bus: concerns publish what changed, the event streams subscribe.
 * Publishing costs a map lookup while nobody listens; a payload is turned into JSON once, however
 * many subscribers take it.
 */
export class EventBus {
  /** Subscribers of every device, by type (never `telemetry`). */
  readonly #everyDevice = new Map<EventType, Set<EventSubscriber>>(EVENT_TYPES.map((type) => [type, new Set()]))
  /** Subscribers that named a device, by device. */
  readonly #byDevice = new Map<string, Set<EventSubscriber>>()
  /** Told when a device gets its first naming subscriber (true) or loses its last (false). */
  readonly #namedWatchers: Array<(device: string, named: boolean) => void> = []

  /** Publishes one event about `device`. */
  publish<T extends EventType>(type: T, device: string, payload: HubEvents[T]): void {
    const every = this.#everyDevice.get(type) as Set<EventSubscriber>
    const named = this.#byDevice.get(device)
    if (every.size === 0 && named === undefined) return
    let json: string | undefined
    for (const subscriber of every) subscriber.deliver(type, (json ??= JSON.stringify(payload)))
    if (named === undefined) return
    for (const subscriber of named) if (subscriber.types.has(type)) subscriber.deliver(type, (json ??= JSON.stringify(payload)))
  }

  /**
   * Calls `watcher` when a device gets its first subscriber that names it, and when it loses its
   * last: in cluster mode, which devices' telemetry to take from the shared broker.
   */
  watchNamed(watcher: (device: string, named: boolean) => void): void {
    this.#namedWatchers.push(watcher)
  }

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(subscriber: EventSubscriber): () => void {
    if (subscriber.devices === undefined) {
      for (const type of subscriber.types) if (type !== 'telemetry') this.#everyDevice.get(type)?.add(subscriber)
    } else {
      for (const device of subscriber.devices) {
        let set = this.#byDevice.get(device)
        if (set === undefined) {
          set = new Set()
          this.#byDevice.set(device, set)
          for (const watcher of this.#namedWatchers) watcher(device, true)
        }
        set.add(subscriber)
      }
    }
    return () => {
      for (const set of this.#everyDevice.values()) set.delete(subscriber)
      for (const device of subscriber.devices ?? []) {
        const set = this.#byDevice.get(device)
        set?.delete(subscriber)
        if (set?.size !== 0) continue
        this.#byDevice.delete(device)
        for (const watcher of this.#namedWatchers) watcher(device, false)
      }
    }
  }
}
