// The operator side of commands (--command-rate): commands go through the REST API (docs/rest.md,
// `wait: true`) to random connected devices of the fleet, and each round trip is timed from the
// call to the final record. Each command has its own id, so a call that got no answer (a cluster
// node killed under the balancer) is made again and cannot create the command twice. The driver knows what each simulated device should answer, so a
// wrong answer is caught, not just counted.
import { randomUUID } from 'node:crypto'
import type { JsonValue } from '@fleetgate/device-sdk'
import type { Clock } from './clock.js'
import type { SimDevice } from './device.js'
import type { SimOptions } from './options.js'
import { PacedCalls } from './paced.js'
import { pick, type Random } from './random.js'
import { asRecord, describeAnswer, restRepeatable } from './rest.js'
import type { CommandOutcome, Stats } from './stats.js'
import { SETPOINT_RANGE } from './models.js'

/** Commands in flight at most; beyond, a due command is skipped (and counted). */
export const MAX_COMMANDS_IN_FLIGHT = 1000

/** What the driver needs. */
export interface CommandDriverOptions {
  readonly options: SimOptions
  readonly stats: Stats
  readonly clock: Clock
  readonly random: Random
  /** A random device that is connected and running, or undefined when there is none. */
  readonly target: () => SimDevice | undefined
}

/** The params the driver sends with `name` to `device`, and a check of the result it expects. */
export function plan(name: string, device: SimDevice, random: Random, rebootDelayMs: number): { params: JsonValue | undefined; check: (result: unknown) => boolean } {
  const r = (result: unknown): Record<string, unknown> => asRecord(result) ?? {}
  switch (name) {
    case 'ping':
      return { params: undefined, check: (result) => r(result)['pong'] === true }
    case 'get_config':
      return { params: undefined, check: (result) => r(result)['model'] === device.model.name }
    case 'set_interval': {
      // the device's own interval: the rate the run was asked for stays what it is
      const ms = device.intervalMs > 0 ? device.intervalMs : 1000
      return { params: { ms }, check: (result) => r(result)['intervalMs'] === ms }
    }
    case 'set_setpoint': {
      const c = SETPOINT_RANGE.min + 13 + pick(random, 13) / 2
      return { params: { c }, check: (result) => r(result)['setpoint'] === c }
    }
    case 'set_relay': {
      const on = random() < 0.8
      return { params: { on }, check: (result) => r(result)['relay'] === on }
    }
    case 'reboot':
      return { params: { delayMs: rebootDelayMs }, check: (result) => r(result)['rebooting'] === true }
    default:
      return { params: undefined, check: () => false }
  }
}

/** Sends commands at the configured rate until stop(); see the module comment. */
export class CommandDriver {
  readonly #o: CommandDriverOptions
  readonly #paced: PacedCalls
  #inflight = 0

  constructor(options: CommandDriverOptions) {
    this.#o = options
    this.#paced = new PacedCalls(options.clock, options.options.commandRate, () => this.#sendOne())
  }

  /** Commands sent and not yet answered. */
  get inflight(): number {
    return this.#inflight
  }

  start(): void {
    this.#paced.start()
  }

  /** Sends no more; those in flight finish (see inflight). */
  stop(): void {
    this.#paced.stop()
  }

  #sendOne(): void {
    const { stats, options, random } = this.#o
    const device = this.#o.target()
    if (device === undefined || this.#inflight >= MAX_COMMANDS_IN_FLIGHT) {
      stats.commands.skipped++
      return
    }
    const name = options.commands[pick(random, options.commands.length)] as string
    const { params, check } = plan(name, device, random, options.rebootDelayMs)
    this.#inflight++
    void this.#roundTrip(device, name, params, check).finally(() => this.#inflight--)
  }

  async #roundTrip(device: SimDevice, name: string, params: JsonValue | undefined, check: (result: unknown) => boolean): Promise<void> {
    const { stats, options } = this.#o
    const body = { id: randomUUID(), name, timeoutMs: options.commandTimeoutMs, wait: true, ...(params === undefined ? {} : { params }) }
    const started = performance.now()
    let outcome: CommandOutcome
    let detail: string | undefined
    let rttMs: number | undefined
    try {
      const answer = await restRepeatable(options.hub, options.token, 'POST', `/api/v1/devices/${device.id}/commands`, body, options.commandTimeoutMs + 15_000, () => stats.commands.repeated++)
      const record = asRecord(answer.body) ?? {}
      if (answer.status === 200) {
        rttMs = performance.now() - started
        const handled = device.handles(name)
        if (handled && record['status'] === 'succeeded' && check(record['result'])) outcome = 'succeeded'
        else if (!handled && record['status'] === 'failed' && record['error'] === 'unknown_command') outcome = 'expected_failure'
        else {
          outcome = 'unexpected'
          detail = `${device.id} answered ${String(record['status'])} ${JSON.stringify(record['result'] ?? record['error'] ?? null).slice(0, 120)}`
        }
      } else if (answer.status === 504) {
        outcome = 'timeout'
        detail = `${device.id}: no result within ${options.commandTimeoutMs} ms`
      } else if (answer.status === 409 && record['error'] === 'device_offline') {
        outcome = 'offline'
      } else {
        outcome = 'error'
        detail = `${device.id}: ${describeAnswer(answer)}`
      }
    } catch (cause) {
      outcome = 'error'
      detail = cause instanceof Error ? cause.message : String(cause)
    }
    stats.command(name, outcome, rttMs, detail)
  }
}
