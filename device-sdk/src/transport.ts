// The WebSocket the SDK talks through, described structurally (no DOM lib, no `ws` types in the
// public API), plus where the endpoint is and how the token travels (docs/protocol.md).
import { SdkError } from './errors.js'

/**
 * An event-handler slot of a WebSocket. The parameter is `never` so that `ws`'s handler types and
 * the DOM's both fit; the SDK only assigns its own handlers and narrows the events it receives.
 */
export type WebSocketHandler = ((event: never) => void) | null

/** The part of a WebSocket instance the SDK uses; `ws` and the WHATWG WebSocket both have it. */
export interface WebSocketLike {
  /** The SDK sets `'arraybuffer'`. */
  binaryType: string
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number
  onopen: WebSocketHandler
  onmessage: WebSocketHandler
  onerror: WebSocketHandler
  onclose: WebSocketHandler
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
}

/**
 * A WebSocket constructor: `ws` (takes `{ headers }` as third argument) or the WHATWG WebSocket
 * (browsers, Deno, Node 22+; ignores a third argument).
 */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike

/** How the token reaches the hub: `Authorization: Bearer` header, or `?token=` where a client cannot set headers. */
export type AuthMode = 'header' | 'query'

/** The path of the device endpoint on the hub (docs/configuration.md, docs/protocol.md). */
export const DEVICE_ENDPOINT_PATH = '/v1/connect'

/**
 * The device endpoint for `url`, or why `url` is not acceptable:
 * - `ws://` or `wss://` with a path: used as given;
 * - `ws://` or `wss://` without a path (`ws://hub:8080`): `/v1/connect` is added;
 * - `http://` or `https://`: the hub's base URL; the scheme becomes `ws`/`wss` and `/v1/connect`
 *   is added to the path unless it already ends with it (`https://hub/fleet` -> `wss://hub/fleet/v1/connect`).
 * Query parameters are kept; a fragment is refused (RFC 6455 §3: WebSocket URIs have none).
 */
export function deviceEndpoint(url: string): string | { reason: string } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return { reason: `not a URL: ${JSON.stringify(url)}` }
  }
  if (parsed.hash !== '') return { reason: 'a WebSocket URL has no #fragment' }
  switch (parsed.protocol) {
    case 'ws:':
    case 'wss:':
      if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = DEVICE_ENDPOINT_PATH
      return parsed.href
    case 'http:':
    case 'https:': {
      parsed.protocol = parsed.protocol === 'http:' ? 'ws:' : 'wss:'
      const path = parsed.pathname.replace(/\/+$/, '')
      parsed.pathname = path.endsWith(DEVICE_ENDPOINT_PATH) ? path : `${path}${DEVICE_ENDPOINT_PATH}`
      return parsed.href
    }
    default:
      return { reason: `expected ws:, wss:, http: or https:, got ${parsed.protocol}` }
  }
}

/** `endpoint` with `token` in the `token` query parameter (replacing one already there). */
export function withTokenQuery(endpoint: string, token: string): string {
  const url = new URL(endpoint)
  url.searchParams.set('token', token)
  return url.href
}

/**
 * Whether a constructor accepts `{ headers }`: `ws` does, and its instances have ping(), which the
 * WHATWG WebSocket lacks. This decides the default auth mode of an injected constructor.
 */
export function acceptsHeaders(WebSocket: WebSocketConstructor): boolean {
  const prototype: unknown = WebSocket.prototype
  return typeof prototype === 'object' && prototype !== null && typeof (prototype as { ping?: unknown }).ping === 'function'
}

/**
 * The WebSocket constructor to use when none was injected: on Node (and runtimes that report a
 * Node version, such as Bun) `ws`, loaded on first use with `import('ws')`, since it can send the
 * Authorization header; elsewhere (browsers, Deno) `globalThis.WebSocket`; failing both, `ws`.
 * Rejects with SdkError SDK_ERR_INVALID_OPTION when there is none.
 */
export async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const runtime = globalThis as { process?: { versions?: { node?: unknown } }; WebSocket?: WebSocketConstructor }
  const native = runtime.WebSocket
  if (typeof runtime.process?.versions?.node !== 'string' && typeof native === 'function') return native
  try {
    const ws = await import('ws')
    return ws.default
  } catch (cause) {
    if (typeof native === 'function') return native
    throw new SdkError('SDK_ERR_INVALID_OPTION', 'WebSocket: no WebSocket implementation found; install `ws` or pass options.WebSocket', { cause })
  }
}
