// The fleet: devices booted at the connect rate, the sending phase (a duration, a number of
// readings, or until stopped), chaos on a schedule (churn, storms), the command and twin drivers,
// and the drain that waits for every ack (and every desired change to converge) before the
// devices are closed.
import type WebSocket from 'ws'
import type { Clock } from './clock.js'
import { sleep } from './clock.js'
import { CommandDriver } from './command-driver.js'
import { SimDevice, type DeviceHost, type DeviceIdentity } from './device.js'
import { modelOf } from './models.js'
import type { SimOptions } from './options.js'
import { pick, stream, Stream, type Random } from './random.js'
import { simSocketClass } from './socket.js'
import type { Stats } from './stats.js'
import { TwinDriver } from './twin-driver.js'

/** How often the drain and the --readings end are checked, and churn is dealt out, in ms. */
const POLL_MS = 50
const CHURN_TICK_MS = 1000

/** How the fleet's phases went. */
export interface FleetTiming {
  /** From the first boot to the end of sending, in ms. */
  readonly sendingMs: number
  /** From the end of sending to the end of the drain, in ms. */
  readonly drainMs: number
  /** Whether every ack came before --drain-timeout. */
  readonly drained: boolean
  /** Whether the run was stopped (signal) before its planned end. */
  readonly stopped: boolean
  /** Devices connected when the drain ended, just before they were closed. */
  readonly connectedAtEnd: number
}

/** A fleet of simulated devices; see the module comment. */
export class Fleet implements DeviceHost {
  readonly options: SimOptions
  readonly stats: Stats
  readonly clock: Clock
  readonly WebSocket
  readonly keepAckedTs: boolean
  readonly devices: readonly SimDevice[]
  readonly #byId: Map<string, SimDevice>
  readonly #random: Random
  readonly #commandRandom: Random
  readonly #commands: CommandDriver
  readonly #twins: TwinDriver
  #sending = false
  #booted = 0
  #timers = new Set<unknown>()

  constructor(options: SimOptions, identities: readonly DeviceIdentity[], stats: Stats, clock: Clock) {
    this.options = options
    this.stats = stats
    this.clock = clock
    this.keepAckedTs = options.verify
    this.WebSocket = simSocketClass({ localAddresses: options.localAddresses, attach: (id, socket) => this.#attach(id, socket) })
    this.devices = identities.map((identity, index) => new SimDevice(this, index, identity, modelOf(options.model, index)))
    this.#byId = new Map(this.devices.map((device) => [device.id, device]))
    this.#random = stream(options.seed, Stream.fleet)
    this.#commandRandom = stream(options.seed, Stream.commands)
    this.#commands = new CommandDriver({
      options,
      stats,
      clock,
      random: this.#commandRandom,
      target: () => this.#randomDevice(this.#commandRandom, (device) => device.connected && device.running),
    })
    // any booted device: a desired change made while it is away is the case twins are for
    const twinRandom = stream(options.seed, Stream.twins)
    this.#twins = new TwinDriver({ options, stats, clock, random: twinRandom, target: () => this.#randomDevice(twinRandom, () => true) })
  }

  get sending(): boolean {
    return this.#sending
  }

  /** Devices booted so far. */
  get booted(): number {
    return this.#booted
  }

  /** Send calls, bad frames and reboots not yet settled, plus commands in flight and desired changes not yet converged. */
  get outstanding(): number {
    let sum = this.#commands.inflight + this.#twins.inflight + this.#twins.unconverged
    for (const device of this.devices) sum += device.outstanding
    return sum
  }

  /** The twin driver: the devices it changed, what is left to converge. */
  get twins(): TwinDriver {
    return this.#twins
  }

  twinApplied(deviceId: string, version: number): void {
    this.#twins.applied(deviceId, version)
  }

  /** Boots, sends, drains and closes; `signal` ends the sending phase early (then it drains as usual). */
  async run(signal?: AbortSignal): Promise<FleetTiming> {
    const { options, clock } = this
    const started = clock.now()
    this.#sending = true
    this.#ramp(started)
    if (options.churnPercentPerMin > 0) this.#every(CHURN_TICK_MS, () => this.#churn())
    if (options.stormEveryMs !== undefined) this.#every(options.stormEveryMs, () => this.#storm())
    this.#commands.start()
    this.#twins.start()

    const stopped = await this.#sendingPhase(started, signal)
    this.#sending = false
    this.#clearTimers()
    this.#commands.stop()
    this.#twins.stop()
    for (const device of this.devices) device.stopSending()
    const sendingEnded = clock.now()

    let drained = this.outstanding === 0
    const deadline = sendingEnded + options.drainTimeoutMs
    while (!drained && clock.now() < deadline) {
      await sleep(clock, POLL_MS)
      drained = this.outstanding === 0
    }
    const drainEnded = clock.now()
    const connectedAtEnd = this.stats.connected
    await Promise.all(this.devices.map((device) => device.close()))
    return { sendingMs: sendingEnded - started, drainMs: drainEnded - sendingEnded, drained, stopped, connectedAtEnd }
  }

  /** Closes every device at once (an aborted run that will not drain). */
  async close(): Promise<void> {
    this.#sending = false
    this.#clearTimers()
    this.#commands.stop()
    this.#twins.stop()
    await Promise.all(this.devices.map((device) => device.close()))
  }

  // Resolves when sending should end; true when `signal` ended it early.
  async #sendingPhase(started: number, signal: AbortSignal | undefined): Promise<boolean> {
    const { options, clock } = this
    if (signal?.aborted === true) return true
    return await new Promise<boolean>((resolve) => {
      let timer: unknown
      const finish = (early: boolean): void => {
        clock.clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        resolve(early)
      }
      const onAbort = (): void => finish(true)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (options.durationMs !== undefined) {
        timer = clock.setTimeout(() => finish(false), Math.max(0, started + options.durationMs - clock.now()))
      } else if (options.readings !== undefined || options.rate === 0) {
        // --readings: until every device is booted and has sent its share; --rate 0 without a duration: once all are booted
        const check = (): void => {
          if (this.#booted === this.devices.length && this.devices.every((device) => device.done)) finish(false)
          else timer = clock.setTimeout(check, POLL_MS)
        }
        check()
      }
      // otherwise a soak: until the signal
    })
  }

  // Boots devices at --connect-rate: device i at started + i / rate.
  #ramp(started: number): void {
    const { clock, options } = this
    const step = (): void => {
      const due = Math.min(this.devices.length, Math.floor(((clock.now() - started) * options.connectRate) / 1000) + 1)
      while (this.#booted < due && this.#sending) (this.devices[this.#booted++] as SimDevice).start()
      if (this.#booted < this.devices.length && this.#sending) this.#later(Math.max(5, Math.min(1000, 1000 / options.connectRate)), step)
    }
    step()
  }

  // --churn P%/min: each second, P/60 % of the connected devices lose their connection, at random.
  #churn(): void {
    const expected = (this.stats.connected * this.options.churnPercentPerMin) / 100 / (60_000 / CHURN_TICK_MS)
    let count = Math.floor(expected) + (this.#random() < expected % 1 ? 1 : 0)
    for (let tries = 0; count > 0 && tries < count * 20; tries++) {
      const device = this.#randomDevice(this.#random, () => true)
      if (device?.drop('churn') === true) count--
    }
  }

  // --storm: every connected device loses its connection at the same instant.
  #storm(): void {
    this.stats.sessions.storms++
    for (const device of this.devices) device.drop('storm')
  }

  #randomDevice(random: Random, accept: (device: SimDevice) => boolean): SimDevice | undefined {
    for (let tries = 0; tries < 20; tries++) {
      const device = this.devices[pick(random, Math.max(1, this.#booted))]
      if (device !== undefined && accept(device)) return device
    }
    return undefined
  }

  #attach(deviceId: string, socket: WebSocket): void {
    this.#byId.get(deviceId)?.attachSocket(socket)
  }

  #every(ms: number, fn: () => void): void {
    const run = (): void => {
      if (!this.#sending) return
      fn()
      this.#later(ms, run)
    }
    this.#later(ms, run)
  }

  #later(ms: number, fn: () => void): void {
    const timer = this.clock.setTimeout(() => {
      this.#timers.delete(timer)
      fn()
    }, ms)
    this.#timers.add(timer)
  }

  #clearTimers(): void {
    for (const timer of this.#timers) this.clock.clearTimeout(timer)
    this.#timers.clear()
  }
}
