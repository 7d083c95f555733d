// Local validation of the readings an application hands to send()/sendBatch(), with the codec's own
// rules (docs/protocol.md), so a reading the hub would nak `invalid` is refused before it is queued.
import { checkMetrics, checkTags, timestamp } from './frame-checks.js'
import { MAX_TS_MS, type Metrics, type Reading, type Tags } from './frames.js'

/** One reading for sendBatch(): metrics, optional time (Unix ms or a Date; default: now), optional tags. */
export interface TelemetryReading {
  metrics: Metrics
  ts?: number | Date
  tags?: Tags
}

/** Options of send(): the reading's time (Unix ms or a Date; default: now, from the client's clock) and tags. */
export interface SendOptions {
  ts?: number | Date
  tags?: Tags
}

const READING_KEYS: ReadonlySet<string> = new Set(['metrics', 'ts', 'tags'])

/**
 * `input` checked and copied into a wire Reading, or why not. `stamp` gives the time of a reading
 * without `ts`; it is called only once the rest is known to be valid.
 */
export function toReading(input: unknown, stamp: () => number): Reading | string {
  if (!isRecord(input)) return 'expected { metrics, ts?, tags? }'
  for (const key of Object.keys(input)) {
    if (!READING_KEYS.has(key)) return `${key}: unknown field, expected metrics, ts or tags`
  }
  const { metrics, ts, tags } = input
  if (!isRecord(metrics)) return 'metrics: expected an object of 1 to 64 metrics'
  const m = checkMetrics(new Map(Object.entries(metrics)))
  if (typeof m === 'string') return `metrics${m}`
  let g: Tags | undefined
  if (tags !== undefined) {
    if (!isRecord(tags)) return 'tags: expected an object of at most 16 tags'
    const checked = checkTags(new Map(Object.entries(tags)))
    if (typeof checked === 'string') return `tags${checked}`
    g = checked
  }
  let time: number
  if (ts === undefined) {
    time = stamp()
  } else {
    const checked = timestamp(ts instanceof Date ? ts.getTime() : ts)
    if (checked === undefined) return `ts: expected Unix ms (a whole number from 0 to ${MAX_TS_MS}) or a valid Date`
    time = checked
  }
  return g === undefined || Object.keys(g).length === 0 ? { ts: time, m } : { ts: time, m, g }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map) && !(value instanceof Date)
}
