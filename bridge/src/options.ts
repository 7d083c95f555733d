import { BridgeError } from './errors.js'

/** Refuses keys of `options` that are not in `allowed` (STYLE: unknown keys are refused). */
export function checkKeys(options: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', `${where}: unknown option ${JSON.stringify(key)}`)
    }
  }
}

/** `value` if it is an integer in [min, max], `fallback` when undefined; throws `BRIDGE_ERR_INVALID_OPTION` otherwise. */
export function intOption(value: number | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', `${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

/** `value` if it is a function; throws `BRIDGE_ERR_INVALID_OPTION` otherwise. */
export function requiredFn<T>(value: T | undefined, name: string): T {
  if (typeof value !== 'function') throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', `${name} must be a function`)
  return value
}

/** `value` if it is a function or undefined; throws `BRIDGE_ERR_INVALID_OPTION` otherwise. */
export function optionalFn<T>(value: T | undefined, name: string): T | undefined {
  return value === undefined ? undefined : requiredFn(value, name)
}
