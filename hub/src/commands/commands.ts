import { randomUUID } from 'node:crypto'
import type { Clock, ResultFrame } from '@fleetgate/device-sdk'
import type { CommandFrame } from '@fleetgate/device-sdk/wire'
import type { AuditLog } from '../audit/index.js'
import type { Peer, Registry, Sessions } from '../devices/index.js'
import { HubError } from '../errors.js'
import type { Logger } from '../logger.js'
import { commandKey as keyOf, type CommandRecord, type CommandStatus, type CommandStore, type InsertOutcome } from '../store/index.js'
import { TurnBatch } from '../turn-batch.js'
import { tune } from '../tuning.js'
import { checkJson, checkMqttCommand, FINAL_STATUSES, type CommandRequest } from './command-record.js'
import { CommandWaiters } from './command-waiters.js'

/** docs/rest.md: at most 100 queued commands per device. */
export const MAX_QUEUED_PER_DEVICE = 100

/** The command module's tuning knobs; defaults in COMMANDS_DEFAULTS. */
export interface CommandsTuning {
  /** How often queued commands are checked for an ended TTL, in ms; default 250. */
  readonly expirySweepMs: number
  /** Queued commands expired by one sweep at most (the next sweep takes the rest); default 1,000. */
  readonly expiryBatch: number
  /**
   * Cluster mode: how long a REST create for a device whose session another node holds waits for
   * that node to send it before answering it `queued`, in ms; default 2,000.
   */
  readonly remoteSendWaitMs: number
  /** Cluster mode: after a final write PostgreSQL could not take, how long until it is tried again, in ms; default 1,000. */
  readonly retryMs: number
  /** Cluster mode: sent commands of dead nodes ended by one sweep at most (the next sweep takes the rest); default 1,000. */
  readonly orphanBatch: number
}

/** The defaults of CommandsTuning. */
export const COMMANDS_DEFAULTS: CommandsTuning = Object.freeze({ expirySweepMs: 250, expiryBatch: 1000, remoteSendWaitMs: 2000, retryMs: 1000, orphanBatch: 1000 })

/**
 * How a create ended. `held`: a command with ttlMs 0 for a device that is online but whose
 * connection does not take it yet (back-pressure, or commands before it still going out); it is
 * `queued` until written, at most its `timeoutMs`, and a caller may wait for its result as for
 * one written at once.
 */
export type CreateOutcome =
  | { readonly kind: 'created' | 'existing' | 'held'; readonly record: CommandRecord }
  | { readonly kind: 'not_found' | 'device_offline' | 'queue_full' }
  /** Cluster mode: the device's session is on `node`, and the bus to it is down now: nothing was stored. */
  | { readonly kind: 'unreachable'; readonly node: string }

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
  /**
   * A caller waits for the answer (REST): in cluster mode the record names this node as its
   * `waiter`, so the node that delivers it tells this one of each change, and a create for a
   * device on another node waits for it to be sent (at most `remoteSendWaitMs`). Default false.
   */
  readonly awaited?: boolean
}

/**
 * Cluster mode (docs/cluster.md): where the devices whose sessions are not here are, and the bus to the
 * nodes that hold them. Everything these carry is in the store first: a lost message only delays.
 */
export interface CommandRouting {
  /** This node's id. */
  readonly nodeId: string
  /** Whether the bus reaches the other nodes now. */
  readonly reachable: boolean
  /** The live node that holds `device`'s session, other than this one, or undefined. */
  locate(device: string): Promise<string | undefined>
  /** Tells `node` that `device` has queued commands to deliver; false when the bus cannot send now. */
  deliver(node: string, device: string): boolean
  /** Hands `node` a command stored as sent by it, to write to its session; false when the bus cannot send now. */
  send(node: string, record: CommandRecord): boolean
  /** Tells `node`, where a call waits for it, that `record` changed. */
  notify(node: string, record: CommandRecord): void
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
  /** Publishes a command's final record (MQTT result topic, docs/mqtt.md). */
  readonly publishResult: (record: CommandRecord) => void
  /**
   * Told of every change of a record as it becomes visible (`before` undefined for a new one), and
   * of its undoing when a new record could not be stored (`after` undefined); default none.
   */
  readonly changed?: (before: CommandRecord | undefined, after: CommandRecord | undefined) => void
  /** Told of every record once it is stored, new or changed, in the order of the writes (the live event stream); default none. */
  readonly stored?: (record: CommandRecord) => void
  /** Cluster mode: routing over the bus; undefined on one node. */
  readonly routing?: CommandRouting
  /** Time and timers (command timeouts, TTLs, the expiry sweep). */
  readonly clock: Clock
  /** Tuning knobs; defaults in COMMANDS_DEFAULTS. */
  readonly tuning?: Partial<CommandsTuning>
}

/**
 * Commands: one record per command, kept in the store; `sent` only once the `cmd` frame was
 * written to the device's live session; results matched by device and id; timeouts, TTLs and the
 * offline queue enforced here and restored after a restart.
 *
 * In cluster mode (`routing`) the store decides between nodes: a create with an id is an
 * insert-if-absent, the queue bound is counted in the insert's transaction, a node claims a queued
 * command (`queued` -> `sent`) before it writes the frame, and every later change is a
 * compare-and-set on the status before it, so that of two nodes exactly one delivers, ends or
 * expires a command. A command for a device on another node is stored queued and that node is told
 * to deliver it; a node that dies leaves its sent commands to a survivor's sweep, which ends them `timeout`.
 */
export class Commands {
  readonly #options: CommandsOptions
  readonly #clock: Clock
  readonly #tuning: CommandsTuning
  /** Sent commands waiting for a result, with their timeout timers. */
  readonly #inflight = new Map<string, { record: CommandRecord; timer: unknown }>()
  /** Records between their change and its commit: idempotency and delivery must see them. */
  readonly #unsettled = new Map<string, CommandRecord>()
  readonly #waiters: CommandWaiters
  /**
   * Queued commands per device: on one node the count itself, which the store's bound agrees
   * with; in cluster mode what this node queued (another node's queue for a device is found by the
   * delivery it asks for, or by the sweep).
   */
  #queuedCount = new Map<string, number>()
  /** Devices whose queue is being delivered, with the session to deliver to and whether to read the queue again after this pass. */
  readonly #delivering = new Map<string, { peer: Peer; again: boolean }>()
  #sweep: unknown
  #running = false
  /** Cluster mode: which devices have queued commands, read for a turn's new sessions together. */
  readonly #hasQueued = new TurnBatch<string, true>(async (devices) => new Map([...(await this.#options.store.queuedAmong(devices))].map((device) => [device, true as const])))

  constructor(options: CommandsOptions) {
    this.#options = options
    this.#clock = options.clock
    this.#tuning = tune('Commands', COMMANDS_DEFAULTS, options.tuning)
    this.#waiters = new CommandWaiters(options.clock)
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
   * Creates a command and delivers it now (online here), queues it (offline with a TTL; online
   * with a connection that does not take it yet; in cluster mode online on another node, which is
   * told to deliver it), or refuses it.
   */
  async create(device: string, request: CommandRequest, actor: string, options: CreateOptions): Promise<CreateOutcome> {
    if (this.#options.registry.get(device) === undefined) return { kind: 'not_found' }
    const routing = this.#options.routing
    const id = request.id ?? randomUUID()
    if (request.id !== undefined && routing === undefined) {
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
      ...(routing !== undefined && options.awaited === true ? { waiter: routing.nodeId } : {}),
    }
    const session = this.#options.sessions.get(device)
    const here = session !== undefined && session.isOpen() ? session : undefined
    // Commands queued for an online device are going out, or wait for its connection to drain: a
    // new one goes behind them, so that none overtakes another (docs/rest.md: creation order). In
    // cluster mode an id is an idempotency key another node may be creating too: the store decides first.
    if (here !== undefined && !this.#queuedCount.has(device) && (routing === undefined || request.id === undefined)) {
      const sent = this.#deliver(here, base)
      if (sent !== undefined) {
        // The device has the frame already; a command the hub cannot record is forgotten, so that
        // neither its timeout nor its result writes a record nobody was told of.
        await this.#storeNew(actor, sent, () => this.#disarm(sent))
        return { kind: 'created', record: sent }
      }
    }
    const elsewhere = here === undefined && routing !== undefined ? await routing.locate(device) : undefined
    // docs/cluster.md: a call that needs another node fails fast while the bus to it is down.
    if (elsewhere !== undefined && routing?.reachable !== true) return { kind: 'unreachable', node: elsewhere }
    const online = here !== undefined || elsewhere !== undefined
    if (!online && request.ttlMs === 0) return this.#refuse(actor, base, options, 'device_offline', 'device offline')
    // Held for an online device's connection, a command without a TTL waits at most its timeout.
    const record: CommandRecord = { ...base, expiresAt: now + (request.ttlMs > 0 ? request.ttlMs : request.timeoutMs) }
    if (elsewhere !== undefined && request.ttlMs === 0) return this.#sendElsewhere(actor, record, elsewhere)
    const outcome = await this.#storeQueued(actor, record)
    if (outcome.kind === 'exists') return { kind: 'existing', record: this.current(outcome.record) }
    if (outcome.kind === 'queue_full') return this.#refuse(actor, base, options, 'queue_full', `device queue full (${MAX_QUEUED_PER_DEVICE} commands)`)
    if (!online) return { kind: 'created', record }
    const waited = routing !== undefined && options.awaited === true
    // Waiting first: the node that delivers it may tell before the request to deliver returns.
    const sent = waited ? this.#waiters.wait(record, (changed) => changed.status !== 'queued', this.#tuning.remoteSendWaitMs) : undefined
    if (here !== undefined) this.#deliverSoon(here)
    else if (elsewhere !== undefined) routing?.deliver(elsewhere, device)
    const current = (await sent) ?? record
    return { kind: current.status === 'queued' && request.ttlMs === 0 ? 'held' : 'created', record: current }
  }

  /**
   * Cluster mode, a command without a TTL for a device whose session `node` holds: stored as sent
   * by that node (deliver now, or never), then handed to it over the bus, which writes the frame
   * (`sendFor`). A hand-over the bus loses is found by that node's sweep; a session gone by then puts
   * it back in the queue until its `expiresAt`, as for a connection that does not take it (`held`).
   * Two store writes and two bus hops: a device on another node answers nearly as fast as one here.
   */
  async #sendElsewhere(actor: string, queued: CommandRecord, node: string): Promise<CreateOutcome> {
    const record: CommandRecord = { ...queued, status: 'sent', sentAt: this.#clock.now() }
    let existing: CommandRecord | undefined
    try {
      await this.#settle(undefined, record, async () => {
        const outcome = await this.#options.store.insertIfAbsent(record, { node })
        if (outcome.kind === 'exists') existing = outcome.record
        return outcome.kind === 'stored'
      })
    } catch (cause) {
      throw this.#failed(actor, record, cause)
    }
    if (existing !== undefined) return { kind: 'existing', record: this.current(existing) }
    this.#audit(actor, record, record.status)
    this.#options.routing?.send(node, record)
    return { kind: 'created', record }
  }

  /**
   * Cluster mode: a command another node stored as sent by this one (`#sendElsewhere`), from the
   * bus or the sweep: its frame goes to the session here, once; with no session, or one that does
   * not take it, it goes back to the queue.
   */
  sendFor(record: CommandRecord): void {
    const key = keyOf(record.device, record.id)
    if (this.#changing(key) !== undefined || record.status !== 'sent') return
    const peer = this.#options.sessions.get(record.device)
    const sentAt = record.sentAt ?? this.#clock.now()
    if (peer !== undefined && peer.isOpen() && peer.send(this.#frame(record, sentAt))) {
      this.#arm(record, sentAt + record.timeoutMs - this.#clock.now())
      return
    }
    const { sentAt: _unsent, ...rest } = record
    this.#queuedCount.set(record.device, (this.#queuedCount.get(record.device) ?? 0) + 1)
    void this.#update(record, { ...rest, status: 'queued' })
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
   * A command published on MQTT (docs/mqtt.md): the REST rules, no one to answer. A device this hub
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

  /**
   * Resolves with the record once it is final (its timeout guarantees that it becomes final). In
   * cluster mode the node that ends it tells this one; should that news be lost, the sweep reads it.
   */
  async final(record: CommandRecord): Promise<CommandRecord> {
    const key = keyOf(record.device, record.id)
    const isFinal = (changed: CommandRecord): boolean => FINAL_STATUSES.has(changed.status)
    // Waiting first: a change that ends the command while the store is read still wakes it.
    const done = this.#waiters.wait(record, isFinal)
    if (this.#changing(key) === undefined) {
      const stored = await this.#options.store.get(record.device, record.id)
      if (stored !== undefined && this.#changing(key) === undefined) this.#waiters.changed(stored)
    }
    return done
  }

  /** A command that another node changed and that a call here waits for (cluster mode, over the bus). */
  changedElsewhere(record: CommandRecord): void {
    this.#waiters.changed(record)
  }

  /**
   * docs/rest.md: a device's queued commands go out in creation order: right after `hello`, when
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
   * A session opened: its device's queued commands go out. In cluster mode whether it has any is
   * asked for the sessions of a turn together, so a connect storm costs a query a turn.
   */
  online(peer: Peer): void {
    if (this.#options.routing === undefined) {
      this.#deliverSoon(peer)
      return
    }
    this.#hasQueued.get(peer.deviceId).then(
      (queued) => {
        if (queued === true && peer.isOpen()) this.#deliverSoon(peer)
      },
      (err: unknown) => this.#options.log.warn({ err, deviceId: peer.deviceId }, 'queued commands not looked up; the sweep delivers them'),
    )
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

  /** docs/rest.md: a deleted device's queued commands end `expired`. */
  async deviceDeleted(device: string): Promise<void> {
    // As the sweep does: a stored queued record may already be changing (expired, or delivered).
    const queued = (await this.#options.store.queued(device)).map((record) => this.current(record))
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

  /**
   * Cluster mode, each sweep of the node: what the bus may have lost is read from the store.
   * Commands other nodes handed to this one are sent; sent commands of dead nodes whose deadline
   * passed end `timeout` (docs/cluster.md); queued commands of the devices whose sessions are here
   * (`here`) are delivered; calls waiting here read their commands again.
   */
  async sweep(here: readonly string[]): Promise<void> {
    const { store, sessions } = this.#options
    if (this.#options.routing === undefined) return
    const now = this.#clock.now()
    // Handed over by another node, and the bus lost the news.
    for (const record of await store.sent()) this.sendFor(record)
    for (const record of await store.orphaned(now, this.#tuning.orphanBatch)) {
      if (this.#changing(keyOf(record.device, record.id)) !== undefined) continue
      void this.#finish(record, { ...record, status: 'timeout', completedAt: now, error: `no result within ${record.timeoutMs} ms` })
    }
    for (const device of await store.queuedAmong(here)) {
      const peer = sessions.get(device)
      if (peer !== undefined && peer.isOpen()) this.#deliverSoon(peer)
    }
    for (const [device, id] of this.#waiters.keys()) {
      const stored = await store.get(device, id)
      if (stored !== undefined) this.#waiters.changed(this.current(stored))
    }
  }

  /**
   * One pass over a device's stored queue: each command is expired or sent, until the connection
   * refuses one. In cluster mode the pass also sets this node's count of the device's queue to
   * what it left (other nodes queue and deliver too).
   */
  async #deliverStored(peer: Peer): Promise<void> {
    const queued = await this.#options.store.queued(peer.deviceId)
    const now = this.#clock.now()
    let left = 0
    for (const [i, record] of queued.entries()) {
      const key = keyOf(record.device, record.id)
      const current = this.#unsettled.get(key) ?? record
      if (current.status !== 'queued' || this.#inflight.has(key)) continue
      if (current.expiresAt !== undefined && current.expiresAt <= now) {
        void this.#expire(current)
        continue
      }
      // A connection that refuses a frame (closed, or back-pressure) keeps the rest queued, in
      // order, for its drain or the next connect.
      if ((await this.#send(peer, current)) === 'refused') {
        left = queued.length - i
        break
      }
    }
    if (this.#options.routing === undefined) return
    if (left > 0) this.#queuedCount.set(peer.deviceId, left)
    else this.#queuedCount.delete(peer.deviceId)
  }

  /**
   * Sends a stored queued command. On one node the frame goes first and the store follows. In
   * cluster mode the node claims it in the store first (`queued` -> `sent`, which one node only
   * wins: `taken` for the others) and then writes the frame; a frame the connection refuses puts
   * the command back in the queue.
   */
  async #send(peer: Peer, record: CommandRecord): Promise<'sent' | 'taken' | 'refused'> {
    const { store, routing } = this.#options
    if (routing === undefined) {
      const sent = this.#deliver(peer, record)
      if (sent === undefined) return 'refused'
      this.#dequeued(record.device)
      void this.#update(record, sent)
      return 'sent'
    }
    if (!peer.isOpen()) return 'refused'
    const claim: CommandRecord = { ...record, status: 'sent', sentAt: this.#clock.now() }
    let claimed: boolean
    try {
      claimed = await this.#settle(record, claim, () => store.writeIf(claim, 'queued'))
    } catch (err) {
      // The store cannot be reached: the command stays queued for the next delivery or sweep.
      this.#options.log.warn({ err, device: record.device, id: record.id }, 'queued command not claimed')
      return 'refused'
    }
    if (!claimed) return 'taken'
    this.#dequeued(record.device)
    if (peer.send(this.#frame(claim, claim.sentAt ?? 0))) {
      this.#arm(claim, claim.timeoutMs)
      return 'sent'
    }
    await this.#update(claim, record)
    return 'refused'
  }

  /** Starts a delivery of the device's queue; a failure is logged (the commands stay queued for the next one). */
  #deliverSoon(peer: Peer): void {
    this.deliverQueued(peer).catch((err: unknown) => this.#options.log.error({ err, deviceId: peer.deviceId }, 'queued commands not delivered'))
  }

  #frame(record: CommandRecord, sentAt: number): CommandFrame {
    return {
      t: 'cmd',
      id: record.id,
      n: record.name,
      ...(record.params === undefined ? {} : { p: record.params }),
      // The device should not start what the hub will already have given up on.
      exp: sentAt + record.timeoutMs,
    }
  }

  /** Writes the `cmd` frame; the record as sent, or undefined when it could not be written. */
  #deliver(peer: Peer | undefined, record: CommandRecord): CommandRecord | undefined {
    if (peer === undefined || !peer.isOpen()) return undefined
    const sentAt = this.#clock.now()
    if (!peer.send(this.#frame(record, sentAt))) return undefined
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

  async #expire(record: CommandRecord): Promise<void> {
    this.#dequeued(record.device)
    await this.#finish(record, { ...record, status: 'expired', completedAt: this.#clock.now(), error: 'not delivered before its TTL ended' })
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

  /**
   * Persists a change through `write` (default: on one node a plain write; in cluster mode a
   * compare-and-set on `before`'s status), resolving whether it was stored. Until it settles the
   * change is what `get` and delivery see; a change the store did not take is undone in the
   * fan-out counts. Once stored it wakes the calls waiting for it, and in cluster mode tells the
   * node where a call waits for it.
   */
  async #settle(before: CommandRecord | undefined, after: CommandRecord, write?: () => Promise<boolean>): Promise<boolean> {
    const { store, routing } = this.#options
    const key = keyOf(after.device, after.id)
    this.#unsettled.set(key, after)
    this.#options.changed?.(before, after)
    let stored: boolean
    try {
      stored = await (write ?? (() => (before === undefined || routing === undefined ? store.write(after).then(() => true) : store.writeIf(after, before.status))))()
    } catch (err) {
      if (before === undefined) this.#options.changed?.(after, undefined)
      throw err
    } finally {
      if (this.#unsettled.get(key) === after) this.#unsettled.delete(key)
    }
    if (!stored) {
      this.#options.changed?.(after, before)
      return false
    }
    this.#options.stored?.(after)
    this.#waiters.changed(after)
    if (routing !== undefined && after.waiter !== undefined && after.waiter !== routing.nodeId && after.status !== 'queued') routing.notify(after.waiter, after)
    return true
  }

  /**
   * Stores a new record and audits how that ended. A failed write leaves no trace but the audit
   * entry: `undo` gives back what the create took (a sent command's timer), the fan-out counts are
   * set back, and the error goes to the caller (REST answers 500).
   */
  async #storeNew(actor: string, record: CommandRecord, undo?: () => void): Promise<void> {
    try {
      await this.#settle(undefined, record)
    } catch (cause) {
      undo?.()
      throw this.#failed(actor, record, cause)
    }
    this.#audit(actor, record, record.status)
  }

  /**
   * Stores a new queued record unless its id is taken or its device's queue is full, counted by
   * the store in the write's own transaction (across nodes in cluster mode). Audited as `queued`
   * once stored; a store that fails throws as `#storeNew` does.
   */
  async #storeQueued(actor: string, record: CommandRecord): Promise<InsertOutcome> {
    let outcome: InsertOutcome = { kind: 'stored' }
    this.#queuedCount.set(record.device, (this.#queuedCount.get(record.device) ?? 0) + 1)
    try {
      await this.#settle(undefined, record, async () => {
        outcome = await this.#options.store.insertIfAbsent(record, { maxQueued: MAX_QUEUED_PER_DEVICE })
        return outcome.kind === 'stored'
      })
    } catch (cause) {
      this.#dequeued(record.device)
      throw this.#failed(actor, record, cause)
    }
    if (outcome.kind !== 'stored') this.#dequeued(record.device)
    else this.#audit(actor, record, record.status)
    return outcome
  }

  #failed(actor: string, record: CommandRecord, cause: unknown): HubError {
    const reason = `the store refused the write (${(cause as Error).message})`
    this.#audit(actor, record, `failed: ${reason}`)
    return new HubError('HUB_ERR_STORE', `command ${record.device}/${record.id}: ${reason}`, { cause })
  }

  /**
   * Persists a change of a stored record; resolves whether it holds. On one node what happened
   * (the device answered, the TTL ended) stays true when the write fails: it is logged, and the
   * record's next write, which puts its indexes in step with its status whatever the store held
   * (CommandStore.write), sets the store straight. In cluster mode a change another node made
   * first does not hold, and one PostgreSQL could not take is tried again after `retryMs`.
   */
  async #update(before: CommandRecord, after: CommandRecord): Promise<boolean> {
    try {
      return await this.#settle(before, after)
    } catch (err) {
      this.#options.log.error({ err, device: after.device, id: after.id, status: after.status }, 'command change not stored')
      if (this.#options.routing === undefined) return true
      // Still under way meanwhile: the sweep must not take the stored `sent` for a command to send.
      const key = keyOf(after.device, after.id)
      this.#unsettled.set(key, after)
      await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, this.#tuning.retryMs))
      if (this.#unsettled.get(key) === after) this.#unsettled.delete(key)
      return this.#running && this.#update(before, after)
    }
  }

  /** Persists a final record, then tells whoever waits for it; resolves whether this change held. */
  async #finish(before: CommandRecord, done: CommandRecord): Promise<boolean> {
    const held = await this.#update(before, done)
    if (held) this.#ended(done)
    return held
  }

  #ended(done: CommandRecord): void {
    this.#options.counters.commandEnded(done.status)
    this.#options.publishResult(done)
    this.#waiters.changed(done)
  }

  /** A change of the command under way: sent and waiting for its result, or written and not yet settled. */
  #changing(key: string): CommandRecord | undefined {
    return this.#inflight.get(key)?.record ?? this.#unsettled.get(key)
  }

  #audit(actor: string, record: CommandRecord, outcome: string): void {
    this.#options.audit.record(actor, 'command.create', `${record.device}/${record.id}`, outcome)
  }
}
