// The operator side of twins (--twin-rate): desired changes through the REST API (docs/twins.md)
// to random devices of the fleet, connected or not, and the time each takes to converge, from
// the PATCH call until the device reported settings applying that desired version or a later one.
// The call, not its 200, starts the clock: the hub sends `twd` as it answers, so a device may
// report before the 200 reaches the simulator. --verify then reads every changed device's twin
// back and checks that its reported state matches its last desired state (`delta` is `{}`).
import type { JsonValue, TwinDocument } from '@fleetgate/device-sdk'
import type { Clock } from './clock.js'
import { sleep } from './clock.js'
import { INTERVAL_RANGE } from './device-commands.js'
import type { SimDevice } from './device.js'
import { SETPOINT_RANGE, TRACKER_MODES, type ModelName } from './models.js'
import type { SimOptions } from './options.js'
import { PacedCalls } from './paced.js'
import { pick, type Random } from './random.js'
import { asRecord, describeAnswer, rest, restRepeatable } from './rest.js'
import type { Stats } from './stats.js'

/** Desired changes in flight at most; beyond, a due change is skipped (and counted). */
export const MAX_TWIN_CHANGES_IN_FLIGHT = 256

/** What the driver needs. */
export interface TwinDriverOptions {
  readonly options: SimOptions
  readonly stats: Stats
  readonly clock: Clock
  readonly random: Random
  /** A random booted device, or undefined when there is none. */
  readonly target: () => SimDevice | undefined
}

/** One device's desired changes: the last version the hub gave, and the changes not yet converged. */
interface DeviceTwins {
  lastVersion: number
  lastDesired: TwinDocument
  readonly waiting: Array<{ readonly version: number; readonly startedAt: number }>
}

/**
 * The next desired patch for a device of `model`: one of its settings, another value than the last one
 * asked (so every change is a change): the thermostat's setpoint, the meter's interval (between
 * its run's interval and twice that; its relay when the run sends no readings), the tracker's mode.
 */
export function nextDesired(model: ModelName, last: TwinDocument, random: Random, rate: number): TwinDocument {
  switch (model) {
    case 'thermostat': {
      const choices = Array.from({ length: 21 }, (_, i) => SETPOINT_RANGE.min + 10 + i / 2).filter((c) => c !== last['setpoint'])
      return { setpoint: choices[pick(random, choices.length)] as number }
    }
    case 'meter': {
      if (rate <= 0) return { relay: last['relay'] === false }
      const base = Math.min(INTERVAL_RANGE.max, Math.max(INTERVAL_RANGE.min, Math.round(1000 / rate)))
      return { intervalMs: last['intervalMs'] === base ? Math.min(INTERVAL_RANGE.max, base * 2) : base }
    }
    case 'tracker': {
      const choices = TRACKER_MODES.filter((mode) => mode !== last['mode'])
      return { mode: choices[pick(random, choices.length)] as JsonValue }
    }
  }
}

/** Changes desired states at the configured rate until stop(); see the module comment. */
export class TwinDriver {
  readonly #o: TwinDriverOptions
  readonly #paced: PacedCalls
  readonly #devices = new Map<string, DeviceTwins>()
  /** The highest desired version each device reported having applied (it may come before the 200). */
  readonly #applied = new Map<string, number>()
  #inflight = 0

  constructor(options: TwinDriverOptions) {
    this.#o = options
    this.#paced = new PacedCalls(options.clock, options.options.twinRate, () => this.#changeOne())
  }

  /** Changes sent and not yet answered. */
  get inflight(): number {
    return this.#inflight
  }

  /** Changes answered 200 whose device has not yet reported applying them. */
  get unconverged(): number {
    let count = 0
    for (const device of this.#devices.values()) count += device.waiting.length
    return count
  }

  /** The devices changed, with the last desired version the hub gave each. */
  get changed(): ReadonlyMap<string, number> {
    return new Map([...this.#devices].map(([id, device]) => [id, device.lastVersion]))
  }

  start(): void {
    this.#paced.start()
  }

  /** Changes no more; those in flight finish (see inflight). */
  stop(): void {
    this.#paced.stop()
  }

  /** `device` reported settings applying desired `version`: the changes up to it converged. */
  applied(deviceId: string, version: number): void {
    this.#applied.set(deviceId, Math.max(this.#applied.get(deviceId) ?? -1, version))
    const device = this.#devices.get(deviceId)
    if (device !== undefined) this.#converge(deviceId, device)
  }

  #converge(id: string, device: DeviceTwins): void {
    const now = this.#o.clock.now()
    const applied = this.#applied.get(id) ?? -1
    while (device.waiting.length > 0 && (device.waiting[0]?.version ?? Infinity) <= applied) {
      const change = device.waiting.shift() as { version: number; startedAt: number }
      this.#o.stats.twinConverged(now - change.startedAt)
    }
  }

  #changeOne(): void {
    const { stats, options, random } = this.#o
    const device = this.#o.target()
    if (device === undefined || this.#inflight >= MAX_TWIN_CHANGES_IN_FLIGHT) {
      stats.twins.skipped++
      return
    }
    const known = this.#devices.get(device.id)
    const desired = nextDesired(device.model.name, known?.lastDesired ?? {}, random, options.rate)
    this.#inflight++
    void this.#change(device.id, desired).finally(() => this.#inflight--)
  }

  async #change(id: string, desired: TwinDocument): Promise<void> {
    const { stats, options, clock } = this.#o
    const startedAt = clock.now()
    let answer
    try {
      // A merge patch applied twice changes the twin once: a call that got no answer is made again.
      answer = await restRepeatable(options.hub, options.token, 'PATCH', `/api/v1/devices/${id}/twin`, { desired }, 30_000, () => stats.twins.repeated++)
    } catch (cause) {
      stats.twinChange('error', cause instanceof Error ? cause.message : String(cause))
      return
    }
    const version = asRecord(answer.body)?.['desiredVersion']
    if (answer.status !== 200 || typeof version !== 'number') {
      stats.twinChange('error', `${id}: ${describeAnswer(answer)}`)
      return
    }
    const device = this.#devices.get(id) ?? { lastVersion: 0, lastDesired: {}, waiting: [] }
    this.#devices.set(id, device)
    stats.twinChange('changed')
    // an answer overtaken by a later change's: that one's convergence covers it
    if (version <= device.lastVersion) return
    device.lastVersion = version
    device.lastDesired = { ...device.lastDesired, ...desired }
    device.waiting.push({ version, startedAt })
    device.waiting.sort((a, b) => a.version - b.version)
    this.#converge(id, device)
  }
}

/** The outcome of --verify for twins. */
export interface TwinVerifyResult {
  readonly devices: number
  readonly inSync: number
  /** Up to 10 devices whose twin was not in sync, with what was off. */
  readonly outOfSync: readonly string[]
  readonly outOfSyncCount: number
  readonly waitedMs: number
}

/**
 * Reads the twin of every device in `changed` (id -> last desired version the driver got) until
 * each is in sync (`delta` `{}`, desired at that version or later) or `timeoutMs` passes.
 */
export async function verifyTwins(changed: ReadonlyMap<string, number>, hub: string, token: string | undefined, clock: Clock, timeoutMs: number): Promise<TwinVerifyResult> {
  const started = clock.now()
  let pending = [...changed.keys()]
  const problems = new Map<string, string>()
  for (;;) {
    const still: string[] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < pending.length) {
        const id = pending[next++] as string
        const problem = await twinProblem(id, changed.get(id) ?? 0, hub, token)
        if (problem === undefined) problems.delete(id)
        else {
          problems.set(id, problem)
          still.push(id)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(16, pending.length) }, worker))
    pending = still
    if (pending.length === 0 || clock.now() - started >= timeoutMs) break
    await sleep(clock, 1000)
  }
  return {
    devices: changed.size,
    inSync: changed.size - problems.size,
    outOfSync: [...problems].slice(0, 10).map(([id, problem]) => `${id}: ${problem}`),
    outOfSyncCount: problems.size,
    waitedMs: clock.now() - started,
  }
}

async function twinProblem(id: string, version: number, hub: string, token: string | undefined): Promise<string | undefined> {
  let answer
  try {
    answer = await rest(hub, token, 'GET', `/api/v1/devices/${id}/twin`)
  } catch (cause) {
    return cause instanceof Error ? cause.message : String(cause)
  }
  const twin = asRecord(answer.body)
  if (answer.status !== 200 || twin === undefined) return describeAnswer(answer)
  const delta = asRecord(twin['delta']) ?? {}
  if (Object.keys(delta).length > 0) return `delta ${JSON.stringify(delta).slice(0, 200)} at desired version ${String(twin['desiredVersion'])}`
  const desiredVersion = twin['desiredVersion']
  if (typeof desiredVersion !== 'number' || desiredVersion < version) return `desired version ${String(desiredVersion)}, the driver set ${version}`
  return undefined
}
