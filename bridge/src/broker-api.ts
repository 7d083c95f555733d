import type { Duplex } from 'node:stream'
import type { Reading } from '@fleetgate/device-sdk/wire'
import type { Actor, RefusalReason } from './acl.js'
import type { DecodeFailure, MqttFormat } from './codec.js'
import type { ConnectionLimitsConfig, CutReason } from './connection-limits.js'
import type { BridgeError } from './errors.js'
import type { Uplink, UplinkConfig } from './uplink.js'

/** Where a command came from: a client of the embedded broker, or the external broker. */
export type CommandSource = 'mqtt' | 'uplink'

/** docs/mqtt.md telemetry payload: one stored frame of a device, its readings as the device sent them (a `tm` stamped with the receive time when it had no `ts`). */
export interface TelemetryMessage {
  readonly device: string
  /** The frame's `s`. */
  readonly seq: number
  readonly readings: readonly Reading[]
}

/** docs/mqtt.md status payload: whether a device is connected, as of `at` (ISO 8601). */
export interface StatusMessage {
  readonly device: string
  readonly online: boolean
  readonly at: string
}

/** A refused connection, publish or subscription, for the hub's log. */
export interface Refusal {
  readonly kind: 'connect' | 'publish' | 'subscribe'
  readonly reason: RefusalReason
  /** The MQTT client id. */
  readonly clientId: string
  /** The token name, when the client authenticated. */
  readonly actor: string | undefined
  /** The topic or filter refused (none for a connection). */
  readonly topic: string | undefined
}

/** A connection the broker cut of its own accord (a limit, not an ACL refusal), for the hub's log. */
export interface Disconnection {
  readonly reason: CutReason
  /** The MQTT client id; empty before the CONNECT was read. */
  readonly clientId: string
  /** The token name, when the client authenticated. */
  readonly actor: string | undefined
  /** The declared remaining length (`packet_too_large`) or the bytes queued for the client (`backlog_*`); else 0. */
  readonly bytes: number
}

/** Options of `createBroker`, the connection limits included; unknown keys are refused. */
export interface BrokerOptions extends ConnectionLimitsConfig {
  /** The operator of a token (the MQTT password; the user name is ignored), or undefined. Synchronous. */
  readonly authenticate: (password: string) => Actor | undefined
  /** A decoded command from a local client (`mqtt`) or the uplink; the hub validates and runs it. Must not throw. */
  readonly onCommand: (deviceId: string, payload: unknown, actor: Actor, source: CommandSource) => void
  /** A command whose payload does not decode; it was refused and went nowhere. Default: counted only. */
  readonly onInvalidCommand?: (deviceId: string, reason: DecodeFailure, actor: Actor, source: CommandSource) => void
  /** A refused connection, publish or subscription. Default: counted only. */
  readonly onRefused?: (refusal: Refusal) => void
  /** A connection cut by a limit (see `CutReason`), once per connection. Default: counted only. */
  readonly onDisconnect?: (disconnection: Disconnection) => void
  /** Errors that have no caller to throw to (uplink, aedes, a throwing callback). Default: ignored. */
  readonly onError?: (err: BridgeError) => void
  /** The uplink connected (true) or was lost (false). Default: none. */
  readonly onUplinkConnectionChange?: (connected: boolean) => void
  /** `FLEETGATE_MQTT_FORMAT`: payload encoding; default `json`. */
  readonly format?: MqttFormat
  /** `FLEETGATE_MQTT_UPLINK` and its tuning; default none (no uplink). */
  readonly uplink?: UplinkConfig
}

/** Broker figures for `/metrics`; counters only grow. */
export interface BrokerStats {
  /** Connected MQTT clients now. */
  readonly clients: number
  /** Connections whose CONNECT is not accepted yet, now. */
  readonly unauthenticated: number
  /** Bytes queued for all clients together, now. */
  readonly backlogBytes: number
  /** Bytes queued for the one client with the most, now. */
  readonly largestBacklogBytes: number
  readonly publishedTelemetry: number
  readonly publishedStatus: number
  readonly publishedResults: number
  /** Twin publishes, clearings included. */
  readonly publishedTwins: number
  /** Hub publishes taken and not yet written to every subscriber's stream, now: at most one turn's (see `Broker.pendingPublishes`). */
  readonly pendingPublishes: number
  readonly refusedConnects: number
  readonly refusedPublishes: number
  readonly refusedSubscribes: number
  /** Commands handed to `onCommand` from local clients. */
  readonly mqttCommands: number
  /** Commands handed to `onCommand` from the uplink. */
  readonly uplinkCommands: number
  /** Commands whose payload did not decode (both sources). */
  readonly invalidCommands: number
  /** Connections cut by a limit, by reason. */
  readonly disconnects: Readonly<Record<CutReason, number>>
}

/** The embedded MQTT broker of docs/mqtt.md; the hub owns the listener and hands over each connection. */
export interface Broker {
  /** Serves one accepted connection (a TCP socket, or a WebSocket stream) under the connection limits. After `close`, destroys it. */
  handle(stream: Duplex): void
  /** Publishes a durably stored frame on `fleetgate/devices/{id}/telemetry`, QoS 1. Never waits, never drops; skipped while no client is connected and there is no uplink. */
  publishTelemetry(deviceId: string, message: TelemetryMessage): void
  /** Publishes a device's status on `fleetgate/devices/{id}/status`, QoS 1, retained. Never waits, never drops. */
  publishStatus(deviceId: string, message: StatusMessage): void
  /**
   * Publishes a device's twin on `fleetgate/devices/{id}/twin`, QoS 1, retained (docs/twins.md); with
   * `twin` undefined, an empty retained payload, which clears the topic (a deleted device). Never
   * waits, never drops.
   */
  publishTwin(deviceId: string, twin: object | undefined): void
  /** Publishes a finished command's record on `fleetgate/devices/{id}/commands/{cmdId}`, QoS 1. Never waits, never drops. */
  publishCommandResult(deviceId: string, cmdId: string, record: object): void
  /** Connected MQTT clients now. */
  readonly clients: number
  /**
   * Hub publishes taken and not yet written to every subscriber's stream, now (cheap: no
   * snapshot). Delivery is synchronous and each client's packets go out in one write per turn,
   * so this is at most one turn's publishes (and fewer than 1,024), and 0 between turns. No single
   * subscriber holds it up.
   */
  readonly pendingPublishes: number
  /** The uplink, when `uplink` was given. */
  readonly uplink: Uplink | undefined
  /** A snapshot of the figures. */
  stats(): BrokerStats
  /** Disconnects every client and the uplink, then closes aedes. Idempotent. */
  close(): Promise<void>
}
