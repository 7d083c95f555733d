// DeviceClient options: one defaults object, validated eagerly, unknown keys refused, result frozen,
// the caller's object never changed (STYLE: Options and configuration).
import { checkBackoffOptions, type BackoffOptions } from './backoff.js'
import { SdkError } from './errors.js'
import { DEVICE_ID_PATTERN, MAX_BATCH_READINGS } from './frames.js'
import { MemoryQueueStore, type QueueStore } from './queue-store.js'
import { base64urlEncode, deviceKeyBytes, type KeyType } from './token.js'
import { deviceEndpoint, type AuthMode, type WebSocketConstructor } from './transport.js'

/** What to do with a new reading when the queue is full: drop the oldest queued one, or refuse the new one. */
export type OverflowPolicy = 'drop-oldest' | 'reject'

/** Time as the client sees it: `now()` in Unix ms, and timers. Default: Date.now and the global timers. */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** The real clock: Date.now, setTimeout, clearTimeout. */
export const realClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as ReturnType<typeof setTimeout>),
})

/** Options of a DeviceClient; only `url`, `deviceId` and `key` are required. */
export interface DeviceClientOptions {
  /**
   * The hub's device endpoint, `ws://host:port/v1/connect` or `wss://...`. An `http(s)://` base URL,
   * or a `ws(s)://` URL without a path, gets `/v1/connect` added (and the scheme ws/wss). Required.
   */
  url: string
  /** The device id, 1 to 64 of `A-Z a-z 0-9 _ -`. Required. */
  deviceId: string
  /** The device key as the hub showed it (base64url, no padding) or its bytes: see KeyType. Required. */
  key: string | Uint8Array
  /** The key's type; default `'hmac'`. */
  keyType?: KeyType
  /**
   * The WebSocket constructor; default: on Node `ws`, loaded on first connect with `import('ws')`,
   * elsewhere `globalThis.WebSocket`.
   */
  WebSocket?: WebSocketConstructor
  /**
   * How the token is sent: `'header'` (Authorization: Bearer) or `'query'` (`?token=`). Default
   * `'header'` when the constructor is `ws` (the default one, or an injected constructor whose
   * instances have ping()), `'query'` otherwise, since a WHATWG WebSocket cannot set headers.
   */
  auth?: AuthMode
  /** Lifetime of each token, in seconds, 1 to 86400 (the hub refuses exp more than 24 h ahead); default 3600. A fresh token is signed for every connect attempt. */
  tokenTtlSec?: number
  /** Whether to reconnect after a lost session or a failed attempt, for ever; default true. */
  reconnect?: boolean
  /** Reconnect delays: `{ initialDelayMs: 500, maxDelayMs: 30000, factor: 2 }` by default, with full jitter. */
  backoff?: Omit<BackoffOptions, 'random'>
  /** A session that lasted at least this long, in ms, resets the backoff; default 10000. */
  stableAfterMs?: number
  /** Longest wait, in ms, from opening the socket to the hub's `hello`; default 10000. */
  helloTimeoutMs?: number
  /** Time source for tokens, backoff and timeouts; default realClock. */
  clock?: Clock
  /** Uniform random number in [0, 1) for backoff jitter; default Math.random. */
  random?: () => number
  /** Most readings per `tb` frame, 1 to 500; default the hub's `lim.batch` (500). */
  batchMaxReadings?: number
  /**
   * How long a reading may wait, in ms (0 to 60000), for more to share its frame; default 0: it goes
   * at once with whatever was queued in the same tick, and readings that pile up while the ack
   * window is full or the rate is used up share frames anyway.
   */
  lingerMs?: number
  /** Most readings waiting to be sent (while offline or held back by the window); default 10000. */
  maxQueuedReadings?: number
  /** When the queue is full: `'drop-oldest'` (default; the dropped reading's promise rejects with SDK_ERR_DROPPED) or `'reject'` (send rejects with SDK_ERR_QUEUE_FULL). */
  overflow?: OverflowPolicy
  /** Where readings wait until acked; default a MemoryQueueStore. The client closes it on close(). */
  store?: QueueStore
  /** Whether to pace frames to the hub's `lim.rate` (burst 1.5x); default true. Off only to test the hub's rate limit. */
  pacing?: boolean
}

/** DeviceClientOptions after validation, defaults filled in; the key as base64url text. Frozen. */
export interface ResolvedDeviceClientOptions {
  readonly url: string
  readonly deviceId: string
  readonly key: string
  readonly keyType: KeyType
  readonly WebSocket: WebSocketConstructor | undefined
  readonly auth: AuthMode | undefined
  readonly tokenTtlSec: number
  readonly reconnect: boolean
  readonly backoff: Readonly<{ initialDelayMs: number; maxDelayMs: number; factor: number }>
  readonly stableAfterMs: number
  readonly helloTimeoutMs: number
  readonly clock: Clock
  readonly random: () => number
  readonly batchMaxReadings: number | undefined
  readonly lingerMs: number
  readonly maxQueuedReadings: number
  readonly overflow: OverflowPolicy
  readonly store: QueueStore
  readonly pacing: boolean
}

/** Longest lingerMs, in ms. */
export const MAX_LINGER_MS = 60_000
/** Default maxQueuedReadings: readings held while offline. */
export const DEFAULT_MAX_QUEUED_READINGS = 10_000

/** Longest tokenTtlSec: the hub refuses a token whose exp is more than 24 h ahead (docs/protocol.md). */
export const MAX_TOKEN_TTL_SEC = 86_400
// setTimeout fires at once for delays over 2^31 - 1 ms
const MAX_TIMER_MS = 2_147_483_647

const KNOWN_KEYS: ReadonlySet<string> = new Set<keyof DeviceClientOptions>([
  'url',
  'deviceId',
  'key',
  'keyType',
  'WebSocket',
  'auth',
  'tokenTtlSec',
  'reconnect',
  'backoff',
  'stableAfterMs',
  'helloTimeoutMs',
  'clock',
  'random',
  'batchMaxReadings',
  'lingerMs',
  'maxQueuedReadings',
  'overflow',
  'store',
  'pacing',
])

/** Validates DeviceClientOptions; throws SdkError SDK_ERR_INVALID_OPTION naming the first bad option. */
export function resolveDeviceClientOptions(options: DeviceClientOptions): ResolvedDeviceClientOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) fail('options', 'expected an object')
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key)) fail(key, 'unknown option')
  }
  const { url, deviceId, key, WebSocket, auth, clock, random } = options

  if (typeof url !== 'string') fail('url', 'expected a ws(s):// or http(s):// URL')
  const endpoint = deviceEndpoint(url)
  if (typeof endpoint !== 'string') fail('url', endpoint.reason)

  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) fail('deviceId', 'expected 1 to 64 of A-Z a-z 0-9 _ -')

  const keyType = options.keyType ?? 'hmac'
  if (keyType !== 'hmac' && keyType !== 'ed25519') fail('keyType', "expected 'hmac' or 'ed25519'")
  const keyBytes = deviceKeyBytes(keyType, key)
  if (typeof keyBytes === 'string') fail('key', keyBytes)

  if (WebSocket !== undefined && typeof WebSocket !== 'function') fail('WebSocket', 'expected a WebSocket constructor')
  if (auth !== undefined && auth !== 'header' && auth !== 'query') fail('auth', "expected 'header' or 'query'")

  const tokenTtlSec = options.tokenTtlSec ?? 3600
  if (!Number.isSafeInteger(tokenTtlSec) || tokenTtlSec < 1 || tokenTtlSec > MAX_TOKEN_TTL_SEC) {
    fail('tokenTtlSec', `expected whole seconds from 1 to ${MAX_TOKEN_TTL_SEC}`)
  }
  const reconnect = options.reconnect ?? true
  if (typeof reconnect !== 'boolean') fail('reconnect', 'expected a boolean')

  let backoff: ResolvedDeviceClientOptions['backoff']
  try {
    backoff = Object.freeze(checkBackoffOptions(options.backoff ?? {}, 'backoff', false))
  } catch (error) {
    throw error instanceof SdkError ? error : new SdkError('SDK_ERR_INVALID_OPTION', 'backoff: invalid', { cause: error })
  }
  if (backoff.maxDelayMs > MAX_TIMER_MS) fail('backoff.maxDelayMs', `expected at most ${MAX_TIMER_MS} ms`)

  const stableAfterMs = options.stableAfterMs ?? 10_000
  if (typeof stableAfterMs !== 'number' || !Number.isFinite(stableAfterMs) || stableAfterMs < 0) {
    fail('stableAfterMs', 'expected a finite number of ms >= 0')
  }
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000
  if (typeof helloTimeoutMs !== 'number' || !(helloTimeoutMs > 0) || helloTimeoutMs > MAX_TIMER_MS) {
    fail('helloTimeoutMs', `expected ms from 1 to ${MAX_TIMER_MS}`)
  }
  if (
    clock !== undefined &&
    (typeof clock !== 'object' ||
      clock === null ||
      typeof clock.now !== 'function' ||
      typeof clock.setTimeout !== 'function' ||
      typeof clock.clearTimeout !== 'function')
  ) {
    fail('clock', 'expected { now(), setTimeout(fn, ms), clearTimeout(handle) }')
  }
  if (random !== undefined && typeof random !== 'function') fail('random', 'expected a function returning [0, 1)')

  const { batchMaxReadings, store } = options
  if (batchMaxReadings !== undefined && (!Number.isSafeInteger(batchMaxReadings) || batchMaxReadings < 1 || batchMaxReadings > MAX_BATCH_READINGS)) {
    fail('batchMaxReadings', `expected a whole number from 1 to ${MAX_BATCH_READINGS}`)
  }
  const lingerMs = options.lingerMs ?? 0
  if (typeof lingerMs !== 'number' || !Number.isFinite(lingerMs) || lingerMs < 0 || lingerMs > MAX_LINGER_MS) {
    fail('lingerMs', `expected ms from 0 to ${MAX_LINGER_MS}`)
  }
  const maxQueuedReadings = options.maxQueuedReadings ?? DEFAULT_MAX_QUEUED_READINGS
  if (!Number.isSafeInteger(maxQueuedReadings) || maxQueuedReadings < 1) fail('maxQueuedReadings', 'expected a whole number >= 1')
  const overflow = options.overflow ?? 'drop-oldest'
  if (overflow !== 'drop-oldest' && overflow !== 'reject') fail('overflow', "expected 'drop-oldest' or 'reject'")
  if (
    store !== undefined &&
    (typeof store !== 'object' ||
      store === null ||
      (['load', 'append', 'remove', 'saveNextSeq', 'close'] as const).some((method) => typeof store[method] !== 'function'))
  ) {
    fail('store', 'expected a QueueStore: { load(), append(readings), remove(ids), saveNextSeq(seq), close() }')
  }
  const pacing = options.pacing ?? true
  if (typeof pacing !== 'boolean') fail('pacing', 'expected a boolean')

  return Object.freeze({
    url: endpoint,
    deviceId,
    // copied as text: later changes to the caller's bytes do not reach the client
    key: typeof key === 'string' ? key : base64urlEncode(keyBytes),
    keyType,
    WebSocket,
    auth,
    tokenTtlSec,
    reconnect,
    backoff,
    stableAfterMs,
    helloTimeoutMs,
    clock: clock ?? realClock,
    random: random ?? Math.random,
    batchMaxReadings,
    lingerMs,
    maxQueuedReadings,
    overflow,
    store: store ?? new MemoryQueueStore(),
    pacing,
  })
}

function fail(option: string, problem: string): never {
  throw new SdkError('SDK_ERR_INVALID_OPTION', `${option}: ${problem}`)
}
