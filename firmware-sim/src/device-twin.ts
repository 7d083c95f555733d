// A simulated device's twin (docs/twins.md): each model takes some of its settings from `desired`
// (the thermostat's setpoint, the meter's interval and relay, the tracker's mode), applies them with
// the very handlers of the matching commands, and reports the settings it then runs with.
import type { TwinDocument } from '@fleetgate/device-sdk'
import type { ModelCommand, ModelName } from './models.js'

/** A desired key, the command that applies it and the param the value goes in. */
export interface DesiredSetting {
  readonly command: string
  readonly param: string
}

/** The desired keys each model takes, by model. */
export const DESIRED_SETTINGS: Readonly<Record<ModelName, Readonly<Record<string, DesiredSetting>>>> = Object.freeze({
  thermostat: Object.freeze({ setpoint: { command: 'set_setpoint', param: 'c' } }),
  meter: Object.freeze({ intervalMs: { command: 'set_interval', param: 'ms' }, relay: { command: 'set_relay', param: 'on' } }),
  tracker: Object.freeze({ mode: { command: 'set_mode', param: 'mode' } }),
})

/**
 * Applies what `desired` says of `model`'s settings through `commands` (deviceCommands), and
 * returns the patch to report: every setting of the model as it is now. A value its command
 * refuses (a setpoint out of range) is not applied, so the report says what the device runs
 * with, and the twin's delta keeps showing what it could not do.
 */
export function applyDesired(model: ModelName, commands: Readonly<Record<string, ModelCommand>>, desired: TwinDocument): TwinDocument {
  const settings = DESIRED_SETTINGS[model]
  for (const [key, setting] of Object.entries(settings)) {
    const value = Object.hasOwn(desired, key) ? desired[key] : undefined
    if (value === undefined) continue
    try {
      commands[setting.command]?.({ [setting.param]: value })
    } catch {
      // refused: the setting stays as it was, and the report says so
    }
  }
  const config = commands['get_config']?.(undefined)
  const report: TwinDocument = {}
  for (const key of Object.keys(settings)) {
    const value = typeof config === 'object' && config !== null && !Array.isArray(config) ? config[key] : undefined
    if (value !== undefined) report[key] = value
  }
  return report
}
