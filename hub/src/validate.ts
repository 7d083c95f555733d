import { type Tags } from '@fleetgate/device-sdk'
import { checkTags as checkTagMap, DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'

/** A validation outcome: the narrowed value, or a message naming the field and the rule. */
export type Checked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string }

const ok = <T>(value: T): Checked<T> => ({ ok: true, value })
const bad = (message: string): Checked<never> => ({ ok: false, message })

/** A plain JSON object, or undefined. */
export function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/** Refuses keys a body does not define, so a typo (`disabeld`) is an error, not a silent no-op. */
export function onlyKeys(body: Record<string, unknown>, allowed: readonly string[], where: string): Checked<true> {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) return bad(`${where}: unknown field "${key}"; it takes ${allowed.join(', ')}`)
  }
  return ok(true)
}

/** docs/protocol.md: a device id is `^[A-Za-z0-9_-]{1,64}$`. */
export function checkDeviceId(value: unknown, field = 'id'): Checked<string> {
  return typeof value === 'string' && DEVICE_ID_PATTERN.test(value)
    ? ok(value)
    : bad(`${field}: a device id is 1 to 64 of A-Z a-z 0-9 _ -`)
}

/**
 * Registry tags become InfluxDB tags beside the reading's own (docs/telemetry.md), so they follow the
 * rules of a reading's `g` (docs/protocol.md), checked by the very code that checks frames.
 */
export function checkTags(value: unknown, field = 'tags'): Checked<Tags> {
  const object = asObject(value)
  if (object === undefined) return bad(`${field}: an object of tag names to text values`)
  const checked = checkTagMap(new Map(Object.entries(object)))
  return typeof checked === 'string' ? bad(field + checked) : ok(checked)
}

/** A whole number in [min, max], or `fallback` when absent. */
export function checkInteger(value: unknown, field: string, min: number, max: number, fallback: number): Checked<number> {
  if (value === undefined) return ok(fallback)
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
    ? ok(value)
    : bad(`${field}: a whole number from ${min} to ${max}`)
}

/** A boolean, or `fallback` when absent. */
export function checkBoolean(value: unknown, field: string, fallback: boolean): Checked<boolean> {
  if (value === undefined) return ok(fallback)
  return typeof value === 'boolean' ? ok(value) : bad(`${field}: true or false`)
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * A duration such as `90s`, `15m`, `12h` or `7d` (a whole number of at most 9 digits and one unit),
 * in ms; undefined when `text` is not one. `FLEETGATE_HISTORY_RETENTION` and the telemetry API's
 * `every` take this form.
 */
export function parseDurationMs(text: string): number | undefined {
  const match = /^(\d{1,9})([smhd])$/.exec(text)
  if (match === null) return undefined
  return Number(match[1]) * (DURATION_UNITS_MS[match[2] as string] as number)
}
