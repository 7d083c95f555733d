// The hub's operator REST API (docs/rest.md), JSON in and out, through fetch.
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
