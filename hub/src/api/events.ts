import { EVENT_TYPES, STREAM_HELLO, type EventStreams, type EventType } from '../events/index.js'
import { apiError, invalid, type Router } from '../transport/index.js'
import { checkDeviceId } from '../validate.js'

/** docs/rest.md: `device` may repeat up to 100 times. */
export const MAX_STREAM_DEVICES = 100

/** Headers of an event stream: SSE, never cached, never buffered by a proxy that honours the hint. */
const STREAM_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' } as const

/**
 * `GET /api/v1/events` (docs/rest.md): Server-Sent Events for as long as the client stays. Any
 * token may read it (`reader`). `device` (repeated, at most 100) narrows every type to those
 * devices, and is what `telemetry` needs at all; `type` is a comma list of event types.
 */
export function registerEventRoutes(router: Router, streams: EventStreams): void {
  router.stream('/api/v1/events', { scope: 'reader' }, ({ query, operator }, open) => {
    const named = query.getAll('device')
    if (named.length > MAX_STREAM_DEVICES) return invalid(`device: at most ${MAX_STREAM_DEVICES} devices (the parameter repeats)`)
    for (const device of named) {
      const checked = checkDeviceId(device, 'device')
      if (!checked.ok) return invalid(checked.message)
    }
    const typeText = query.get('type')
    const types = typeText === null ? [...EVENT_TYPES] : typeText.split(',')
    const unknown = types.find((type) => !EVENT_TYPES.includes(type as EventType))
    if (unknown !== undefined) return invalid(`type: a comma list of ${EVENT_TYPES.join(', ')}; "${unknown.slice(0, 64)}" is not one`)
    // The router answered 401 without a token; every token has a name.
    const token = operator?.name ?? ''
    switch (streams.admit(token)) {
      case 'token':
        return apiError(429, 'too_many_requests', `this token has ${streams.limits.maxStreamsPerToken} event streams open, the most it may; close one first`)
      case 'hub':
        return apiError(429, 'too_many_requests', `the hub serves ${streams.limits.maxStreams} event streams, the most it may; retry later`)
      case 'closed':
        return apiError(503, 'not_ready', 'the hub is shutting down')
      case 'ok':
        break
    }
    const sink = open(STREAM_HEADERS, STREAM_HELLO)
    if (sink !== undefined) {
      streams.open(token, { types: new Set(types as EventType[]), devices: named.length === 0 ? undefined : new Set(named) }, sink)
    }
    return undefined
  })
}
