import { isJsonObject, type TwinDocument } from '@fleetgate/device-sdk/wire'
import { ConsoleError } from './errors.js'

/** A JSON object, or undefined for anything else (arrays and null included). */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

const bad = (what: string): ConsoleError => new ConsoleError('CONSOLE_ERR_RESPONSE', `the hub's answer has no valid ${what}`)

/** The object at `value`, or throws `CONSOLE_ERR_RESPONSE` naming `what`. */
export function record(value: unknown, what: string): Record<string, unknown> {
  const object = asRecord(value)
  if (object === undefined) throw bad(what)
  return object
}

/** A twin document (parsed JSON, so its members are JSON), or throws `CONSOLE_ERR_RESPONSE` naming `what`. */
export function document(value: unknown, what: string): TwinDocument {
  if (!isJsonObject(value)) throw bad(what)
  return value
}

/** A text field. */
export function text(object: Record<string, unknown>, key: string): string {
  const value = object[key]
  if (typeof value !== 'string') throw bad(key)
  return value
}

/** An optional text field. */
export function optText(object: Record<string, unknown>, key: string): string | undefined {
  const value = object[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw bad(key)
  return value
}

/** A number field. */
export function num(object: Record<string, unknown>, key: string): number {
  const value = object[key]
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(key)
  return value
}

/** A boolean field. */
export function bool(object: Record<string, unknown>, key: string): boolean {
  const value = object[key]
  if (typeof value !== 'boolean') throw bad(key)
  return value
}

/** A list field. */
export function list(object: Record<string, unknown>, key: string): unknown[] {
  const value = object[key]
  if (!Array.isArray(value)) throw bad(key)
  return value
}

/** A map of text to text (tags). */
export function textMap(object: Record<string, unknown>, key: string): Record<string, string> {
  const map = record(object[key], key)
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(map)) {
    if (typeof value !== 'string') throw bad(`${key}.${name}`)
    out[name] = value
  }
  return out
}
