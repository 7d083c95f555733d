// Models: plausible ranges over a simulated week, the same readings for the same seed and times,
// their own metric sets, their commands.
import { describe, expect, it } from 'vitest'
import { type Metrics } from '@fleetgate/device-sdk'
import { METRIC_KEY_PATTERN } from '@fleetgate/device-sdk/wire'
import { deviceCommands } from '../src/device-commands.js'
import { applyDesired } from '../src/device-twin.js'
import { createModel, MODEL_NAMES, modelOf, type ModelName } from '../src/models.js'
import { nextDesired } from '../src/twin-driver.js'
import { mix, stream, Stream } from '../src/random.js'

const T0 = Date.UTC(2026, 0, 5)
const WEEK_MS = 7 * 86_400_000

/** Samples `model` every `stepMs` for `spanMs` starting at T0. */
function series(name: ModelName, seed: number, index: number, stepMs: number, spanMs = WEEK_MS): Metrics[] {
  const model = createModel(name, stream(seed, Stream.model, index))
  const out: Metrics[] = []
  for (let t = T0; t < T0 + spanMs; t += stepMs) out.push(model.sample(t))
  return out
}

const column = (readings: readonly Metrics[], key: string): unknown[] => readings.map((reading) => reading[key])
const numbers = (readings: readonly Metrics[], key: string): number[] => column(readings, key) as number[]
const within = (values: readonly number[], min: number, max: number): boolean => values.every((v) => Number.isFinite(v) && v >= min && v <= max)

describe('models', () => {
  it('mixed deals thermostat, meter, tracker in turn', () => {
    expect([0, 1, 2, 3, 4, 5].map((i) => modelOf('mixed', i))).toStrictEqual(['thermostat', 'meter', 'tracker', 'thermostat', 'meter', 'tracker'])
    expect(modelOf('meter', 4)).toBe('meter')
  })

  it('each has its own metrics, all valid keys, every reading carries every metric', () => {
    const seen = new Set<string>()
    for (const name of MODEL_NAMES) {
      const model = createModel(name, stream(1, Stream.model, 0))
      expect(model.metrics).toContain(model.primaryMetric)
      for (const metric of model.metrics) {
        expect(METRIC_KEY_PATTERN.test(metric)).toBe(true)
        // one InfluxDB measurement holds every model: a name shared with another type would conflict
        expect(seen.has(metric)).toBe(false)
        seen.add(metric)
      }
      expect(Object.keys(model.sample(T0)).sort()).toStrictEqual([...model.metrics].sort())
    }
    expect(seen.size).toBe(12)
  })

  it('is deterministic: same seed and times, same readings; another seed, others', () => {
    for (const name of MODEL_NAMES) {
      expect(series(name, 42, 7, 60_000, 86_400_000)).toStrictEqual(series(name, 42, 7, 60_000, 86_400_000))
      expect(series(name, 42, 7, 60_000, 3_600_000)).not.toStrictEqual(series(name, 43, 7, 60_000, 3_600_000))
      expect(series(name, 42, 7, 60_000, 3_600_000)).not.toStrictEqual(series(name, 42, 8, 60_000, 3_600_000))
    }
    expect(mix(1, 2, 3)).toBe(mix(1, 2, 3))
    expect(stream(9, Stream.fleet)()).toBe(stream(9, Stream.fleet)())
    // Pinned: the same seed gives the same fleet on any machine and after any refactor.
    expect(mix(1, 2, 3)).toBe(3906383291)
    expect(stream(9, Stream.fleet)()).toBe(0.11921176314353943)
  })

  it('thermostat: temperature 5 to 35 °C, humidity 20 to 80 %, heating around the setpoint', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const week = series('thermostat', seed, seed, 60_000)
      expect(within(numbers(week, 'temperature'), 5, 35)).toBe(true)
      expect(within(numbers(week, 'humidity'), 20, 80)).toBe(true)
      const setpoint = (week[0] as Metrics)['setpoint'] as number
      expect(within(numbers(week, 'setpoint'), 19, 23)).toBe(true)
      expect(column(week, 'heating').every((h) => typeof h === 'boolean')).toBe(true)
      // the room is held near its setpoint: heating comes on below it
      const temperatures = numbers(week, 'temperature').slice(1440)
      expect(Math.min(...temperatures)).toBeGreaterThan(setpoint - 2)
      expect(week.filter((r) => (r['temperature'] as number) < setpoint - 0.31 && r['heating'] !== true)).toStrictEqual([])
    }
  })

  it('meter: power 0 to 9000 W, voltage 207 to 253 V, energy never goes down and matches the power', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const week = series('meter', seed, seed, 60_000)
      const power = numbers(week, 'power')
      const energy = numbers(week, 'energy')
      expect(within(power, 0, 9000)).toBe(true)
      expect(within(numbers(week, 'voltage'), 207, 253)).toBe(true)
      expect(energy.filter((e, i) => i > 0 && e < (energy[i - 1] as number))).toStrictEqual([])
      // a week of the mean power, in kWh, within rounding
      const meanW = power.reduce((a, b) => a + b, 0) / power.length
      expect((energy.at(-1) as number) - (energy[0] as number)).toBeCloseTo((meanW * (WEEK_MS - 60_000)) / 3.6e9, 0)
    }
  })

  it('tracker: lat/lon on Earth near its start, speed 0 to 130 km/h, battery 5 to 100 %', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const day = series('tracker', seed, seed, 10_000, 86_400_000)
      const lat = numbers(day, 'lat')
      const lon = numbers(day, 'lon')
      expect(within(lat, -85, 85)).toBe(true)
      expect(within(lon, -180, 180)).toBe(true)
      expect(within(numbers(day, 'speed'), 0, 130)).toBe(true)
      expect(within(numbers(day, 'battery'), 5, 100)).toBe(true)
      // it moves: at most 130 km/h for 10 s between two fixes, and it does go somewhere
      expect(Math.max(...lat.slice(1).map((l, i) => Math.abs(l - (lat[i] as number))))).toBeLessThan(0.004)
      expect(new Set(lat).size).toBeGreaterThan(10)
      expect(numbers(day, 'speed').some((s) => s === 0)).toBe(true)
    }
  })

  it('has its own commands, which check their params', () => {
    const thermostat = createModel('thermostat', stream(1, Stream.model, 0))
    expect(Object.keys(thermostat.commands)).toStrictEqual(['set_setpoint'])
    expect(thermostat.commands['set_setpoint']?.({ c: 22.5 })).toStrictEqual({ setpoint: 22.5 })
    expect(thermostat.sample(T0)['setpoint']).toBe(22.5)
    expect(thermostat.settings()).toStrictEqual({ setpoint: 22.5 })
    expect(() => thermostat.commands['set_setpoint']?.({ c: 50 })).toThrow('c: expected a number from 5 to 35 °C')

    const meter = createModel('meter', stream(1, Stream.model, 1))
    expect(meter.commands['set_relay']?.({ on: false })).toStrictEqual({ relay: false })
    expect(meter.sample(T0)).toMatchObject({ power: 0, relay: false })
    expect(() => meter.commands['set_relay']?.({ on: 'yes' })).toThrow('on: expected true or false')

    const tracker = createModel('tracker', stream(1, Stream.model, 2))
    expect(Object.keys(tracker.commands)).toStrictEqual(['set_mode'])
    expect(tracker.settings()).toStrictEqual({ mode: 'live' })
    expect(tracker.commands['set_mode']?.({ mode: 'sleep' })).toStrictEqual({ mode: 'sleep' })
    expect(() => tracker.commands['set_mode']?.({ mode: 'turbo' })).toThrow('mode: expected one of live, eco, sleep')
    // asleep, it stays parked
    const parked = Array.from({ length: 60 }, (_, i) => tracker.sample(T0 + i * 60_000)['speed'])
    expect(parked.every((speed) => speed === 0)).toBe(true)
  })
})

describe('twin settings (docs/twins.md)', () => {
  const commandsOf = (name: ModelName, index: number, intervalMs = 1000) => {
    const target = {
      model: createModel(name, stream(1, Stream.model, index)),
      skewMs: 0,
      batch: 1,
      now: () => T0,
      intervalMs,
      rebooting: false,
      scheduleReboot: () => undefined,
      defaultRebootDelayMs: 0,
    }
    return { target, commands: deviceCommands(target) }
  }

  it('apply what desired names through the command handlers and report the settings the device runs with', () => {
    const thermostat = commandsOf('thermostat', 0)
    expect(applyDesired('thermostat', thermostat.commands, { setpoint: 22.5, unrelated: true })).toStrictEqual({ setpoint: 22.5 })
    // out of range: not applied, so the report keeps what runs
    expect(applyDesired('thermostat', thermostat.commands, { setpoint: 99 })).toStrictEqual({ setpoint: 22.5 })
    const meter = commandsOf('meter', 1)
    expect(applyDesired('meter', meter.commands, { intervalMs: 2000 })).toStrictEqual({ intervalMs: 2000, relay: true })
    expect(meter.target.intervalMs).toBe(2000)
    expect(applyDesired('meter', meter.commands, { relay: false, intervalMs: 5 })).toStrictEqual({ intervalMs: 2000, relay: false })
    const tracker = commandsOf('tracker', 2)
    expect(applyDesired('tracker', tracker.commands, {})).toStrictEqual({ mode: 'live' })
    expect(applyDesired('tracker', tracker.commands, { mode: 'eco' })).toStrictEqual({ mode: 'eco' })
  })

  it('drive a new value each time: another setpoint, the interval toggled, another mode', () => {
    const random = stream(3, Stream.twins)
    let last = {}
    for (let i = 0; i < 20; i++) {
      const next = nextDesired('thermostat', last, random, 1)
      expect(next['setpoint']).not.toBe((last as { setpoint?: number }).setpoint)
      last = next
    }
    expect(nextDesired('meter', {}, random, 4)).toStrictEqual({ intervalMs: 250 })
    expect(nextDesired('meter', { intervalMs: 250 }, random, 4)).toStrictEqual({ intervalMs: 500 })
    expect(nextDesired('meter', { relay: true }, random, 0)).toStrictEqual({ relay: false })
    expect(nextDesired('tracker', { mode: 'eco' }, random, 1)['mode']).not.toBe('eco')
  })
})
