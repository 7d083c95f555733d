// Cluster mode (docs/cluster.md): this node's identity and heartbeat, who holds each device's session,
// the node-to-node bus over the shared MQTT broker, and the sweeps that make good what the bus loses.
import type { MqttFormat } from '@fleetgate/bridge'
import type { CommandRouting } from '../commands/index.js'
import type { Peer, Presence, SessionPlace, Sessions } from '../devices/index.js'
import type { EventBus, EventType, HubEvents } from '../events/index.js'
import type { Logger } from '../logger.js'
import type { ClusterStore, CommandRecord, NodeRecord, SessionOwner } from '../store/index.js'
import { TurnBatch } from '../turn-batch.js'
import { tune } from '../tuning.js'
import { ClusterBus, type BusCounters } from './bus.js'
import { ClusterEvents } from './events.js'
import { Ownership } from './ownership.js'

export { CLUSTER_TOPIC_ROOT, decodeBusMessage, nodeTopic, type BusCounters, type BusMessage } from './bus.js'

/** The cluster runtime's tuning knobs; defaults in CLUSTER_DEFAULTS. */
export interface ClusterTuning {
  /** How often a node renews its heartbeat, in ms; default 2,000 (a node is dead after POSTGRES_DEFAULTS.nodeDeadAfterMs, 10 s). */
  readonly heartbeatMs: number
  /**
   * How often a node reads from PostgreSQL what the bus may have lost (takeovers, queued commands,
   * command ends, dead nodes' sessions and commands), in ms; default 1,000: the most a lost message delays.
   */
  readonly sweepMs: number
  /** How long `GET /nodes` keeps listing a node that stopped beating without leaving (a crash), in ms; default 86,400,000 (a day). */
  readonly nodesRetainMs: number
  /** Dead nodes' session owners cleared by one sweep at most; default 1,000. */
  readonly releaseBatch: number
}

/** The defaults of ClusterTuning. */
export const CLUSTER_DEFAULTS: ClusterTuning = Object.freeze({ heartbeatMs: 2000, sweepMs: 1000, nodesRetainMs: 86_400_000, releaseBatch: 1000 })

/** What the cluster runtime is built from. */
export interface ClusterOptions {
  readonly store: ClusterStore
  readonly nodeId: string
  /** The hub's version, in the node's row. */
  readonly version: string
  /** `FLEETGATE_MQTT_UPLINK`: the broker the nodes share, with their own credentials. */
  readonly brokerUrl: string
  readonly sessions: Pick<Sessions, 'get' | 'size' | 'replace'>
  /** This node's event bus: other nodes' events are published on it (docs/rest.md: every node's events on every stream). */
  readonly events: EventBus
  /** `FLEETGATE_MQTT_FORMAT`, as telemetry is encoded on the shared broker. */
  readonly format: MqttFormat
  readonly log: Logger
  readonly counters: BusCounters
  /** Another node asks this one to deliver `device`'s queued commands. */
  readonly deliver: (peer: Peer) => void
  /** Another node changed a command a call here waits for. */
  readonly commandChanged: (record: CommandRecord) => void
  /** Another node stored a command as sent by this one: write it to the session here. */
  readonly sendFor: (record: CommandRecord) => void
  /** Another node changed the desired twin of a device whose session is here. */
  readonly twinChanged: (peer: Peer) => void
  /** Each sweep, after the session checks: commands and twins read from the store what the bus may have lost. */
  readonly sweep: (here: readonly string[]) => Promise<void>
  /** Devices whose sessions a dead node held, now cleared by this node (and by no other): they read offline. */
  readonly released: (devices: readonly string[]) => void
  /** Tuning knobs; defaults in CLUSTER_DEFAULTS. */
  readonly tuning?: Partial<ClusterTuning>
}

/** This node's part of the cluster. */
export interface Cluster {
  readonly nodeId: string
  /** Where any device's session is, on any node. */
  readonly presence: Presence
  /** How commands reach the node that holds a device's session. */
  readonly routing: CommandRouting
  /** Whether the bus is connected now (`/readyz`: broker). */
  readonly busConnected: boolean
  /** Relays an event of this node to the other nodes' streams. */
  relay<T extends EventType>(type: T, device: string, payload: HubEvents[T]): void
  /** Tells the node that holds `device`'s session, if another, that its desired twin changed. */
  twinChanged(device: string): void
  /** A session opened here (claims it), and one that left this node's table. */
  opened(peer: Peer): void
  closed(peer: Peer): void
  /** Every node that beat within a day, alive or not (docs/cluster.md, `GET /nodes`). */
  nodes(): Promise<NodeRecord[]>
  /** Stops the loops, leaves (a clean stop: this node's row goes), and disconnects the bus. */
  stop(): Promise<void>
}

/**
 * Joins the cluster: registers this node (forgetting its previous run's sessions), connects the
 * bus, and starts the heartbeat and the sweep. The bus connects in the background: while the broker
 * is away, calls that need another node fail fast and `/readyz` says so.
 * @throws HubError `HUB_ERR_STORE_UNAVAILABLE` when PostgreSQL cannot be reached to register.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { store, nodeId, log, sessions } = options
  const tuning = tune('Cluster', CLUSTER_DEFAULTS, options.tuning)
  await store.join(Date.now(), options.version)
  let alive = new Set<string>([nodeId])
  let stopped = false

  const bus: ClusterBus = new ClusterBus({
    url: options.brokerUrl,
    nodeId,
    counters: options.counters,
    log,
    onTopic: (topic, payload) => events.received(topic, payload),
    handlers: {
      takeover: (message) => ownership.takeover(message.device, message.epoch),
      deliver: (message) => {
        const peer = sessions.get(message.device)
        if (peer !== undefined) options.deliver(peer)
      },
      command: (message) => options.commandChanged(message.record),
      send: (message) => options.sendFor(message.record),
      twin: (message) => {
        const peer = sessions.get(message.device)
        if (peer !== undefined) options.twinChanged(peer)
      },
    },
  })
  const events = new ClusterEvents({ bus, nodeId, events: options.events, format: options.format, here: (device) => sessions.get(device) !== undefined, log })
  const ownership = new Ownership({
    store,
    nodeId,
    replace: (peer) => sessions.replace(peer),
    tell: (node, device, epoch) => bus.send(node, { t: 'takeover', device, epoch }),
    alive: (node) => alive.has(node),
    log,
  })
  const owners = new TurnBatch<string, SessionOwner>((devices) => store.owners(devices))

  const presence: Presence = {
    clustered: true,
    async find(devices) {
      const found = new Map<string, SessionPlace>()
      const elsewhere: string[] = []
      for (const id of devices) {
        const peer = sessions.get(id)
        if (peer !== undefined) found.set(id, { node: nodeId, connectedAt: peer.connectedAt, lastSeenAt: peer.lastSeenAt })
        else elsewhere.push(id)
      }
      if (elsewhere.length === 0) return found
      // A node's own rows without a session here are sessions ending: their releases are under way.
      const stored = await store.owners(elsewhere)
      const beats = new Map((await store.nodes(tuning.nodesRetainMs)).map((node) => [node.id, node.lastSeenAt]))
      for (const [id, owner] of stored) {
        if (owner.node === undefined || owner.node === nodeId || !owner.alive) continue
        found.set(id, { node: owner.node, connectedAt: owner.connectedAt ?? 0, lastSeenAt: beats.get(owner.node) ?? owner.connectedAt ?? 0 })
      }
      return found
    },
  }

  const routing: CommandRouting = {
    nodeId,
    get reachable() {
      return bus.connected
    },
    async locate(device) {
      const owner = await owners.get(device)
      return owner?.node !== undefined && owner.node !== nodeId && owner.alive ? owner.node : undefined
    },
    deliver: (node, device) => bus.send(node, { t: 'deliver', device }),
    send: (node, record) => bus.send(node, { t: 'send', record }),
    notify: (node, record) => void bus.send(node, { t: 'command', record }),
  }

  /** Runs `work` now and again `everyMs` after each run ends, until stopped; a failure is logged, never fatal. */
  const loop = (what: string, everyMs: number, work: () => Promise<void>): { stop(): void } => {
    let timer: ReturnType<typeof setTimeout> | undefined
    const run = (): void => {
      work()
        .catch((err: unknown) => log.warn({ err }, `cluster: ${what} failed; trying again`))
        .finally(() => {
          if (!stopped) timer = setTimeout(run, everyMs)
        })
    }
    timer = setTimeout(run, everyMs)
    return { stop: () => clearTimeout(timer) }
  }
  const heartbeat = loop('heartbeat', tuning.heartbeatMs, async () => {
    alive = new Set(await store.beat(sessions.size))
  })
  const sweep = loop('sweep', tuning.sweepMs, async () => {
    await ownership.check()
    const released = await store.releaseDead(tuning.releaseBatch)
    if (released.length > 0) options.released(released)
    await options.sweep(ownership.devices())
  })

  return {
    nodeId,
    presence,
    routing,
    get busConnected() {
      return bus.connected
    },
    relay: (type, device, payload) => events.relay(type, device, payload),
    twinChanged(device) {
      routing.locate(device).then(
        (node) => node !== undefined && bus.send(node, { t: 'twin', device }),
        (err: unknown) => log.debug({ err, deviceId: device }, 'cluster: the node of a changed twin not found; its sweep sends it'),
      )
    },
    opened: (peer) => ownership.opened(peer),
    closed: (peer) => ownership.closed(peer),
    nodes: () => store.nodes(tuning.nodesRetainMs),
    async stop() {
      stopped = true
      heartbeat.stop()
      sweep.stop()
      await bus.close()
      await store.leave().catch((err: unknown) => log.warn({ err }, 'cluster: the node row was not removed; it reads as dead after its heartbeat ends'))
    },
  }
}
