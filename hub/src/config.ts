import { hostname } from 'node:os'
import { BridgeError, DEFAULT_MAX_PACKET_BYTES, parseUplinkUrl } from '@fleetgate/bridge'
import { HubError } from './errors.js'
import { parseDurationMs } from './validate.js'

/**
 * Bounds of the embedded broker's connections (additions to docs/configuration.md's table; docs/security.md
 * says what each abuse gets back).
 */
export interface MqttLimits {
  /** `FLEETGATE_MQTT_MAX_CONNECT_PACKET`: largest remaining length of a connection's first packet (its CONNECT), in bytes; default 4096. */
  readonly maxConnectPacketBytes: number
  /** `FLEETGATE_MQTT_MAX_PACKET`: largest remaining length of any later packet, in bytes; default 135168 (a 128 KiB command payload, its topic and headers). */
  readonly maxPacketBytes: number
  /** `FLEETGATE_MQTT_MAX_UNAUTHENTICATED`: connections at once whose CONNECT is not accepted yet; default 128. */
  readonly maxUnauthenticated: number
  /** `FLEETGATE_MQTT_CONNECT_SEC`: time from accept to an accepted CONNECT, in seconds; default 10. */
  readonly connectTimeoutSec: number
  /** `FLEETGATE_MQTT_MAX_BACKLOG`: bytes queued for one client beyond which it is disconnected at once; default 67108864 (64 MiB). */
  readonly maxBacklogBytes: number
  /** `FLEETGATE_MQTT_SOFT_BACKLOG`: bytes queued for one client that it may exceed only for `softBacklogSec`; default 1048576 (1 MiB). */
  readonly softBacklogBytes: number
  /** `FLEETGATE_MQTT_SOFT_BACKLOG_SEC`: how long a client may stay over the soft backlog, in seconds; default 10. */
  readonly softBacklogSec: number
}

/** The embedded telemetry history's bounds (docs/configuration.md, docs/telemetry.md). */
export interface HistoryConfig {
  /** `FLEETGATE_HISTORY_RETENTION`: how long readings are kept, by their `ts`, in ms; default 7 days. */
  readonly retentionMs: number
  /** `FLEETGATE_HISTORY_MAX_BYTES`: the history's size bound, oldest readings first out; default 1 GiB. */
  readonly maxBytes: number
}

/** The validated, frozen hub configuration (docs/configuration.md). */
export interface HubConfig {
  /** Address of the device + REST listener; default `0.0.0.0`. */
  readonly host: string
  /** Port of the device + REST listener, 0 = any free port; default 8080. */
  readonly port: number
  /** PEM certificate and key; TLS is on when both are set. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined
  /** Embedded storage directory; default `./.fleetgate`. */
  readonly dataDir: string
  /** Admin token from the environment; when undefined one is generated and kept in the data dir. */
  readonly adminToken: string | undefined
  /** JSON file of extra operator tokens, or undefined. */
  readonly tokensFile: string | undefined
  /** InfluxDB 1.x base URL, or undefined when unset or `off` (docs/configuration.md v2: no InfluxDB by default). */
  readonly influxUrl: string | undefined
  /** InfluxDB database; default `fleetgate`. */
  readonly influxDb: string
  /** Embedded MQTT broker address; default `127.0.0.1`. */
  readonly mqttHost: string
  /** Embedded MQTT broker port, 0 = any free port, undefined = broker `off`; default 1883. */
  readonly mqttPort: number | undefined
  /** Payload encoding on MQTT; default `json`. */
  readonly mqttFormat: 'json' | 'cbor'
  /** External broker to bridge with, or undefined. */
  readonly mqttUplink: string | undefined
  /** Bounds of the broker's connections. */
  readonly mqttLimits: MqttLimits
  /** Sustained frames per second per device (burst = 2x); default 100. */
  readonly deviceRatePerSec: number
  /** Largest device frame in bytes; default 65536. */
  readonly maxFrameBytes: number
  /** A connection with no traffic for this long is closed, in seconds; default 60. */
  readonly idleTimeoutSec: number
  /** Spool quota in bytes; default 1 GiB. */
  readonly spoolMaxBytes: number
  /** The embedded telemetry history (docs/telemetry.md); undefined when `FLEETGATE_HISTORY=off`. */
  readonly history: HistoryConfig | undefined
  /**
   * `FLEETGATE_POSTGRES_URL`: the PostgreSQL of cluster mode (docs/cluster.md), which then holds the
   * registry, commands, fan-outs and audit (the spool stays in the data dir); undefined (default):
   * one node on its embedded store.
   */
  readonly postgresUrl: string | undefined
  /** `FLEETGATE_NODE_ID`: this node's name in cluster mode; default the host name and the port, `host-8080`. */
  readonly nodeId: string
  /** Log level (an addition to the contract's table); default `info`. */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
}

/** uWS's idle timer allows at most 960 s, and the hub adds one 4 s tick (see device-endpoint.ts). */
const MAX_IDLE_SEC = 956

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** An InfluxDB database name the hub accepts: safe unquoted in InfluxQL and in a URL query. */
const INFLUX_DB_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

type Env = Readonly<Record<string, string | undefined>>

const HOSTNAME = /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)$/

function fail(name: string, accepts: string, value: string): never {
  throw new HubError('HUB_ERR_CONFIG', `${name}=${JSON.stringify(value)} is invalid: ${name} accepts ${accepts}`)
}

function text(env: Env, name: string, fallback: string): string {
  const value = env[name]
  return value === undefined || value === '' ? fallback : value
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name]
  return value === undefined || value === '' ? undefined : value
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name)
  if (raw === undefined) return fallback
  if (!/^\d+$/.test(raw)) fail(name, `a whole number from ${min} to ${max}`, raw)
  const value = Number(raw)
  if (value < min || value > max) fail(name, `a whole number from ${min} to ${max}`, raw)
  return value
}

function host(env: Env, name: string, fallback: string): string {
  const value = text(env, name, fallback)
  if (!HOSTNAME.test(value)) fail(name, 'an IP address or host name', value)
  return value
}

function httpUrl(env: Env, name: string): string | undefined {
  const value = optional(env, name)
  if (value === undefined || value === 'off') return undefined
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {
    url = undefined
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    fail(name, 'an http:// or https:// URL, or "off"', value)
  }
  return value.replace(/\/+$/, '')
}

/** Shortest and longest `FLEETGATE_HISTORY_RETENTION`: 1 s (tests of retention) to 3,650 days. */
const MIN_RETENTION_MS = 1000
const MAX_RETENTION_MS = 3650 * 86_400_000

function duration(env: Env, name: string, fallback: string, minMs: number, maxMs: number): number {
  const raw = text(env, name, fallback)
  const ms = parseDurationMs(raw)
  if (ms === undefined || ms < minMs || ms > maxMs) fail(name, 'a duration from 1s to 3650d: a whole number and one of s, m, h, d (e.g. 7d)', raw)
  return ms
}

/** docs/configuration.md: a node id. */
const NODE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/

/** The default node id: the host name (its characters outside the pattern made `-`) and the port, within 64 characters. */
export function defaultNodeId(host: string, port: number): string {
  const suffix = `-${port}`
  const name = host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64 - suffix.length)
  return `${name === '' ? 'node' : name}${suffix}`
}

/**
 * A PostgreSQL connection URL: `postgres://` or `postgresql://`, with a host (or a `host` query
 * parameter, for a unix socket directory). An error shows the URL without its password.
 */
function postgresUrl(env: Env, name: string): string | undefined {
  const value = optional(env, name)
  if (value === undefined) return undefined
  const accepts = 'a postgres://user:password@host:port/database URL (or postgresql://)'
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return fail(name, accepts, '<not a URL>')
  }
  if (url.password !== '') url.password = '***'
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') fail(name, accepts, url.href)
  if (url.hostname === '' && !url.searchParams.has('host')) fail(name, `${accepts} with a host`, url.href)
  return value
}

/**
 * Reads the hub's configuration from the environment (docs/configuration.md).
 * @throws HubError `HUB_ERR_CONFIG`, naming the variable and what it accepts.
 */
export function loadConfig(env: Env = process.env): HubConfig {
  const certFile = optional(env, 'FLEETGATE_TLS_CERT')
  const keyFile = optional(env, 'FLEETGATE_TLS_KEY')
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const missing = certFile === undefined ? 'FLEETGATE_TLS_CERT' : 'FLEETGATE_TLS_KEY'
    fail(missing, 'a PEM file path, set together with FLEETGATE_TLS_CERT and FLEETGATE_TLS_KEY', '')
  }

  const adminToken = optional(env, 'FLEETGATE_ADMIN_TOKEN')
  if (adminToken !== undefined && (adminToken.length < 16 || !/^[\x21-\x7e]+$/.test(adminToken))) {
    fail('FLEETGATE_ADMIN_TOKEN', 'at least 16 printable characters without spaces', '<redacted>')
  }

  const mqttPortRaw = text(env, 'FLEETGATE_MQTT_PORT', '1883')
  const mqttPort = mqttPortRaw === 'off' ? undefined : integer(env, 'FLEETGATE_MQTT_PORT', 1883, 0, 65535)

  const mqttFormat = text(env, 'FLEETGATE_MQTT_FORMAT', 'json')
  if (mqttFormat !== 'json' && mqttFormat !== 'cbor') fail('FLEETGATE_MQTT_FORMAT', '"json" or "cbor"', mqttFormat)

  const mqttUplink = optional(env, 'FLEETGATE_MQTT_UPLINK')
  if (mqttUplink !== undefined) {
    // The bridge owns the rules of an uplink URL; its message names the variable and never echoes the password.
    try {
      parseUplinkUrl(mqttUplink)
    } catch (cause) {
      if (!(cause instanceof BridgeError)) throw cause
      throw new HubError('HUB_ERR_CONFIG', cause.message, { cause })
    }
  }

  const postgres = postgresUrl(env, 'FLEETGATE_POSTGRES_URL')
  if (postgres !== undefined && mqttUplink === undefined) {
    // docs/cluster.md: the nodes of a cluster talk to each other through the broker they share.
    throw new HubError(
      'HUB_ERR_CONFIG',
      'FLEETGATE_MQTT_UPLINK is required when FLEETGATE_POSTGRES_URL is set (cluster mode, docs/cluster.md): ' +
        'FLEETGATE_MQTT_UPLINK accepts the mqtt://user:pass@host:port of the MQTT broker that every node shares',
    )
  }
  const port = integer(env, 'FLEETGATE_PORT', 8080, 0, 65535)
  const nodeId = text(env, 'FLEETGATE_NODE_ID', defaultNodeId(hostname(), port))
  if (!NODE_ID_PATTERN.test(nodeId)) fail('FLEETGATE_NODE_ID', '1 to 64 of A-Z a-z 0-9 _ . -', nodeId)

  // docs/configuration.md v2: the history is on by default exactly when nothing else keeps telemetry.
  const influxUrl = httpUrl(env, 'FLEETGATE_INFLUX_URL')
  const historyDefault = influxUrl === undefined && postgres === undefined ? 'on' : 'off'
  const historySwitch = text(env, 'FLEETGATE_HISTORY', historyDefault)
  if (historySwitch !== 'on' && historySwitch !== 'off') fail('FLEETGATE_HISTORY', '"on" or "off"', historySwitch)
  const history: HistoryConfig | undefined =
    historySwitch === 'off'
      ? undefined
      : Object.freeze({
          retentionMs: duration(env, 'FLEETGATE_HISTORY_RETENTION', '7d', MIN_RETENTION_MS, MAX_RETENTION_MS),
          maxBytes: integer(env, 'FLEETGATE_HISTORY_MAX_BYTES', 1_073_741_824, 1_048_576, Number.MAX_SAFE_INTEGER),
        })

  const maxBacklogBytes = integer(env, 'FLEETGATE_MQTT_MAX_BACKLOG', 67_108_864, 16_384, 1_073_741_824)

  const logLevel = text(env, 'FLEETGATE_LOG_LEVEL', 'info')
  const level = LOG_LEVELS.find((l) => l === logLevel)
  if (level === undefined) fail('FLEETGATE_LOG_LEVEL', LOG_LEVELS.join(', '), logLevel)

  const config: HubConfig = {
    host: host(env, 'FLEETGATE_HOST', '0.0.0.0'),
    port,
    tls: certFile !== undefined && keyFile !== undefined ? Object.freeze({ certFile, keyFile }) : undefined,
    dataDir: text(env, 'FLEETGATE_DATA_DIR', './.fleetgate'),
    adminToken,
    tokensFile: optional(env, 'FLEETGATE_TOKENS_FILE'),
    influxUrl,
    influxDb: text(env, 'FLEETGATE_INFLUX_DB', 'fleetgate'),
    mqttHost: host(env, 'FLEETGATE_MQTT_HOST', '127.0.0.1'),
    mqttPort,
    mqttFormat,
    mqttUplink,
    mqttLimits: Object.freeze({
      maxConnectPacketBytes: integer(env, 'FLEETGATE_MQTT_MAX_CONNECT_PACKET', 4096, 64, 1_048_576),
      maxPacketBytes: integer(env, 'FLEETGATE_MQTT_MAX_PACKET', DEFAULT_MAX_PACKET_BYTES, 1024, 268_435_455),
      maxUnauthenticated: integer(env, 'FLEETGATE_MQTT_MAX_UNAUTHENTICATED', 128, 1, 1_000_000),
      connectTimeoutSec: integer(env, 'FLEETGATE_MQTT_CONNECT_SEC', 10, 1, 600),
      maxBacklogBytes,
      softBacklogBytes: integer(env, 'FLEETGATE_MQTT_SOFT_BACKLOG', Math.min(1_048_576, maxBacklogBytes), 16_384, maxBacklogBytes),
      softBacklogSec: integer(env, 'FLEETGATE_MQTT_SOFT_BACKLOG_SEC', 10, 1, 3600),
    }),
    deviceRatePerSec: integer(env, 'FLEETGATE_DEVICE_RATE', 100, 1, 1_000_000),
    maxFrameBytes: integer(env, 'FLEETGATE_MAX_FRAME', 65_536, 256, 16 * 1024 * 1024),
    idleTimeoutSec: integer(env, 'FLEETGATE_IDLE_SEC', 60, 8, MAX_IDLE_SEC),
    spoolMaxBytes: integer(env, 'FLEETGATE_SPOOL_MAX_BYTES', 1_073_741_824, 1_048_576, Number.MAX_SAFE_INTEGER),
    history,
    postgresUrl: postgres,
    nodeId,
    logLevel: level,
  }
  if (!INFLUX_DB_PATTERN.test(config.influxDb)) {
    fail('FLEETGATE_INFLUX_DB', 'a database name of 1 to 64 letters, digits, "_" or "-"', config.influxDb)
  }
  return Object.freeze(config)
}
