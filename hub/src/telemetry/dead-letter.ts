import { appendFile, mkdir, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { realClock, type Clock, type Reading } from '@fleetgate/device-sdk'
import { HubError } from '../errors.js'
import { tune } from '../tuning.js'

/** Why a reading was dead-lettered: InfluxDB refused it for good, it cannot be written as line protocol, or its spool entry does not decode. */
export type DeadLetterReason = 'influx_refused' | 'line_protocol' | 'undecodable'
/** Why a dead letter was counted and not written: its device's budget was spent, it alone exceeds half the bound, or the file failed. */
export type DeadLetterLoss = 'device_budget' | 'too_large' | 'io_error'

/**
 * One refused reading: its device, why, a human message, and the reading itself as the line
 * protocol InfluxDB refused, as JSON when no line could be built, or as the spool entry's frame
 * bytes in base64 when it does not decode.
 */
export type DeadLetterEntry = { readonly device: string; readonly reason: DeadLetterReason; readonly message: string } & (
  | { readonly line: string }
  | { readonly reading: Reading }
  | { readonly frame: string }
)

/** Figures the dead letter reports: every entry by reason, and those not written by cause. */
export interface DeadLetterCounters {
  deadLettered(reason: DeadLetterReason): void
  deadLettersLost(cause: DeadLetterLoss, entries: number): void
}

/**
 * docs/telemetry.md: a point InfluxDB refuses for good lands here, never stalling the rest.
 *
 * Format: JSON lines, one entry per refused reading, `{"at":"<ISO 8601>",...DeadLetterEntry}`, so a
 * human reads it with `less` and a script replays it with `jq -r .line | curl --data-binary @- ...`.
 *
 * Bound: the file and one predecessor (`<file>.1`), each at most half of `maxBytes`. When the next
 * entry would take the file past its half, it becomes `.1` (the older `.1` goes) and a new file
 * starts, so the newest entries are kept. One device cannot push the others' entries out: each
 * device writes at most `perDeviceEntries` per `budgetWindowMs`; beyond that its entries are counted
 * (`deadLettersLost('device_budget')`), not written. The file's size is read before every append,
 * so moving or truncating it (logrotate, an operator who has replayed it) makes room again.
 */
export interface DeadLetterOptions {
  /** Directory of the file (the hub's data dir); created when missing. */
  readonly dir: string
  /** File name inside `dir`; default `influx-dead-letter.jsonl`. */
  readonly fileName?: string
  /** Where entries are counted; default nowhere. */
  readonly counters?: DeadLetterCounters
  /** Time for the `at` of an entry and the budget window; default the real clock. */
  readonly clock?: Clock
  /** Called with an I/O failure (the entries are then counted as lost); default: ignored. */
  readonly onError?: (err: Error) => void
  /** Tuning knobs; defaults in DEAD_LETTER_DEFAULTS. */
  readonly tuning?: Partial<DeadLetterTuning>
}

/** The dead letter's tuning knobs; defaults in DEAD_LETTER_DEFAULTS. */
export interface DeadLetterTuning {
  /** Bound of the file and its predecessor together, in bytes; default 64 MiB. */
  readonly maxBytes: number
  /** Entries one device may write per budget window; default 100. */
  readonly perDeviceEntries: number
  /** The window of `perDeviceEntries`, in ms; default 60,000. */
  readonly budgetWindowMs: number
}

/** The defaults of DeadLetterTuning. */
export const DEAD_LETTER_DEFAULTS: DeadLetterTuning = Object.freeze({
  maxBytes: 64 * 1024 * 1024,
  perDeviceEntries: 100,
  budgetWindowMs: 60_000,
})

/** Default file name of the dead letter inside the data dir. */
export const DEAD_LETTER_FILE = 'influx-dead-letter.jsonl'

const OPTION_KEYS = new Set(['dir', 'fileName', 'counters', 'clock', 'onError', 'tuning'])

/** An append-only, bounded pair of files of refused readings; appends are queued, ordered, and never throw. */
export class DeadLetter {
  /** Absolute or relative path of the file; its predecessor is `${path}.1`. */
  readonly path: string
  readonly #dir: string
  readonly #halfBytes: number
  readonly #perDeviceEntries: number
  readonly #budgetWindowMs: number
  readonly #counters: DeadLetterCounters | undefined
  readonly #clock: Clock
  readonly #onError: (err: Error) => void
  #pending: string[] = []
  #tail: Promise<void> = Promise.resolve()
  #count = 0
  #dropped = 0
  #written = 0
  /** Entries each device wrote in the current budget window, and when it began (Unix ms). */
  readonly #spent = new Map<string, number>()
  #windowStart = Number.NEGATIVE_INFINITY

  constructor(options: DeadLetterOptions) {
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new HubError('HUB_ERR_CONFIG', `DeadLetter: unknown option "${key}"`)
    }
    const tuning = tune('DeadLetter', DEAD_LETTER_DEFAULTS, options.tuning)
    const fileName = options.fileName ?? DEAD_LETTER_FILE
    if (fileName.length === 0 || fileName.includes('/')) {
      throw new HubError('HUB_ERR_CONFIG', `DeadLetter: fileName must be a plain file name, got "${fileName}"`)
    }
    this.#dir = options.dir
    this.path = join(options.dir, fileName)
    this.#halfBytes = Math.floor(tuning.maxBytes / 2)
    this.#perDeviceEntries = tuning.perDeviceEntries
    this.#budgetWindowMs = tuning.budgetWindowMs
    this.#counters = options.counters
    this.#clock = options.clock ?? realClock
    this.#onError = options.onError ?? (() => undefined)
  }

  /** Refused readings handed to `add` since start (written + dropped + still queued). */
  get count(): number {
    return this.#count
  }

  /** Entries not written: over their device's budget, too large, or lost to an I/O error. */
  get dropped(): number {
    return this.#dropped
  }

  /** Entries appended to the file since start. */
  get written(): number {
    return this.#written
  }

  /** Queues one refused reading, or counts it when its device has spent its budget; never throws. */
  add(entry: DeadLetterEntry): void {
    this.#count++
    this.#counters?.deadLettered(entry.reason)
    const now = this.#clock.now()
    if (now - this.#windowStart >= this.#budgetWindowMs) {
      this.#windowStart = now
      this.#spent.clear()
    }
    const spent = this.#spent.get(entry.device) ?? 0
    if (spent >= this.#perDeviceEntries) return this.#lose('device_budget', 1)
    this.#spent.set(entry.device, spent + 1)
    this.#pending.push(JSON.stringify({ at: new Date(now).toISOString(), ...entry }) + '\n')
    if (this.#pending.length === 1) this.#tail = this.#tail.then(() => this.#drain())
  }

  /** Resolves once every entry queued so far is in the file (or counted as lost); never rejects. */
  flush(): Promise<void> {
    return this.#tail
  }

  #lose(cause: DeadLetterLoss, entries: number): void {
    this.#dropped += entries
    this.#counters?.deadLettersLost(cause, entries)
  }

  /** Appends everything queued; runs on the `#tail` chain, so appends keep their order. */
  async #drain(): Promise<void> {
    const entries = this.#pending
    this.#pending = []
    // Entries written or counted as lost so far: an I/O failure loses the others.
    let settled = 0
    try {
      await mkdir(this.#dir, { recursive: true })
      let size = 0
      try {
        size = (await stat(this.path)).size
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      let text = ''
      let texts = 0
      for (const entry of entries) {
        const bytes = Buffer.byteLength(entry)
        if (bytes > this.#halfBytes) {
          this.#lose('too_large', 1)
          settled++
          continue
        }
        if (size + bytes > this.#halfBytes) {
          if (texts > 0) settled += await this.#append(text, texts)
          text = ''
          texts = 0
          // The file is not empty here (else the entry alone would be too large): it becomes the predecessor.
          await rename(this.path, `${this.path}.1`)
          size = 0
        }
        text += entry
        texts++
        size += bytes
      }
      if (texts > 0) settled += await this.#append(text, texts)
    } catch (err) {
      this.#lose('io_error', entries.length - settled)
      try {
        this.#onError(new HubError('HUB_ERR_DEAD_LETTER', `dead letter: cannot append to ${this.path}`, { cause: err }))
      } catch {
        // A throwing error callback must not break the append chain; the counter already says it.
      }
    }
  }

  /** Appends `entries` entries as one write; returns how many. */
  async #append(text: string, entries: number): Promise<number> {
    await appendFile(this.path, text, { mode: 0o600 })
    this.#written += entries
    return entries
  }
}
