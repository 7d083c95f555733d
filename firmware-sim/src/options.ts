// The simulator's options: one defaults object, validated eagerly, unknown keys refused, the
// result frozen and the caller's object left alone (STYLE: Options and configuration). The CLI
// turns argv into a SimOptionsInput (cli-args.ts); every error names the flag.
import { type KeyType } from '@fleetgate/device-sdk'
import { COMMAND_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import { optionError } from './errors.js'
import { MODEL_CHOICES, type ModelChoice } from './models.js'
import { MAX_LOCAL_ADDRESSES } from './parse.js'
import { isIP } from 'node:net'

/** What runFleet takes; only `hub` is required. Units are in the names; see SimOptions for defaults. */
export interface SimOptionsInput {
  hub: string
  token?: string | undefined
  devices?: number
  prefix?: string
  provision?: boolean
  fleet?: string
  keyType?: KeyType
  model?: ModelChoice
  rate?: number
  batch?: number
  durationMs?: number | undefined
  readings?: number | undefined
  connectRate?: number
  churnPercentPerMin?: number
  stormEveryMs?: number | undefined
  clockSkewMs?: number
  badFramesPercent?: number
  localAddresses?: readonly string[]
  commandRate?: number
  commands?: readonly string[]
  commandTimeoutMs?: number
  twinRate?: number
  verify?: boolean
  influxUrl?: string | undefined
  influxDb?: string
  verifyTimeoutMs?: number
  drainTimeoutMs?: number
  json?: string | undefined
  jsonl?: string | undefined
  snapshotEveryMs?: number
  statusEveryMs?: number | undefined
  seed?: number
  rebootDelayMs?: number
}

/** Validated options, defaults filled in. Frozen. */
export interface SimOptions {
  /**
   * The hub's base URL, http(s)://host:port (no trailing slash): a hub, or a balancer in front of a
   * cluster's nodes; devices use ws(s)://host:port/v1/connect. With a list, the first: REST goes there.
   */
  readonly hub: string
  /** Every hub of `--hub URL,URL,...` (one for a single URL): device i connects to hubs[i mod n]. */
  readonly hubs: readonly string[]
  /** Operator or admin token for provisioning (admin), commands (operator) and --verify (reader); default `$FLEETGATE_TOKEN`. */
  readonly token: string | undefined
  /** Simulated devices, 1 to 1,000,000; default 10. */
  readonly devices: number
  /** Device id prefix; ids are prefix + a 6-digit index (`sim-000001`); default `sim-`. */
  readonly prefix: string
  /** Create the devices missing from the fleet file through `POST /devices/bulk`; default false. */
  readonly provision: boolean
  /** The fleet file: device ids and keys (mode 0600); default `fleetgate-sim-fleet.json`. */
  readonly fleet: string
  /** Key type of devices created by --provision; default `hmac`. */
  readonly keyType: KeyType
  /** Device model: thermostat, meter, tracker, or mixed (by index, in turn); default mixed. */
  readonly model: ModelChoice
  /** Readings per second per device, fractions allowed, 0 for none; default 1. */
  readonly rate: number
  /** Readings per frame (one send call), 1 to 500; default 1. */
  readonly batch: number
  /** How long devices send, in ms, counted from the start; undefined: see `readings`, else until stopped. */
  readonly durationMs: number | undefined
  /** Readings per device, then stop; undefined: see `durationMs`. */
  readonly readings: number | undefined
  /** Devices started per second during the ramp-up; default 500. */
  readonly connectRate: number
  /** Percent of the connected devices whose connection is cut per minute, at random, 0 to 6000; default 0. */
  readonly churnPercentPerMin: number
  /** Every this many ms every device's connection is cut at once; default undefined (no storm). */
  readonly stormEveryMs: number | undefined
  /** Each device's clock is off by a fixed amount drawn from [-clockSkewMs, +clockSkewMs], up to 1 h; default 0. */
  readonly clockSkewMs: number
  /** Percent of frames followed by an invalid frame the hub must nak; default 0. */
  readonly badFramesPercent: number
  /** Source addresses for device connections, used in turn; default none (the OS picks). */
  readonly localAddresses: readonly string[]
  /** Commands per second sent through REST to random connected devices; default 0. */
  readonly commandRate: number
  /** Command names --command-rate draws from; default ping, get_config, set_setpoint, set_relay. */
  readonly commands: readonly string[]
  /** timeoutMs of each command; default 10000. */
  readonly commandTimeoutMs: number
  /** Desired twin changes per second through REST to random devices of the fleet, connected or not; default 0. */
  readonly twinRate: number
  /** After draining, compare stored points per device with what was acked; default false. */
  readonly verify: boolean
  /** Verify against this InfluxDB 1.x URL instead of the hub's telemetry API; default undefined. */
  readonly influxUrl: string | undefined
  /** InfluxDB database for --influx; default `fleetgate`. */
  readonly influxDb: string
  /** Longest wait, in ms, for stored points to match; default 60000. */
  readonly verifyTimeoutMs: number
  /** Longest wait, in ms, for acks after sending stops; default 30000. */
  readonly drainTimeoutMs: number
  /** Write the summary as JSON to this file; default undefined. */
  readonly json: string | undefined
  /** Append a snapshot as one JSON line to this file every `snapshotEveryMs`; default undefined. */
  readonly jsonl: string | undefined
  /** Interval of --jsonl snapshots, in ms; default 60000. */
  readonly snapshotEveryMs: number
  /** Interval of status output, in ms; undefined: 1 s on a TTY, 10 s otherwise. */
  readonly statusEveryMs: number | undefined
  /** Seed of every random choice, 0 to 2^32 - 1; default random (reported in the summary). */
  readonly seed: number
  /** How long a rebooting device stays away, in ms, when the command gives no delayMs; default 2000. */
  readonly rebootDelayMs: number
}

/** The default command names of --command-rate. */
export const DEFAULT_COMMANDS: readonly string[] = Object.freeze(['ping', 'get_config', 'set_setpoint', 'set_relay'])

/** The flag of each option, for error messages. */
export const FLAGS: Readonly<Record<keyof SimOptions, string>> = Object.freeze({
  hub: '--hub',
  hubs: '--hub',
  token: '--token',
  devices: '--devices',
  prefix: '--prefix',
  provision: '--provision',
  fleet: '--fleet',
  keyType: '--key-type',
  model: '--model',
  rate: '--rate',
  batch: '--batch',
  durationMs: '--duration',
  readings: '--readings',
  connectRate: '--connect-rate',
  churnPercentPerMin: '--churn',
  stormEveryMs: '--storm',
  clockSkewMs: '--clock-skew',
  badFramesPercent: '--bad-frames',
  localAddresses: '--local-address',
  commandRate: '--command-rate',
  commands: '--commands',
  commandTimeoutMs: '--command-timeout',
  twinRate: '--twin-rate',
  verify: '--verify',
  influxUrl: '--influx',
  influxDb: '--influx-db',
  verifyTimeoutMs: '--verify-timeout',
  drainTimeoutMs: '--drain-timeout',
  json: '--json',
  jsonl: '--jsonl',
  snapshotEveryMs: '--snapshot-every',
  statusEveryMs: '--status-every',
  seed: '--seed',
  rebootDelayMs: '--reboot-delay',
})

/** Largest --churn: every connected device cut once a second. */
export const MAX_CHURN_PERCENT_PER_MIN = 6000
/** Largest --clock-skew: with 1 h tokens, the hub still accepts a token from a clock 1 h behind (docs/protocol.md). */
export const MAX_CLOCK_SKEW_MS = 3_600_000
const DAY_MS = 86_400_000

/** Validates `input`; throws SimError SIM_ERR_OPTION naming the flag of the first bad option. */
export function resolveSimOptions(input: SimOptionsInput): SimOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) optionError('options', 'expected an object')
  for (const key of Object.keys(input)) {
    if (!(key in FLAGS)) optionError(key, 'unknown option')
  }
  const v = input
  const hubs = checkHubs(v.hub)
  const hub = hubs[0] as string
  const token = v.token ?? undefined
  if (token !== undefined && (typeof token !== 'string' || token === '' || /\s/.test(token))) optionError(FLAGS.token, 'expected a token without spaces')

  const devices = whole('devices', v.devices ?? 10, 1, 1_000_000)
  const prefix = v.prefix ?? 'sim-'
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]{0,57}$/.test(prefix)) optionError(FLAGS.prefix, 'expected 0 to 57 of A-Z a-z 0-9 _ - (device ids are at most 64 characters)')
  const provision = bool('provision', v.provision ?? false)
  const fleet = v.fleet ?? 'fleetgate-sim-fleet.json'
  if (typeof fleet !== 'string' || fleet === '') optionError(FLAGS.fleet, 'expected a file name')
  const keyType = v.keyType ?? 'hmac'
  if (keyType !== 'hmac' && keyType !== 'ed25519') optionError(FLAGS.keyType, 'expected hmac or ed25519')
  const model = v.model ?? 'mixed'
  if (!MODEL_CHOICES.includes(model)) optionError(FLAGS.model, `expected one of ${MODEL_CHOICES.join(', ')}`)

  const rate = num('rate', v.rate ?? 1, 0, 1000)
  const batch = whole('batch', v.batch ?? 1, 1, 500)
  const durationMs = v.durationMs === undefined ? undefined : num('durationMs', v.durationMs, 1, 30 * DAY_MS)
  const readings = v.readings === undefined ? undefined : whole('readings', v.readings, 1, 1_000_000_000)
  if (durationMs !== undefined && readings !== undefined) optionError(FLAGS.readings, `give ${FLAGS.durationMs} or ${FLAGS.readings}, not both`)
  if (readings !== undefined && rate === 0) optionError(FLAGS.readings, `needs a ${FLAGS.rate} above 0`)
  const connectRate = num('connectRate', v.connectRate ?? 500, 0.001, 1_000_000)

  const churnPercentPerMin = num('churnPercentPerMin', v.churnPercentPerMin ?? 0, 0, MAX_CHURN_PERCENT_PER_MIN)
  const stormEveryMs = v.stormEveryMs === undefined ? undefined : num('stormEveryMs', v.stormEveryMs, 100, 30 * DAY_MS)
  const clockSkewMs = num('clockSkewMs', v.clockSkewMs ?? 0, 0, MAX_CLOCK_SKEW_MS)
  const badFramesPercent = num('badFramesPercent', v.badFramesPercent ?? 0, 0, 100)
  const localAddresses = v.localAddresses ?? []
  if (!Array.isArray(localAddresses) || localAddresses.length > MAX_LOCAL_ADDRESSES || localAddresses.some((a) => typeof a !== 'string' || isIP(a) === 0)) {
    optionError(FLAGS.localAddresses, `expected up to ${MAX_LOCAL_ADDRESSES} IP addresses`)
  }

  const commandRate = num('commandRate', v.commandRate ?? 0, 0, 100_000)
  const commands = v.commands ?? DEFAULT_COMMANDS
  if (!Array.isArray(commands) || commands.length === 0 || commands.some((c) => typeof c !== 'string' || !COMMAND_ID_PATTERN.test(c))) {
    optionError(FLAGS.commands, 'expected a comma-separated list of command names (1 to 64 of A-Z a-z 0-9 _ . -)')
  }
  const commandTimeoutMs = whole('commandTimeoutMs', v.commandTimeoutMs ?? 10_000, 1, 3_600_000)
  const twinRate = num('twinRate', v.twinRate ?? 0, 0, 100_000)

  const verify = bool('verify', v.verify ?? false)
  const influxUrl = v.influxUrl ?? undefined
  if (influxUrl !== undefined) {
    if (!verify) optionError(FLAGS.influxUrl, `is where ${FLAGS.verify} looks; give ${FLAGS.verify} too`)
    if (typeof influxUrl !== 'string' || !/^https?:\/\/[^/]+\/?$/.test(influxUrl)) optionError(FLAGS.influxUrl, 'expected http(s)://host:port')
  }
  const influxDb = v.influxDb ?? 'fleetgate'
  if (typeof influxDb !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(influxDb)) optionError(FLAGS.influxDb, 'expected 1 to 64 of A-Z a-z 0-9 _ . -')
  const verifyTimeoutMs = num('verifyTimeoutMs', v.verifyTimeoutMs ?? 60_000, 0, DAY_MS)
  const drainTimeoutMs = num('drainTimeoutMs', v.drainTimeoutMs ?? 30_000, 0, DAY_MS)

  const json = file('json', v.json)
  const jsonl = file('jsonl', v.jsonl)
  const snapshotEveryMs = num('snapshotEveryMs', v.snapshotEveryMs ?? 60_000, 100, DAY_MS)
  const statusEveryMs = v.statusEveryMs === undefined ? undefined : num('statusEveryMs', v.statusEveryMs, 100, DAY_MS)
  const seed = whole('seed', v.seed ?? Math.floor(Math.random() * 2 ** 32), 0, 2 ** 32 - 1)
  const rebootDelayMs = num('rebootDelayMs', v.rebootDelayMs ?? 2000, 0, 600_000)

  const needToken =
    provision ? FLAGS.provision : verify && influxUrl === undefined ? FLAGS.verify : commandRate > 0 ? FLAGS.commandRate : twinRate > 0 ? FLAGS.twinRate : undefined
  if (needToken !== undefined && token === undefined) optionError(FLAGS.token, `${needToken} needs an operator or admin token (--token or $FLEETGATE_TOKEN)`)

  return Object.freeze({
    hub,
    hubs: Object.freeze(hubs),
    token,
    devices,
    prefix,
    provision,
    fleet,
    keyType,
    model,
    rate,
    batch,
    durationMs,
    readings,
    connectRate,
    churnPercentPerMin,
    stormEveryMs,
    clockSkewMs,
    badFramesPercent,
    localAddresses: Object.freeze([...localAddresses]),
    commandRate,
    commands: Object.freeze([...commands]),
    commandTimeoutMs,
    twinRate,
    verify,
    influxUrl: influxUrl?.replace(/\/$/, ''),
    influxDb,
    verifyTimeoutMs,
    drainTimeoutMs,
    json,
    jsonl,
    snapshotEveryMs,
    statusEveryMs,
    seed,
    rebootDelayMs,
  })
}

/** `--hub`: one base URL, or several separated by commas (the nodes of a cluster). */
function checkHubs(hubs: unknown): string[] {
  if (typeof hubs !== 'string' || hubs === '') optionError(FLAGS.hub, 'required: the hub base URL, http(s)://host:port')
  const list = hubs.split(',').map((hub) => checkHub(hub.trim()))
  if (new Set(list).size !== list.length) optionError(FLAGS.hub, 'a hub is listed twice')
  return list
}

function checkHub(hub: string): string {
  if (hub === '') optionError(FLAGS.hub, 'an empty URL in the list')
  let url: URL
  try {
    url = new URL(hub)
  } catch {
    return optionError(FLAGS.hub, `not a URL: ${JSON.stringify(hub)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') optionError(FLAGS.hub, `expected http:// or https://, got ${url.protocol}`)
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') optionError(FLAGS.hub, 'expected a base URL without query, fragment or credentials')
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}

function num(key: keyof SimOptions, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    optionError(FLAGS[key], `expected a number from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

function whole(key: keyof SimOptions, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    optionError(FLAGS[key], `expected a whole number from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

function bool(key: keyof SimOptions, value: unknown): boolean {
  if (typeof value !== 'boolean') optionError(FLAGS[key], 'expected true or false')
  return value
}

function file(key: keyof SimOptions, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') optionError(FLAGS[key], 'expected a file name')
  return value
}
