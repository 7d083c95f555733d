// Device models: plausible readings with each model's own metrics. A model is a small state
// machine driven only by the device time it is sampled at and a seeded random stream: the same
// seed and the same sample times give the same readings, on any machine.
import type { JsonValue, Metrics } from '@fleetgate/device-sdk'
import { gaussian, pick, type Random } from './random.js'

/** The models a device can run. */
export type ModelName = 'thermostat' | 'meter' | 'tracker'
/** What --model takes: one model for every device, or `mixed` (thermostat, meter, tracker in turn by index). */
export type ModelChoice = ModelName | 'mixed'

/** Every model, in the order `mixed` deals them out. */
export const MODEL_NAMES: readonly ModelName[] = Object.freeze(['thermostat', 'meter', 'tracker'])
/** Every value of --model. */
export const MODEL_CHOICES: readonly ModelChoice[] = Object.freeze([...MODEL_NAMES, 'mixed'])

/** A command only some models understand: params in, result out; throws when the params are bad. */
export type ModelCommand = (params: JsonValue | undefined) => JsonValue

/** One device's model. */
export interface Model {
  readonly name: ModelName
  /** The metric every reading carries; --verify counts stored points by it. */
  readonly primaryMetric: string
  /** Every metric a reading carries. */
  readonly metrics: readonly string[]
  /** The reading at device time `tMs` (Unix ms; calls come in non-decreasing time). */
  sample(tMs: number): Metrics
  /** The model's settings, for get_config. */
  settings(): { [key: string]: JsonValue }
  /** The model's own commands by name (set_setpoint, set_relay, set_mode). */
  readonly commands: Readonly<Record<string, ModelCommand>>
}

/** The model of device `index` (0-based) under `choice`. */
export function modelOf(choice: ModelChoice, index: number): ModelName {
  return choice === 'mixed' ? (MODEL_NAMES[index % MODEL_NAMES.length] as ModelName) : choice
}

/** A new model `name` drawing from `random`. */
export function createModel(name: ModelName, random: Random): Model {
  switch (name) {
    case 'thermostat':
      return thermostat(random)
    case 'meter':
      return meter(random)
    case 'tracker':
      return tracker(random)
  }
}

const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000
const clamp = (value: number, min: number, max: number): number => Math.min(max, Math.max(min, value))
const round = (value: number, decimals: number): number => {
  const scale = 10 ** decimals
  return Math.round(value * scale) / scale
}
const daily = (tMs: number, phase: number): number => Math.sin((2 * Math.PI * tMs) / DAY_MS + phase)

function numberParam(params: JsonValue | undefined, key: string, min: number, max: number, unit: string): number {
  const value = typeof params === 'object' && params !== null && !Array.isArray(params) ? params[key] : undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new Error(`${key}: expected a number from ${min} to ${max} ${unit}`)
  }
  return value
}

/** Setpoint limits of the thermostat, in °C. */
export const SETPOINT_RANGE = Object.freeze({ min: 5, max: 35 })

/**
 * A room thermostat: the room drifts towards a daily outdoor curve and warms up while heating;
 * heating switches with 0.3 °C of hysteresis around the setpoint. temperature °C (5 to 35),
 * humidity % (20 to 80), setpoint °C, heating bool.
 */
function thermostat(random: Random): Model {
  const phase = random() * 2 * Math.PI
  const humidityPhase = random() * 2 * Math.PI
  let setpoint = 19 + pick(random, 9) / 2
  let temperature = setpoint + (random() - 0.5) * 2
  let heating = temperature < setpoint
  let last: number | undefined
  return {
    name: 'thermostat',
    primaryMetric: 'temperature',
    metrics: ['temperature', 'humidity', 'setpoint', 'heating'],
    sample(tMs) {
      const hours = last === undefined ? 0 : Math.max(0, tMs - last) / HOUR_MS
      last = tMs
      const outdoor = 8 + 6 * daily(tMs, phase)
      // heating adds 2 °C/h; the room loses 10 % of its gap to outdoors per hour
      temperature += hours * ((heating ? 2 : 0) - 0.1 * (temperature - outdoor))
      temperature = clamp(temperature + gaussian(random) * 0.02, SETPOINT_RANGE.min, SETPOINT_RANGE.max)
      if (temperature < setpoint - 0.3) heating = true
      else if (temperature > setpoint + 0.3) heating = false
      const humidity = clamp(45 + 8 * daily(tMs, humidityPhase) + gaussian(random) * 0.5, 20, 80)
      return { temperature: round(temperature, 2), humidity: round(humidity, 1), setpoint, heating }
    },
    settings: () => ({ setpoint }),
    commands: {
      set_setpoint(params) {
        setpoint = round(numberParam(params, 'c', SETPOINT_RANGE.min, SETPOINT_RANGE.max, '°C'), 1)
        return { setpoint }
      },
    },
  }
}

/** Voltage limits of the meter, in V: 230 V +/-10 % (EN 50160). */
export const VOLTAGE_RANGE = Object.freeze({ min: 207, max: 253 })

/**
 * An electricity meter behind a relay: power W follows a daily load curve (0 while the relay is
 * open), energy kWh is a counter that integrates it and never goes down, voltage V stays within
 * 230 V +/-10 %, relay bool.
 */
function meter(random: Random): Model {
  const phase = random() * 2 * Math.PI
  const base = 150 + random() * 250
  const peak = 800 + random() * 1700
  let energy = 100 + random() * 9900
  let relay = true
  let last: number | undefined
  return {
    name: 'meter',
    primaryMetric: 'power',
    metrics: ['power', 'energy', 'voltage', 'relay'],
    sample(tMs) {
      const power = relay ? clamp(base + peak * Math.max(0, daily(tMs, phase)) + gaussian(random) * 40, 0, 9000) : 0
      // kWh = W x ms / 3.6e9
      if (last !== undefined) energy += (power * Math.max(0, tMs - last)) / 3.6e9
      last = tMs
      const voltage = clamp(230 + 3 * daily(tMs, phase + 1) + gaussian(random) * 0.8, VOLTAGE_RANGE.min, VOLTAGE_RANGE.max)
      return { power: round(power, 1), energy: Math.floor(energy * 10_000) / 10_000, voltage: round(voltage, 1), relay }
    },
    settings: () => ({ relay }),
    commands: {
      set_relay(params) {
        const on = typeof params === 'object' && params !== null && !Array.isArray(params) ? params['on'] : undefined
        if (typeof on !== 'boolean') throw new Error('on: expected true or false')
        relay = on
        return { relay }
      },
    },
  }
}

// Where trackers start: a few cities, each device somewhere within ~20 km of one.
const CITIES: ReadonlyArray<readonly [number, number]> = [
  [45.764, 4.8357],
  [48.8566, 2.3522],
  [52.52, 13.405],
  [40.4168, -3.7038],
  [51.5072, -0.1276],
  [41.9028, 12.4964],
]

/** The tracker's modes: `live` (drains 1 %/h parked, 3 %/h driving), `eco` (half that), `sleep` (parked, 0.2 %/h). */
export const TRACKER_MODES: readonly string[] = Object.freeze(['live', 'eco', 'sleep'])
const MODE_DRAIN: Readonly<Record<string, number>> = Object.freeze({ live: 1, eco: 0.5, sleep: 0.2 })

/**
 * A vehicle tracker: it drives and stops, turning as it goes. lat/lon in degrees, speed km/h
 * (0 to 130), battery % (5 to 100: it drains by 1 %/h parked and 3 %/h driving in mode `live`,
 * less in the others, and is swapped for a full one below 5 %). In mode `sleep` it stays parked.
 */
function tracker(random: Random): Model {
  const [cityLat, cityLon] = CITIES[pick(random, CITIES.length)] as readonly [number, number]
  let lat = cityLat + (random() - 0.5) * 0.36
  let lon = cityLon + (random() - 0.5) * 0.5
  let heading = random() * 2 * Math.PI
  let moving = random() < 0.7
  let speed = moving ? 30 + random() * 60 : 0
  let battery = 40 + random() * 60
  let mode = 'live'
  let last: number | undefined
  return {
    name: 'tracker',
    primaryMetric: 'lat',
    metrics: ['lat', 'lon', 'speed', 'battery'],
    sample(tMs) {
      const ms = last === undefined ? 0 : Math.max(0, tMs - last)
      last = tMs
      const hours = ms / HOUR_MS
      // on average a stop or a start every 5 minutes; asleep it stays where it is
      if (random() < Math.min(1, ms / 300_000)) moving = !moving
      if (mode === 'sleep') moving = false
      if (moving) {
        speed = clamp((speed === 0 ? 25 : speed) + gaussian(random) * Math.sqrt(ms / 1000) * 2, 5, 130)
        heading += gaussian(random) * Math.min(1, ms / 10_000) * 0.3
        const km = speed * hours
        lat = clamp(lat + (km * Math.cos(heading)) / 111.32, -85, 85)
        lon += (km * Math.sin(heading)) / (111.32 * Math.cos((lat * Math.PI) / 180))
        if (lon > 180) lon -= 360
        if (lon < -180) lon += 360
      } else {
        speed = 0
      }
      battery -= hours * (moving ? 3 : 1) * (MODE_DRAIN[mode] ?? 1)
      if (battery < 5) battery = 100
      return { lat: round(lat, 6), lon: round(lon, 6), speed: round(speed, 1), battery: round(battery, 1) }
    },
    settings: () => ({ mode }),
    commands: {
      set_mode(params) {
        const wanted = typeof params === 'object' && params !== null && !Array.isArray(params) ? params['mode'] : undefined
        if (typeof wanted !== 'string' || !TRACKER_MODES.includes(wanted)) throw new Error(`mode: expected one of ${TRACKER_MODES.join(', ')}`)
        mode = wanted
        return { mode }
      },
    },
  }
}
