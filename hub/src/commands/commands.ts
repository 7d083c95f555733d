import { randomUUID } from 'node:crypto'
import type { Clock, ResultFrame } from '@fleetgate/device-sdk'
import type { AuditLog } from '../audit/index.js'
import type { Peer, Registry, Sessions } from '../devices/index.js'
import { HubError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { CommandRecord, CommandStatus, CommandStore } from '../store/index.js'
import { tune } from '../tuning.js'
import { checkJson, checkMqttCommand, FINAL_STATUSES, type CommandRequest } from './command-record.js'

/** CONTRACT §4: at most 100 queued commands per device. */
export const MAX_QUEUED_PER_DEVICE = 100

/** The command module's tuning knobs; defaults in COMMANDS_DEFAULTS. */
export interface CommandsTuning {
  /** How often queued commands are checked for an ended TTL, in ms; default 250. */
  readonly expirySweepMs: number
  /** Queued commands expired by one sweep at most (the next sweep takes the rest); default 1,000. */
  readonly expiryBatch: number
}

/** The defaults of CommandsTuning. */
export const COMMANDS_DEFAULTS: CommandsTuning = Object.freeze({ expirySweepMs: 250, expiryBatch: 1000 })

/**
 * How a create ended. `held`: a command with ttlMs 0 for a device that is online but whose
 * connection does not take it yet (back-pressure, or commands before it still going out); it is
 * `queued` until written, at most its `timeoutMs`, and a caller may wait for its result as for
 * one written at once.
 */
export type CreateOutcome =
  | { readonly kind: 'created' | 'existing' | 'held'; readonly record: CommandRecord }
  | { readonly kind: 'not_found' | 'device_offline' | 'queue_full' }

/** Options of one create. */
export interface CreateOptions {
  /** The fan-out it belongs to. */
  readonly batch?: string
  /**
   * What a command the device cannot take gets (offline with ttl 0, or its queue full): REST's
   * single call answers 409 or 429 and keeps no record; fan-out and MQTT, which have nobody to
   * answer, record it as `expired` with the reason, so that a batch's counts add up to its targets
   * and an MQTT client hears of it on the result topic.
   */
  readonly recordRefusal: boolean
}

/** Figures the command module reports. */
export interface CommandCounters {
  commandEnded(status: CommandStatus): void
  resultIgnored(): void
}

/** What the command module is built from. */
export interface CommandsOptions {
  readonly store: CommandStore
  /** Which devices exist (a command for an unknown device is refused). */
  readonly registry: Pick<Registry, 'get'>
  /** Where each device's live session is. */
  readonly sessions: Pick<Sessions, 'get'>
  readonly audit: Pick<AuditLog, 'record'>
  readonly log: Logger
  readonly counters: CommandCounters
  /** Publishes a command's final record (MQTT result topic, CONTRACT §6). */
  readonly publishResult: (record: CommandRecord) => void
  /**
   * Told of every change of a record as it becomes visible (`before` undefined for a new one), and
   * of its undoing when a new record could not be stored (`after` undefined); default none.
   */
  readonly changed?: (before: CommandRecord | undefined, after: CommandRecord | undefined) => void
  /** Told of every record once it is stored, new or changed, in the order of the writes (the live event stream); default none. */
  readonly stored?: (record: CommandRecord) => void
  /** Time and timers (command timeouts, TTLs, the expiry sweep). */
  readonly clock: Clock
  /** Tuning knobs; defaults in COMMANDS_DEFAULTS. */
  readonly tuning?: Partial<CommandsTuning>
}

const keyOf = (device: string, id: string): string => `${device}\0${id}`

/**
 * Commands: one record per command, kept in the store; `sent` only once the `cmd` frame was
 * written to the device's live session; results matched by device and id; timeouts, TTLs and the
 * offline queue enforced here and restored after a restart.
 */
export class Commands {
  readonly #options: CommandsOptions
  readonly #clock: Clock
  readonly #tuning: CommandsTuning
  /** Sent commands waiting for a result, with their timeout timers. */
  readonly #inflight = new Map<string, { record: CommandRecord; timer: unknown }>()
  /** Records between their change and its commit: idempotency and delivery must see them. */
  readonly #unsettled = new Map<string, CommandRecord>()
  readonly #waiters = new Map<string, Array<(record: CommandRecord) => void>>()
  #queuedCount = new Map<string, number>()
  /** Devices whose queue is being delivered, with the session to deliver to and whether to read the queue again after this pass. */
  readonly #delivering = new Map<string, { peer: Peer; again: boolean }>()
  #sweep: unknown
  #running = false

  constructor(options: CommandsOptions) {
    this.#options = options
    this.#clock = options.clock
    this.#tuning = tune('Commands', COMMANDS_DEFAULTS, options.tuning)
  }

  /** Reads the queue counts, restores sent commands' timeouts after a restart and starts the TTL sweep. */
  async start(): Promise<void> {
    const { store } = this.#options
    this.#queuedCount = await store.queuedCounts()
    const now = this.#clock.now()
    for (const record of await store.sent()) this.#arm(record, (record.sentAt ?? now) + record.timeoutMs - now)
    this.#running = true
    this.#scheduleSweep()
  }

  /** Stops timers; records stay as they are and are resumed by the next `start`. */
  stop(): void {
    this.#running = false
    if (this.#sweep !== undefined) this.#clock.clearTimeout(this.#sweep)
    for (const { timer } of this.#inflight.values()) this.#clock.clearTimeout(timer)
  }

  /** The current record, or undefined. */
  async get(device: string, id: string): Promise<CommandRecord | undefined> {
    return this.#changing(keyOf(device, id)) ?? (await this.#options.store.get(device, id))
  }

  /** The record as it is now: a change of it under way, else `stored` as read from the store. */
  current(stored: CommandRecord): CommandRecord {
    return this.#changing(keyOf(stored.device, stored.id)) ?? stored
  }

  /**
   * Creates a command and delivers it now (online), queues it (offline with a TTL; online with a
   * connection that does not take it yet), or refuses it.
   */
  async create(device: string, request: CommandRequest, actor: string, options: CreateOptions): Promise<CreateOutcome> {
    if (this.#options.registry.get(device) === undefined) return { kind: 'not_found' }
    const id = request.id ?? randomUUID()
    if (request.id !== undefined) {
      // Read again after the store answered: a create of the same id may have begun meanwhile.
      const existing = (await this.get(device, id)) ?? this.#changing(keyOf(device, id))
      if (existing !== undefined) return { kind: 'existing', record: existing }
    }
    const now = this.#clock.now()
    const base: CommandRecord = {
      id,
      device,
      name: request.name,
      ...(request.params === undefined ? {} : { params: request.params }),
      status: 'queued',
      createdAt: now,
      timeoutMs: request.timeoutMs,
      ...(options.batch === undefined ? {} : { batch: options.batch }),
      actor,
    }
    const peer = this.#options.sessions.get(device)
    const online = peer !== undefined && peer.isOpen()
    // Commands queued for an online device are going out, or wait for its connection to drain: a
    // new one goes behind them, so that none overtakes another (CONTRACT §4: creation order).
    const sent = online && !this.#queuedCount.has(device) ? this.#deliver(peer, base) : undefined
    if (sent !== undefined) {
      // The device has the frame already; a command the hub cannot record is forgotten, so that
      // neither its timeout nor its result writes a record nobody was told of.
      await this.#storeNew(actor, sent, () => this.#disarm(sent))
      return { kind: 'created', record: sent }
    }
    if (!online && request.ttlMs === 0) return this.#refuse(actor, base, options, 'device_offline', 'device offline')
    const queued = this.#queuedCount.get(device) ?? 0
    if (queued >= MAX_QUEUED_PER_DEVICE) {
      return this.#refuse(actor, base, options, 'queue_full', `device queue full (${MAX_QUEUED_PER_DEVICE} commands)`)
    }
    // The slot is taken before the write, so that concurrent creates cannot pass the limit together,
    // and given back if the write fails: only what was stored counts.
    this.#queuedCount.set(device, queued + 1)
    // Held for an online device's connection, a command without a TTL waits at most its timeout.
    const record: CommandRecord = { ...base, expiresAt: now + (request.ttlMs > 0 ? request.ttlMs : request.timeoutMs) }
    await this.#storeNew(actor, record, () => this.#dequeued(device))
    if (!online) return { kind: 'created', record }
    this.#deliverSoon(peer)
    return { kind: request.ttlMs === 0 ? 'held' : 'created', record }
  }

  /** A command the device cannot take: answered (`kind`), or recorded as `expired` when nobody is there to answer. */
  async #refuse(actor: string, base: CommandRecord, options: CreateOptions, kind: 'device_offline' | 'queue_full', error: string): Promise<CreateOutcome> {
    if (!options.recordRefusal) {
      this.#audit(actor, base, kind)
      return { kind }
    }
    const expired: CommandRecord = { ...base, status: 'expired', completedAt: base.createdAt, error }
    await this.#storeNew(actor, expired)
    this.#ended(expired)
    return { kind: 'created', record: expired }
  }

  /**
   * A command published on MQTT (CONTRACT §6): the REST rules, no one to answer. A device this hub
   * does not know is ignored quietly (several hubs may share the uplink broker); an invalid request
   * is audited and dropped; an offline device with ttl 0 gets an `expired` record.
   */
  fromMqtt(device: string, payload: unknown, actor: string): void {
    if (this.#options.registry.get(device) === undefined) return
    const request = checkMqttCommand(payload)
    if (!request.ok) {
      this.#options.audit.record(actor, 'command.create', device, `invalid: ${request.message}`)
      return
    }
    this.create(device, request.value, actor, { recordRefusal: true }).catch((err: unknown) => {
      this.#options.log.error({ err, device }, 'mqtt command failed')
    })
  }

  /** Resolves with the record once it is final (its timeout guarantees that it becomes final). */
  final(record: CommandRecord): Promise<CommandRecord> {
    const key = keyOf(record.device, record.id)
    return new Promise((resolve, reject) => {
      // Waiting first: a change that ends the command while the store is read still wakes it.
      this.#waiters.set(key, [...(this.#waiters.get(key) ?? []), resolve])
      if (this.#changing(key) !== undefined) return
      this.#options.store.get(record.device, record.id).then((stored) => {
        const current = stored ?? record
        if (!FINAL_STATUSES.has(current.status) || this.#changing(key) !== undefined) return
        this.#unwait(key, resolve)
        resolve(current)
      }, reject)
    })
  }

  /**
   * CONTRACT §4: a device's queued commands go out in creation order: right after `hello`, when
   * its connection drains, and after a create that queued behind others. One delivery runs per
   * device at a time; a call while it runs makes it read the queue once more when it ends.
   */
  async deliverQueued(peer: Peer): Promise<void> {
    const device = peer.deviceId
    const running = this.#delivering.get(device)
    if (running !== undefined) {
      running.peer = peer
      running.again = true
      return
    }
    const delivery = { peer, again: true }
    this.#delivering.set(device, delivery)
    try {
      while (delivery.again) {
        delivery.again = false
        await this.#deliverStored(delivery.peer)
      }
    } finally {
      this.#delivering.delete(device)
    }
  }

  /**
   * The device's connection takes frames again (uWS `drain`): its commands waiting for it go out.
   * Nothing is read when none waits.
   */
  drained(peer: Peer): void {
    if (this.#queuedCount.has(peer.deviceId)) this.#deliverSoon(peer)
  }

  /** A `res` frame: ends the matching sent command; anything else is ignored and counted. */
  result(peer: Peer, frame: ResultFrame): void {
    const key = keyOf(peer.deviceId, frame.id)
    const inflight = this.#inflight.get(key)
    if (inflight === undefined) {
      this.#options.counters.resultIgnored()
      return
    }
    const refused = frame.r === undefined ? undefined : checkJson(frame.r, 'r')
    if (refused !== undefined) {
      this.invalidResult(peer, frame.id, refused)
      return
    }
    this.#clock.clearTimeout(inflight.timer)
    this.#inflight.delete(key)
    const done: CommandRecord = {
      ...inflight.record,
      status: frame.ok ? 'succeeded' : 'failed',
      completedAt: this.#clock.now(),
      ...(frame.r === undefined ? {} : { result: frame.r }),
      ...(frame.e !== undefined ? { error: frame.e } : frame.ok ? {} : { error: 'failed' }),
    }
    void this.#finish(inflight.record, done)
  }

  /** A `res` frame that names a sent command but does not validate: the command fails with the reason. */
  invalidResult(peer: Peer, id: string, reason: string): void {
    this.result(peer, { t: 'res', id, ok: false, e: `invalid result: ${reason}` })
  }

  /** CONTRACT §4: a deleted device's queued commands end `expired`. */
  async deviceDeleted(device: string): Promise<void> {
    // As the sweep does: a stored queued record may already be changing (expired, or delivered).
    const queued = (await this.#options.store.queued(device)).map((record) => this.#unsettled.get(keyOf(record.device, record.id)) ?? record)
    await Promise.all(queued.filter((record) => record.status === 'queued').map((record) => this.#expire(record)))
  }

  /** Commands a device has, newest first. */
  async list(device: string, status: CommandStatus | undefined, limit: number): Promise<CommandRecord[]> {
    // The status filter applies to the record as it is now: a stored record may still show the
    // status its pending write is replacing (queued, while the device already answered).
    const current = (stored: CommandRecord): CommandRecord => this.current(stored)
    const stored = await this.#options.store.list(device, status === undefined ? undefined : (record) => current(record).status === status, limit)
    return stored.map(current)
  }

  /** One pass over a device's stored queue: each command is expired or written, until the connection refuses one. */
  async #deliverStored(peer: Peer): Promise<void> {
    const queued = await this.#options.store.queued(peer.deviceId)
    const now = this.#clock.now()
    for (const record of queued) {
      const key = keyOf(record.device, record.id)
      const current = this.#unsettled.get(key) ?? record
      if (current.status !== 'queued' || this.#inflight.has(key)) continue
      if (current.expiresAt !== undefined && current.expiresAt <= now) {
        void this.#expire(current)
        continue
      }
      const sent = this.#deliver(peer, current)
      // A connection that refuses a frame (closed, or back-pressure) keeps the rest queued, in
      // order, for its drain or the next connect.
      if (sent === undefined) return
      this.#dequeued(current.device)
      void this.#update(current, sent)
    }
  }

  /** Starts a delivery of the device's queue; a failure is logged (the commands stay queued for the next one). */
  #deliverSoon(peer: Peer): void {
    this.deliverQueued(peer).catch((err: unknown) => this.#options.log.error({ err, deviceId: peer.deviceId }, 'queued commands not delivered'))
  }

  /** Writes the `cmd` frame; the record as sent, or undefined when it could not be written. */
  #deliver(peer: Peer | undefined, record: CommandRecord): CommandRecord | undefined {
    if (peer === undefined || !peer.isOpen()) return undefined
    const sentAt = this.#clock.now()
    const frame = {
      t: 'cmd' as const,
      id: record.id,
      n: record.name,
      ...(record.params === undefined ? {} : { p: record.params }),
      // The device should not start what the hub will already have given up on.
      exp: sentAt + record.timeoutMs,
    }
    if (!peer.send(frame)) return undefined
    const sent: CommandRecord = { ...record, status: 'sent', sentAt }
    this.#arm(sent, record.timeoutMs)
    return sent
  }

  /** Forgets a sent command: its timeout is cancelled and a result for it will be ignored. */
  #disarm(record: CommandRecord): void {
    const key = keyOf(record.device, record.id)
    const inflight = this.#inflight.get(key)
    if (inflight !== undefined) this.#clock.clearTimeout(inflight.timer)
    this.#inflight.delete(key)
  }

  #arm(record: CommandRecord, delayMs: number): void {
    const key = keyOf(record.device, record.id)
    const timer = this.#clock.setTimeout(() => {
      this.#inflight.delete(key)
      void this.#finish(record, { ...record, status: 'timeout', completedAt: this.#clock.now(), error: `no result within ${record.timeoutMs} ms` })
    }, Math.max(0, delayMs))
    this.#inflight.set(key, { record, timer })
  }

  #expire(record: CommandRecord): Promise<void> {
    this.#dequeued(record.device)
    return this.#finish(record, { ...record, status: 'expired', completedAt: this.#clock.now(), error: 'not delivered before its TTL ended' })
  }

  /** The next TTL sweep, one interval after the last one ended (so sweeps never overlap). */
  #scheduleSweep(): void {
    this.#sweep = this.#clock.setTimeout(() => {
      this.#expireDue().then(
        () => {
          if (this.#running) this.#scheduleSweep()
        },
        (err: unknown) => {
          this.#options.log.error({ err }, 'command expiry sweep failed')
          if (this.#running) this.#scheduleSweep()
        },
      )
    }, this.#tuning.expirySweepMs)
  }

  async #expireDue(): Promise<void> {
    const due = await this.#options.store.expiredBy(this.#clock.now(), this.#tuning.expiryBatch)
    for (const record of due) {
      const current = this.#unsettled.get(keyOf(record.device, record.id)) ?? record
      if (current.status === 'queued') void this.#expire(current)
    }
  }

  #dequeued(device: string): void {
    const left = (this.#queuedCount.get(device) ?? 1) - 1
    if (left > 0) this.#queuedCount.set(device, left)
    else this.#queuedCount.delete(device)
  }

  /** Persists a change; until it is durable the change is what `get` and delivery see. */
  async #settle(before: CommandRecord | undefined, after: CommandRecord): Promise<void> {
    const key = keyOf(after.device, after.id)
    this.#unsettled.set(key, after)
    this.#options.changed?.(before, after)
    try {
      await this.#options.store.write(after)
    } finally {
      if (this.#unsettled.get(key) === after) this.#unsettled.delete(key)
    }
    this.#options.stored?.(after)
  }

  /**
   * Stores a new record and audits how that ended. A failed write leaves no trace but the audit
   * entry: `undo` gives back what the create took (a queue slot, a sent command's timer), the
   * fan-out counts are set back, and the error goes to the caller (REST answers 500).
   */
  async #storeNew(actor: string, record: CommandRecord, undo?: () => void): Promise<void> {
    try {
      await this.#settle(undefined, record)
    } catch (cause) {
      undo?.()
      this.#options.changed?.(record, undefined)
      const reason = `the store refused the write (${(cause as Error).message})`
      this.#audit(actor, record, `failed: ${reason}`)
      throw new HubError('HUB_ERR_STORE', `command ${record.device}/${record.id}: ${reason}`, { cause })
    }
    this.#audit(actor, record, record.status)
  }

  /**
   * Persists a change of a stored record. What happened (the device answered, the TTL ended) stays
   * true when the write fails: it is logged, and the record's next write, which puts its indexes in
   * step with its status whatever the store held (CommandStore.write), sets the store straight.
   */
  #update(before: CommandRecord, after: CommandRecord): Promise<void> {
    return this.#settle(before, after).catch((err: unknown) => {
      this.#options.log.error({ err, device: after.device, id: after.id, status: after.status }, 'command change not stored')
    })
  }

  /** Persists a final record, then tells whoever waits for it. */
  async #finish(before: CommandRecord, done: CommandRecord): Promise<void> {
    await this.#update(before, done)
    this.#ended(done)
  }

  #ended(done: CommandRecord): void {
    this.#options.counters.commandEnded(done.status)
    this.#options.publishResult(done)
    const key = keyOf(done.device, done.id)
    const waiters = this.#waiters.get(key)
    this.#waiters.delete(key)
    for (const wake of waiters ?? []) wake(done)
  }

  /** A change of the command under way: sent and waiting for its result, or written and not yet settled. */
  #changing(key: string): CommandRecord | undefined {
    return this.#inflight.get(key)?.record ?? this.#unsettled.get(key)
  }

  #unwait(key: string, resolve: (record: CommandRecord) => void): void {
    const left = (this.#waiters.get(key) ?? []).filter((waiter) => waiter !== resolve)
    if (left.length > 0) this.#waiters.set(key, left)
    else this.#waiters.delete(key)
  }

  #audit(actor: string, record: CommandRecord, outcome: string): void {
    this.#options.audit.record(actor, 'command.create', `${record.device}/${record.id}`, outcome)
  }
}
