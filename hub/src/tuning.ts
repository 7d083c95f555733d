import { HubError } from './errors.js'

/**
 * A module's tuning knobs (high waters, batch sizes, intervals) are positive whole numbers, in the
 * unit their names say, with their defaults in the module's one defaults object. This returns
 * `defaults` with the knobs `given` sets, validated at once: an unknown knob or a value that is not
 * a positive whole number throws `HUB_ERR_CONFIG` naming it. The result is frozen; `given` is not changed.
 */
export function tune<T extends { readonly [K in keyof T]: number }>(where: string, defaults: T, given: Partial<T> | undefined): T {
  const tuned: Record<string, number> = { ...defaults }
  for (const [key, value] of Object.entries(given ?? {}) as Array<[string, unknown]>) {
    if (!Object.hasOwn(defaults, key)) {
      throw new HubError('HUB_ERR_CONFIG', `${where}: unknown option "${key}"; it takes ${Object.keys(defaults).join(', ')}`)
    }
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new HubError('HUB_ERR_CONFIG', `${where}: ${key} must be a positive whole number, got ${String(value)}`)
    }
    tuned[key] = value
  }
  return Object.freeze(tuned) as T
}
