import { randomUUID } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import type { CommandRecord, CommandRequest, CommandStatus } from './command-record.js'
import type { CommandStore } from './command-store.js'
import type { Commands } from './commands.js'
import type { Logger } from './logger.js'
import type { Registry } from './registry.js'
import type { Store } from './store.js'

/** A fan-out's targets (CONTRACT §4): listed ids, devices with every given tag, or both (then both must hold). */
export interface BatchTarget {
  readonly ids: readonly string[] | undefined
  readonly tags: ReadonlyArray<readonly [string, string]> | undefined
}

/** A fan-out's live counts (CONTRACT §4). */
export type BatchStatus = { readonly batch: string; readonly targeted: number } & Record<CommandStatus, number>

interface BatchInfo {
  readonly batch: string
  readonly name: string
  readonly targeted: number
  readonly createdAt: number
}

/** Commands created per turn of the event loop while fanning out. */
const CHUNK = 256
/** Devices read per registry page while resolving a tag target. */
const PAGE = 1000

const metaKey = (batch: string): string => `batch:${batch}`
const emptyCounts = (): Record<CommandStatus, number> => ({ queued: 0, sent: 0, succeeded: 0, failed: 0, timeout: 0, expired: 0 })

/**
 * Fan-out: resolves the targets, records the batch, then creates one command per device in
 * chunks, yielding to the event loop between chunks so that 10,000 targets never stall ingest.
 */
export class CommandBatches {
  readonly #commands: Commands
  readonly #commandStore: CommandStore
  readonly #registry: Registry
  readonly #store: Store
  readonly #log: Logger
  readonly #now: () => number
  /** Live counts of the batches started since this start; older batches are counted from the store. */
  readonly #counts = new Map<string, Record<CommandStatus, number>>()

  constructor(deps: { commands: Commands; commandStore: CommandStore; registry: Registry; store: Store; log: Logger; now?: () => number }) {
    this.#commands = deps.commands
    this.#commandStore = deps.commandStore
    this.#registry = deps.registry
    this.#store = deps.store
    this.#log = deps.log
    this.#now = deps.now ?? Date.now
  }

  /** Resolves the targets and records the batch; the commands are created after this resolves. */
  async start(target: BatchTarget, request: CommandRequest, actor: string): Promise<{ batch: string; targeted: number }> {
    const devices = await this.#resolve(target)
    const info: BatchInfo = { batch: randomUUID(), name: request.name, targeted: devices.length, createdAt: this.#now() }
    await this.#store.meta.put(metaKey(info.batch), info)
    this.#counts.set(info.batch, emptyCounts())
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
   * The batch's counts by status, or undefined for an unknown batch. A batch of this run is
   * counted as its commands change (an operator polls this while 10,000 commands run); an older
   * one by reading its records.
   */
  status(batch: string): BatchStatus | undefined {
    const info = this.#store.meta.get(metaKey(batch)) as BatchInfo | undefined
    if (info === undefined) return undefined
    let counts = this.#counts.get(batch)
    if (counts === undefined) {
      counts = emptyCounts()
      for (const stored of this.#commandStore.batch(batch)) counts[(this.#commands.get(stored.device, stored.id) ?? stored).status]++
    }
    return { batch, targeted: info.targeted, ...counts }
  }

  async #resolve(target: BatchTarget): Promise<string[]> {
    const listed = target.ids === undefined ? undefined : new Set(target.ids)
    if (target.tags === undefined) return [...(listed ?? [])].filter((id) => this.#registry.get(id) !== undefined)
    const devices: string[] = []
    let after: string | undefined
    for (;;) {
      const page = this.#registry.list({ tags: target.tags, after, limit: PAGE })
      for (const device of page.items) if (listed === undefined || listed.has(device.id)) devices.push(device.id)
      if (page.next === null) return devices
      after = page.next
      await nextTurn()
    }
  }

  async #fanOut(batch: string, devices: readonly string[], request: CommandRequest, actor: string): Promise<void> {
    for (let start = 0; start < devices.length; start += CHUNK) {
      const chunk = devices.slice(start, start + CHUNK)
      await Promise.all(
        chunk.map((device) =>
          this.#commands.create(device, request, actor, { batch, recordRefusal: true }).catch((err: unknown) => {
            this.#log.error({ err, batch, device }, 'fan-out command failed')
          }),
        ),
      )
      await nextTurn()
    }
  }
}
