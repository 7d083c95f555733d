import { appendFile, mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { HubError } from '../errors.js'

/**
 * CONTRACT §5: a point InfluxDB refuses for good lands here, never stalling the rest.
 *
 * Format: JSON lines, one entry per refused point, `{"at":"<ISO 8601>","reason":"<why>","line":"<line protocol>"}`,
 * so a human reads it with `less` and a script replays it with `jq -r .line | curl --data-binary @- ...`.
 *
 * Bound: the file stops growing at `maxBytes`; entries beyond it are counted in `dropped` and not
 * written. Keeping the oldest entries (rather than rotating them away) keeps the first occurrences,
 * which are the ones that explain a problem; the counter says how much was not kept. The size is read
 * from the file before every append, so moving or truncating the file (logrotate, an operator who has
 * replayed it) makes room again.
 */
export interface DeadLetterOptions {
  /** Directory of the file (the hub's data dir); created when missing. */
  readonly dir: string
  /** File name inside `dir`; default `influx-dead-letter.jsonl`. */
  readonly fileName?: string
  /** Size at which the file stops growing, in bytes; default 64 MiB. */
  readonly maxBytes?: number
  /** Clock for the `at` of an entry, Unix ms; default `Date.now`. */
  readonly now?: () => number
  /** Called with an I/O failure (the entries are then counted as dropped); default: ignored. */
  readonly onError?: (err: Error) => void
}

/** Default file name of the dead letter inside the data dir. */
export const DEAD_LETTER_FILE = 'influx-dead-letter.jsonl'
/** Default bound of the dead-letter file: 64 MiB. */
export const DEAD_LETTER_MAX_BYTES = 64 * 1024 * 1024

const OPTION_KEYS = new Set(['dir', 'fileName', 'maxBytes', 'now', 'onError'])

/** An append-only, bounded file of refused points; appends are queued, ordered, and never throw. */
export class DeadLetter {
  /** Absolute or relative path of the file. */
  readonly path: string
  readonly #dir: string
  readonly #maxBytes: number
  readonly #now: () => number
  readonly #onError: (err: Error) => void
  #pending: string[] = []
  #pendingCount = 0
  #tail: Promise<void> = Promise.resolve()
  #count = 0
  #dropped = 0
  #written = 0

  constructor(options: DeadLetterOptions) {
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new HubError('HUB_ERR_CONFIG', `DeadLetter: unknown option "${key}"`)
    }
    const maxBytes = options.maxBytes ?? DEAD_LETTER_MAX_BYTES
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new HubError('HUB_ERR_CONFIG', `DeadLetter: maxBytes must be a positive whole number, got ${String(maxBytes)}`)
    }
    const fileName = options.fileName ?? DEAD_LETTER_FILE
    if (fileName.length === 0 || fileName.includes('/')) {
      throw new HubError('HUB_ERR_CONFIG', `DeadLetter: fileName must be a plain file name, got "${fileName}"`)
    }
    this.#dir = options.dir
    this.path = join(options.dir, fileName)
    this.#maxBytes = maxBytes
    this.#now = options.now ?? Date.now
    this.#onError = options.onError ?? (() => undefined)
  }

  /** Refused points handed to `add` since start (written + dropped + still queued). */
  get count(): number {
    return this.#count
  }

  /** Entries not written: over `maxBytes`, or lost to an I/O error. */
  get dropped(): number {
    return this.#dropped
  }

  /** Entries appended to the file since start. */
  get written(): number {
    return this.#written
  }

  /** Queues one refused point (`line` is its line protocol, or another rendering of the reading); never throws. */
  add(line: string, reason: string): void {
    this.#count++
    this.#pendingCount++
    this.#pending.push(JSON.stringify({ at: new Date(this.#now()).toISOString(), reason, line }) + '\n')
    if (this.#pendingCount === 1) this.#tail = this.#tail.then(() => this.#drain())
  }

  /** Resolves once every entry queued so far is in the file (or counted as dropped); never rejects. */
  flush(): Promise<void> {
    return this.#tail
  }

  /** Appends everything queued, as one write; runs on the `#tail` chain, so appends keep their order. */
  async #drain(): Promise<void> {
    const entries = this.#pending
    this.#pending = []
    this.#pendingCount = 0
    if (entries.length === 0) return
    let kept = 0
    try {
      await mkdir(this.#dir, { recursive: true })
      let size = 0
      try {
        size = (await stat(this.path)).size
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      let text = ''
      // Stop at the first entry that does not fit: the file keeps a gap-free prefix, in order.
      for (const entry of entries) {
        const bytes = Buffer.byteLength(entry)
        if (size + bytes > this.#maxBytes) break
        size += bytes
        text += entry
        kept++
      }
      if (kept > 0) await appendFile(this.path, text, { mode: 0o600 })
      this.#written += kept
      this.#dropped += entries.length - kept
    } catch (err) {
      this.#dropped += entries.length
      try {
        this.#onError(new HubError('HUB_ERR_DEAD_LETTER', `dead letter: cannot append ${entries.length} entries to ${this.path}`, { cause: err }))
      } catch {
        // A throwing error callback must not break the append chain; the counter already says it.
      }
    }
  }
}
