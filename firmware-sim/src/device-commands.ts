// The commands every simulated device answers (the list), besides its model's own
// (set_setpoint, set_relay, set_mode). Anything else gets the SDK's `unknown_command`.
import type { DeviceClient, JsonValue } from '@fleetgate/device-sdk'
import type { Model, ModelCommand } from './models.js'

/** The firmware version devices report in get_config. */
export const FIRMWARE = 'fleetgate-sim/0.1.0'
/** set_interval bounds, in ms between readings. */
export const INTERVAL_RANGE = Object.freeze({ min: 10, max: 3_600_000 })
/** Longest delayMs a reboot command may ask for, in ms. */
const MAX_REBOOT_DELAY_MS = 600_000

/** What the handlers read and change on their device. */
export interface CommandTarget {
  readonly model: Model
  readonly skewMs: number
  readonly batch: number
  /** Device time, Unix ms. */
  now(): number
  intervalMs: number
  readonly rebooting: boolean
  /** Starts a reboot once the result is on its way. */
  scheduleReboot(delayMs: number): void
  /** delayMs of a reboot without one. */
  readonly defaultRebootDelayMs: number
}

/** The names the simulated firmware answers itself, whatever the model. */
export const BUILTIN_COMMANDS: readonly string[] = Object.freeze(['ping', 'get_config', 'set_interval', 'reboot'])

const field = (params: JsonValue | undefined, key: string): JsonValue | undefined =>
  typeof params === 'object' && params !== null && !Array.isArray(params) ? params[key] : undefined

/**
 * The handlers of ping, get_config, set_interval, reboot and the model's commands, by name: what
 * the device answers to commands, and what it applies desired twin settings with (device-twin.ts).
 */
export function deviceCommands(target: CommandTarget): Readonly<Record<string, ModelCommand>> {
  return {
    ping: () => ({ pong: true, at: target.now() }),
    get_config: () => ({
      model: target.model.name,
      firmware: FIRMWARE,
      intervalMs: target.intervalMs,
      batch: target.batch,
      skewMs: target.skewMs,
      ...target.model.settings(),
    }),
    set_interval: (params) => {
      const ms = field(params, 'ms')
      if (typeof ms !== 'number' || !(ms >= INTERVAL_RANGE.min && ms <= INTERVAL_RANGE.max)) {
        throw new Error(`ms: expected ${INTERVAL_RANGE.min} to ${INTERVAL_RANGE.max} ms between readings`)
      }
      target.intervalMs = ms
      return { intervalMs: ms }
    },
    ...target.model.commands,
    reboot: (params): JsonValue => {
      const given = field(params, 'delayMs')
      const delayMs = typeof given === 'number' && given >= 0 && given <= MAX_REBOOT_DELAY_MS ? given : target.defaultRebootDelayMs
      const already = target.rebooting
      // the SDK sends the result once this handler's value resolves; the reboot starts right after
      target.scheduleReboot(delayMs)
      return already ? { rebooting: true, delayMs, already: true } : { rebooting: true, delayMs }
    },
  }
}

/** Registers `commands` (deviceCommands) on `client`. */
export function registerCommands(client: DeviceClient, commands: Readonly<Record<string, ModelCommand>>): void {
  for (const [name, command] of Object.entries(commands)) client.handle(name, command)
}
