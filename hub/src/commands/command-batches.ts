import { randomUUID } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import type { Clock } from '@fleetgate/device-sdk'
import type { Registry } from '../devices/index.js'
import type { Logger } from '../logger.js'
import { zeroCounts, type BatchInfo, type BatchStore, type CommandRecord, type CommandStatus, type CommandStore } from '../store/index.js'
import { tune } from '../tuning.js'
import type { CommandRequest } from './command-record.js'
import type { Commands } from './commands.js'

/** A fan-out's targets (docs/rest.md): listed ids, devices with every given tag, or both (then both must hold). */
export interface BatchTarget {
  readonly ids: readonly string[] | undefined
  readonly tags: ReadonlyArray<readonly [string, string]> | undefined
}

/** A fan-out's live counts (docs/rest.md). */
export type BatchStatus = { readonly batch: string; readonly targeted: number } & Record<CommandStatus, number>

/** Fan-out's tuning knobs; defaults in BATCHES_DEFAULTS. */
export interface BatchesTuning {
  /** Commands created per turn of the event loop while fanning out; default 256. */
  readonly chunkCommands: number
  /** Devices read per registry page while resolving a tag target; default 1,000. */
  readonly resolvePage: number
}

/** The defaults of BatchesTuning. */
export const BATCHES_DEFAULTS: BatchesTuning = Object.freeze({ chunkCommands: 256, resolvePage: 1000 })

/** What fan-out is built from. */
export interface BatchesOptions {
  readonly commands: Commands
  readonly commandStore: CommandStore
  readonly batchStore: BatchStore
  readonly registry: Registry
  readonly log: Logger
  readonly clock: Clock
  /**
   * Whether other nodes change this store's commands too (PostgreSQL): then every count is read
   * from the store, which counts each change as it commits; else a batch of this run is counted
   * here as its commands change. Default false.
   */
  readonly sharedStore?: boolean
  /** Tuning knobs; defaults in BATCHES_DEFAULTS. */
  readonly tuning?: Partial<BatchesTuning>
}

/**
 * Fan-out: resolves the targets, records the batch, then creates one command per device in
 * chunks, yielding to the event loop between chunks so that 10,000 targets never stall ingest.
 */
export class CommandBatches {
  readonly #options: BatchesOptions
  readonly #tuning: BatchesTuning
  /** Live counts of the batches started since this start; older batches are counted from the store. */
  readonly #counts = new Map<string, Record<CommandStatus, number>>()

  constructor(options: BatchesOptions) {
    this.#options = options
    this.#tuning = tune('CommandBatches', BATCHES_DEFAULTS, options.tuning)
  }

  /** Resolves the targets and records the batch; the commands are created after this resolves. */
  async start(target: BatchTarget, request: CommandRequest, actor: string): Promise<{ batch: string; targeted: number }> {
    const devices = await this.#resolve(target)
    const info: BatchInfo = { batch: randomUUID(), name: request.name, targeted: devices.length, createdAt: this.#options.clock.now() }
    await this.#options.batchStore.create(info)
    if (this.#options.sharedStore !== true) this.#counts.set(info.batch, zeroCounts())
    void this.#fanOut(info.batch, devices, request, actor)
    return { batch: info.batch, targeted: info.targeted }
  }

  /** Keeps the live counts: `Commands` calls this on every change of a record, and on the undoing of a new one. */
  changed(before: CommandRecord | undefined, after: CommandRecord | undefined): void {
    const batch = (after ?? before)?.batch
    const counts = batch === undefined ? undefined : this.#counts.get(batch)
    if (counts === undefined) return
    if (before !== undefined) counts[before.status]--
    if (after !== undefined) counts[after.status]++
  }

  /**
   * The batch's counts by status, or undefined for an unknown batch. A batch of this run on one
   * node is counted here as its commands change (an operator polls this while 10,000 commands
   * run); an older one, or any batch on a shared store, as the store counts it.
   */
  async status(batch: string): Promise<BatchStatus | undefined> {
    const info = await this.#options.batchStore.get(batch)
    if (info === undefined) return undefined
    const counts = this.#counts.get(batch) ?? (await this.#options.commandStore.batchCounts(batch))
    return { batch, targeted: info.targeted, ...counts }
  }

  async #resolve(target: BatchTarget): Promise<string[]> {
    const { registry } = this.#options
    const listed = target.ids === undefined ? undefined : new Set(target.ids)
    if (target.tags === undefined) return [...(listed ?? [])].filter((id) => registry.get(id) !== undefined)
    const devices: string[] = []
    let after: string | undefined
    for (;;) {
      const page = await registry.list({ tags: target.tags, after, limit: this.#tuning.resolvePage })
      for (const device of page.items) if (listed === undefined || listed.has(device.id)) devices.push(device.id)
      if (page.next === null) return devices
      after = page.next
      await nextTurn()
    }
  }

  async #fanOut(batch: string, devices: readonly string[], request: CommandRequest, actor: string): Promise<void> {
    const { commands, log } = this.#options
    const chunkSize = this.#tuning.chunkCommands
    for (let start = 0; start < devices.length; start += chunkSize) {
      const chunk = devices.slice(start, start + chunkSize)
      await Promise.all(
        chunk.map((device) =>
          commands.create(device, request, actor, { batch, recordRefusal: true }).catch((err: unknown) => {
            log.error({ err, batch, device }, 'fan-out command failed')
          }),
        ),
      )
      await nextTurn()
    }
  }
}
