// One simulated device: a real DeviceClient session with the hub, a model that makes its readings,
// handlers for the hub's commands, settings from its desired twin, and the chaos the fleet puts it
// through (cut connections, reboots, a wrong clock, invalid frames). It uses the public SDK only.
import type WebSocket from 'ws'
import { DeviceClient, MemoryQueueStore, type KeyType, type Metrics, type SdkError, type TwinDocument, type WebSocketConstructor } from '@fleetgate/device-sdk'
import { BAD_FRAME_KINDS, BadFrameQueue, badFrame, isBadFrameNak } from './bad-frames.js'
import { skewedClock, type Clock } from './clock.js'
import { BUILTIN_COMMANDS, deviceCommands, registerCommands } from './device-commands.js'
import { applyDesired } from './device-twin.js'
import { createModel, type Model, type ModelCommand, type ModelName } from './models.js'
import type { SimOptions } from './options.js'
import { stream, Stream, type Random } from './random.js'
import type { DisconnectCause, Stats } from './stats.js'

/** A device of the fleet file: id and key. */
export interface DeviceIdentity {
  readonly id: string
  readonly keyType: KeyType
  /** hmac: the key; ed25519: the PKCS#8 private key (base64url). */
  readonly key: string
}

/** What a device needs of its fleet. */
export interface DeviceHost {
  readonly options: SimOptions
  readonly stats: Stats
  /** The fleet's clock; each device skews it by its own offset. */
  readonly clock: Clock
  readonly WebSocket: WebSocketConstructor
  /** Whether devices produce readings now. */
  readonly sending: boolean
  /** Whether to keep every acked reading's ts (for --verify). */
  readonly keepAckedTs: boolean
  /** The device reported settings applying its desired twin at `version` (the report is durable). */
  twinApplied(deviceId: string, version: number): void
}

/** How long a rebooting device waits for its acks before it restarts anyway, in ms. */
const REBOOT_FLUSH_MS = 10_000
/** A generator this far behind its schedule skips ahead instead of catching up in a burst, in ms. */
const MAX_LAG_MS = 5000
const OPEN = 1

type State = 'idle' | 'running' | 'rebooting' | 'stopped'

/** A simulated device; see the module comment. */
export class SimDevice {
  readonly index: number
  readonly identity: DeviceIdentity
  readonly model: Model
  /** This device's clock offset, in ms. */
  readonly skewMs: number
  /** Every acked reading's ts, when the host keeps them (in ack order). */
  readonly ackedTs: number[] | undefined
  /** Smallest and largest ts stamped (undefined before the first reading). */
  minTs: number | undefined
  maxTs: number | undefined
  readonly #host: DeviceHost
  readonly #clock: Clock
  readonly #badRandom: Random
  readonly #backoffRandom: Random
  readonly #phase: number
  // survives reboots, like a device's flash: unacked readings, twin reports and the next seq
  readonly #store = new MemoryQueueStore()
  /** Its command handlers, which also apply desired settings. */
  readonly #commands: Readonly<Record<string, ModelCommand>>
  #client: DeviceClient | undefined
  #socket: WebSocket | undefined
  #state: State = 'idle'
  #connected = false
  #everConnected = false
  #intervalMs: number
  #timer: unknown
  #rebootTimer: unknown
  #nextAt = 0
  #lastTs = 0
  #produced = 0
  #pendingCalls = 0
  #badKind = 0
  readonly #bad = new BadFrameQueue()
  #dropCause: DisconnectCause | undefined

  constructor(host: DeviceHost, index: number, identity: DeviceIdentity, model: ModelName) {
    const { seed, clockSkewMs, rate } = host.options
    this.#host = host
    this.index = index
    this.identity = identity
    this.model = createModel(model, stream(seed, Stream.model, index))
    const skewRandom = stream(seed, Stream.skew, index)
    this.skewMs = clockSkewMs === 0 ? 0 : Math.round((2 * skewRandom() - 1) * clockSkewMs)
    this.#clock = skewedClock(host.clock, this.skewMs)
    this.#badRandom = stream(seed, Stream.badFrames, index)
    this.#backoffRandom = stream(seed, Stream.backoff, index)
    this.#phase = stream(seed, Stream.device, index)()
    this.#intervalMs = rate > 0 ? 1000 / rate : 0
    this.ackedTs = host.keepAckedTs ? [] : undefined
    const device = this
    this.#commands = deviceCommands({
      model: this.model,
      skewMs: this.skewMs,
      batch: host.options.batch,
      defaultRebootDelayMs: host.options.rebootDelayMs,
      now: () => this.#clock.now(),
      get intervalMs() {
        return device.#intervalMs
      },
      set intervalMs(ms: number) {
        device.#intervalMs = ms
      },
      get rebooting() {
        return device.#state === 'rebooting'
      },
      scheduleReboot: (delayMs) => host.clock.setTimeout(() => void this.reboot(delayMs), 0),
    })
  }

  get id(): string {
    return this.identity.id
  }

  /** Whether a session is open now. */
  get connected(): boolean {
    return this.#connected
  }

  /** Whether a session was ever open. */
  get everConnected(): boolean {
    return this.#everConnected
  }

  /** Whether the device runs (started, not rebooting, not stopped). */
  get running(): boolean {
    return this.#state === 'running'
  }

  /** Milliseconds between two readings (set_interval changes it). */
  get intervalMs(): number {
    return this.#intervalMs
  }

  /** Whether it has produced all its readings (--readings), or never will produce more. */
  get done(): boolean {
    const { readings } = this.#host.options
    return this.#state !== 'idle' && (this.#intervalMs === 0 || (readings !== undefined && this.#produced >= readings))
  }

  /**
   * Send calls and bad frames not yet settled, plus one while rebooting or without a session: the
   * fleet drains until 0, so a run ends with every device back online and every reading settled.
   */
  get outstanding(): number {
    const away = this.#state === 'rebooting' || (this.#state === 'running' && !this.#connected) ? 1 : 0
    return this.#pendingCalls + this.#bad.pending + away
  }

  /** Whether the device answers command `name` (the rest get `unknown_command`). */
  handles(name: string): boolean {
    return BUILTIN_COMMANDS.includes(name) || name in this.model.commands
  }

  /** Boots the device: a client that connects, and readings from now on. */
  start(): void {
    if (this.#state !== 'idle') return
    this.#state = 'running'
    this.#host.stats.perModel[this.model.name].devices++
    this.#openClient()
    const frameMs = this.#frameMs()
    if (frameMs > 0) this.#schedule(this.#host.clock.now() + this.#phase * frameMs)
  }

  /** The fleet's socket class hands over each socket the client opens. */
  attachSocket(socket: WebSocket): void {
    this.#socket = socket
  }

  /** Cuts the connection as a network would (no close frame); false when there is none to cut. */
  drop(cause: DisconnectCause): boolean {
    const socket = this.#socket
    if (!this.#connected || socket === undefined || socket.readyState !== OPEN) return false
    this.#dropCause = cause
    socket.terminate()
    return true
  }

  /** Stops producing readings (the end of the run's sending phase). */
  stopSending(): void {
    this.#clearTimer()
  }

  /**
   * Restarts like firmware does: stop sampling, flush telemetry (at most 10 s), close the session,
   * stay away `delayMs`, then boot a new client on the same queue store, which resends anything unacked.
   */
  async reboot(delayMs: number): Promise<void> {
    const client = this.#client
    if (this.#state !== 'running' || client === undefined) return
    this.#state = 'rebooting'
    this.#clearTimer()
    let timer: unknown
    const flushed = client.flush().then(
      () => true,
      () => false,
    )
    const timedOut = new Promise<false>((resolve) => (timer = this.#host.clock.setTimeout(() => resolve(false), REBOOT_FLUSH_MS)))
    await Promise.race([flushed, timedOut])
    this.#host.clock.clearTimeout(timer)
    if (this.#state !== 'rebooting') return
    this.#dropCause = 'reboot'
    await client.close()
    await new Promise<void>((resolve) => (this.#rebootTimer = this.#host.clock.setTimeout(resolve, delayMs)))
    this.#rebootTimer = undefined
    if (this.#state !== 'rebooting') return
    this.#state = 'running'
    this.#openClient()
    if (this.#host.sending && this.#frameMs() > 0 && !this.done) this.#schedule(this.#host.clock.now())
  }

  /** Stops for good; readings still unacked reject with SDK_ERR_CLOSED and stay unsettled in the stats. */
  async close(): Promise<void> {
    this.#state = 'stopped'
    this.#clearTimer()
    if (this.#rebootTimer !== undefined) this.#host.clock.clearTimeout(this.#rebootTimer)
    await this.#client?.close()
  }

  #openClient(): void {
    const host = this.#host
    const client = new DeviceClient({
      // A list of hubs (a cluster's nodes without a balancer): spread round-robin.
      url: host.options.hubs[this.index % host.options.hubs.length] ?? host.options.hub,
      deviceId: this.identity.id,
      key: this.identity.key,
      keyType: this.identity.keyType,
      WebSocket: host.WebSocket,
      clock: this.#clock,
      random: this.#backoffRandom,
      batchMaxReadings: host.options.batch,
      store: this.#store,
    })
    this.#client = client
    client.on('connected', (hello) => this.#onConnected(hello.lim.rate))
    client.on('disconnected', ({ code }) => this.#onDisconnected(code))
    client.on('error', (error) => this.#onError(error))
    client.on('command', (frame) => host.stats.handledCommand(this.model.name, frame.n))
    client.twin.on('desired', ({ desired, version }) => this.#onDesired(client, desired, version))
    registerCommands(client, this.#commands)
    client.connect().catch(() => undefined)
  }

  // docs/twins.md: the model takes its settings from desired and reports what it applied. A report is
  // made for every new desired version, even one that changes nothing, so its answer says when the
  // device has caught up (it is merged with any report still waiting).
  #onDesired(client: DeviceClient, desired: TwinDocument, version: number): void {
    const report = applyDesired(this.model.name, this.#commands, desired)
    client.twin.report(report).then(
      () => this.#host.twinApplied(this.id, version),
      (error: SdkError) => {
        // closed by a reboot or the end of the run: the next client reports again
        if (error.code !== 'SDK_ERR_CLOSED') this.#host.stats.error(error.code, `${this.id}: twin report: ${error.message}`)
      },
    )
  }

  #onConnected(hubRate: number): void {
    const stats = this.#host.stats
    const { rate, batch } = this.#host.options
    if (rate / batch > hubRate) {
      stats.warn(`--rate ${rate}/s in frames of ${batch} is ${rate / batch} frames/s per device, above the hub's ${hubRate}: readings queue up (raise --batch)`)
    }
    this.#connected = true
    stats.connectedNow(1)
    stats.sessions.connects++
    if (this.#everConnected) stats.sessions.reconnects++
    this.#everConnected = true
    // bad frames that were waiting, or lost with the last session before their nak
    const resent = this.#bad.resent
    this.#bad.opened(this.#socket)
    stats.badFrames.resent += this.#bad.resent - resent
  }

  #onDisconnected(code: number): void {
    const stats = this.#host.stats
    this.#connected = false
    stats.connectedNow(-1)
    const cause = this.#dropCause ?? (code === 1006 ? 'network' : 'hub')
    this.#dropCause = undefined
    // the run's own end is not a disconnect worth counting
    if (this.#state !== 'stopped') stats.disconnected(cause, code)
    this.#bad.lost()
  }

  #onError(error: SdkError): void {
    const stats = this.#host.stats
    if (isBadFrameNak(error)) {
      if (!this.#bad.naked()) stats.strayNak('invalid')
      else stats.badFrameNaked(this.model.name)
      return
    }
    switch (error.code) {
      case 'SDK_ERR_NAK':
        stats.strayNak(error.reason ?? 'unknown')
        return
      case 'SDK_ERR_HANDSHAKE':
        // an attempt that failed (refused, timed out, 429): the SDK retries; "never connected" is the check
        stats.failedAttempt(`${this.identity.id}: ${error.message}`)
        return
      case 'SDK_ERR_COMMAND':
        // a handler refused its params: the command's outcome, judged by whoever sent it
        return
      default:
        stats.error(error.code, `${this.identity.id}: ${error.message}`)
    }
  }

  #frameMs(): number {
    return this.#intervalMs * this.#host.options.batch
  }

  #schedule(at: number): void {
    const now = this.#host.clock.now()
    if (at < now - MAX_LAG_MS) {
      // too far behind to catch up without a burst the hub would not see from real devices
      this.#host.stats.generator.skippedFrames += Math.floor((now - at) / this.#frameMs())
      at = now
    }
    this.#nextAt = at
    this.#timer = this.#host.clock.setTimeout(() => this.#tick(), Math.max(0, at - now))
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#host.clock.clearTimeout(this.#timer)
    this.#timer = undefined
  }

  // One frame's worth of readings, sampled at their own times within the last frame interval.
  #tick(): void {
    this.#timer = undefined
    const { options, sending, stats } = this.#host
    if (!sending || this.#state !== 'running' || this.done) return
    stats.tickLag(Math.max(0, this.#host.clock.now() - this.#nextAt))
    const count = options.readings === undefined ? options.batch : Math.min(options.batch, options.readings - this.#produced)
    const now = this.#clock.now()
    const readings: Array<{ metrics: Metrics; ts: number }> = []
    for (let i = 0; i < count; i++) {
      const ts = this.#stamp(now - (count - 1 - i) * this.#intervalMs)
      readings.push({ metrics: this.model.sample(ts), ts })
    }
    this.#send(readings)
    this.#produced += count
    if (options.badFramesPercent > 0 && this.#badRandom() * 100 < options.badFramesPercent) this.#sendBad(now)
    if (!this.done) this.#schedule(this.#nextAt + this.#frameMs())
  }

  // Device time, strictly increasing per device across sessions and reboots, so each reading is its own InfluxDB point.
  #stamp(at: number): number {
    const ts = Math.max(Math.floor(at), this.#lastTs + 1)
    this.#lastTs = ts
    this.minTs ??= ts
    this.maxTs = ts
    return ts
  }

  // One send call: `readings` is one reading (send) or a batch (sendBatch); its promise settles them together.
  #send(readings: ReadonlyArray<{ metrics: Metrics; ts: number }>): void {
    const client = this.#client as DeviceClient
    const stats = this.#host.stats
    const model = this.model.name
    const count = readings.length
    const first = readings[0] as { metrics: Metrics; ts: number }
    stats.sent(model, count)
    this.#pendingCalls++
    const started = performance.now()
    const sent = count === 1 ? client.send(first.metrics, { ts: first.ts }) : client.sendBatch(readings)
    sent.then(
      () => {
        this.#pendingCalls--
        stats.acked(model, count, performance.now() - started)
        if (this.ackedTs !== undefined) for (const reading of readings) this.ackedTs.push(reading.ts)
      },
      (error: SdkError) => {
        this.#pendingCalls--
        this.#rejected(error, count)
      },
    )
  }

  #rejected(error: SdkError, count: number): void {
    const stats = this.#host.stats
    switch (error.code) {
      case 'SDK_ERR_NAK':
        stats.nakedUnexpected(this.model.name, count, error.reason)
        return
      case 'SDK_ERR_DROPPED':
        stats.dropped(count)
        return
      case 'SDK_ERR_CLOSED':
        // closed at the end or by a reboot that could not flush: left unsettled, reported as unacked
        return
      default:
        stats.failed(count)
        stats.error(error.code, `${this.identity.id}: ${error.message}`)
    }
  }

  #sendBad(now: number): void {
    const kind = BAD_FRAME_KINDS[this.#badKind++ % BAD_FRAME_KINDS.length] as (typeof BAD_FRAME_KINDS)[number]
    const ts = this.#stamp(now)
    this.#host.stats.badFrameSent(this.model.name)
    this.#bad.add(badFrame(kind, ts, this.model.sample(ts)), this.#connected ? this.#socket : undefined)
  }
}
