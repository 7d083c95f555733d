// The hub's operator REST API (docs/rest.md), JSON in and out, through fetch.
import { setTimeout as sleep } from 'node:timers/promises'
import { SimError } from './errors.js'

/** A REST answer: the HTTP status and the parsed JSON body (undefined when empty or not JSON). */
export interface RestAnswer {
  readonly status: number
  readonly body: unknown
}

/** Calls `method path` under `base` with `token`; rejects with SimError SIM_ERR_HUB when the hub cannot be reached in `timeoutMs`. */
export async function rest(base: string, token: string | undefined, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<RestAnswer> {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  let response: Response
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (cause) {
    const reason = cause instanceof Error ? ((cause.cause as Error | undefined)?.message ?? cause.message) : String(cause)
    throw new SimError('SIM_ERR_HUB', `cannot reach the hub at ${base} (${method} ${path.split('?')[0]}): ${reason}`, { cause })
  }
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: response.status, body: parsed }
}

/** Answers that say nothing was done and a later call may succeed: a balancer with no node behind it (502, 503), a hub not ready (503). */
const REPEAT_STATUSES: ReadonlySet<number> = new Set([502, 503])
/** First pause before a repeat, in ms; doubled each time up to REPEAT_MAX_PAUSE_MS. */
const REPEAT_FIRST_PAUSE_MS = 250
const REPEAT_MAX_PAUSE_MS = 2000

/**
 * `rest` for a call that is safe to make twice: a command with its own `id` (an idempotency key),
 * a merge patch. When no answer comes (a cluster node killed under the balancer closes the
 * connection) or the answer is 502 or 503, it is made again, after 250 ms doubling to 2 s, until
 * `timeoutMs` after the first call; `repeated` is called before each repeat. The last failure
 * stands when the time is up.
 */
export async function restRepeatable(base: string, token: string | undefined, method: string, path: string, body: unknown, timeoutMs: number, repeated: () => void): Promise<RestAnswer> {
  const deadline = performance.now() + timeoutMs
  for (let pauseMs = REPEAT_FIRST_PAUSE_MS; ; pauseMs = Math.min(REPEAT_MAX_PAUSE_MS, pauseMs * 2)) {
    let answer: RestAnswer | undefined
    let failure: unknown
    try {
      answer = await rest(base, token, method, path, body, Math.max(1, Math.ceil(deadline - performance.now())))
    } catch (err) {
      failure = err
    }
    if (answer !== undefined && !REPEAT_STATUSES.has(answer.status)) return answer
    if (performance.now() + pauseMs >= deadline) {
      if (answer !== undefined) return answer
      throw failure
    }
    repeated()
    await sleep(pauseMs)
  }
}

/** A short description of an error answer: `401 unauthorized: ...`. */
export function describeAnswer(answer: RestAnswer): string {
  const body = answer.body
  if (typeof body === 'object' && body !== null) {
    const { error, message } = body as { error?: unknown; message?: unknown }
    if (typeof error === 'string') return `${answer.status} ${error}${typeof message === 'string' ? `: ${message}` : ''}`
  }
  return String(answer.status)
}

/** `value` as a plain object, or undefined. */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}
