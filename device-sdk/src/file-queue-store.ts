// A QueueStore in one file, for Node: an append-only journal of JSON lines, rewritten (compacted)
// into a snapshot when it has grown well past what it still holds.
//
//   {"s":1024}                          seqs below 1024 may have been used
//   {"a":[[id,ts,{metrics},{tags}],...]} readings appended (tags left out when none)
//   {"d":[[fromId,toId],...]}            readings removed, as id ranges
//   {"r":[[id,{patch}],...]}             twin reports appended
//   {"x":[[fromId,toId],...]}            twin reports removed, as id ranges
//
// Journals written before twin reports hold no `r` or `x` line and load as they are.
// Every write is one synchronous write(2) before the call returns, so what a client stored is in
// the OS's cache when send() returns and survives a kill -9 of the process (add `fsync: true` to
// survive a power cut). A kill in the middle of a write leaves a torn last line, which load()
// ignores; load() then rewrites the file, so a torn line is never followed by another. Compaction
// writes a temp file and renames it over the journal: at any instant the file is the old journal
// or the new snapshot, never a mix.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { SdkError } from './errors.js'
import type { Metrics, Tags, TwinDocument } from './frames.js'
import { storeError, type QueueStore, type StoredQueue, type StoredReading, type StoredReport } from './queue-store.js'

/** Options of a FileQueueStore. */
export interface FileQueueStoreOptions {
  /** fsync after every write, so readings survive a power cut and not only a process kill; default false. */
  fsync?: boolean
  /** Compact once the journal exceeds this many bytes and twice what it still holds; default 1048576 (1 MiB). */
  compactAfterBytes?: number
}

/** Default compactAfterBytes of a FileQueueStore: 1 MiB. */
export const DEFAULT_COMPACT_AFTER_BYTES = 1_048_576
// Readings per `a` line of a snapshot, so no line grows without bound.
const SNAPSHOT_LINE_READINGS = 1000
const OPTION_KEYS: ReadonlySet<string> = new Set(['fsync', 'compactAfterBytes'])

/**
 * A QueueStore kept in the file `path` (its directory must exist): unacked readings and unanswered
 * twin reports survive a process kill and are sent by the next client built on the same path. One
 * process per file.
 */
export class FileQueueStore implements QueueStore {
  /** The journal file. */
  readonly path: string
  readonly #fsync: boolean
  readonly #compactAfterBytes: number
  // id -> the reading's JSON text, in id order (ids only ever grow)
  readonly #live = new Map<number, string>()
  // id -> the twin report's JSON text, in id order
  readonly #reports = new Map<number, string>()
  #liveBytes = 0
  #journalBytes = 0
  #compactions = 0
  #nextSeq = 0
  #fd: number | undefined
  #state: 'new' | 'open' | 'closed' = 'new'

  /** Validates the options at once (SdkError SDK_ERR_INVALID_OPTION); the file is read by load(). */
  constructor(path: string, options: FileQueueStoreOptions = {}) {
    if (typeof path !== 'string' || path === '') throw new SdkError('SDK_ERR_INVALID_OPTION', 'path: expected a file path')
    if (typeof options !== 'object' || options === null) throw new SdkError('SDK_ERR_INVALID_OPTION', 'options: expected an object')
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new SdkError('SDK_ERR_INVALID_OPTION', `${key}: unknown option`)
    }
    const fsync = options.fsync ?? false
    if (typeof fsync !== 'boolean') throw new SdkError('SDK_ERR_INVALID_OPTION', 'fsync: expected a boolean')
    const compactAfterBytes = options.compactAfterBytes ?? DEFAULT_COMPACT_AFTER_BYTES
    if (!Number.isSafeInteger(compactAfterBytes) || compactAfterBytes < 0) {
      throw new SdkError('SDK_ERR_INVALID_OPTION', 'compactAfterBytes: expected a whole number of bytes >= 0')
    }
    this.path = path
    this.#fsync = fsync
    this.#compactAfterBytes = compactAfterBytes
  }

  /** Readings held, not yet removed. */
  get size(): number {
    return this.#live.size
  }

  /** Twin reports held, not yet removed. */
  get reports(): number {
    return this.#reports.size
  }

  /** Bytes in the journal file now. */
  get journalBytes(): number {
    return this.#journalBytes
  }

  /** Compactions so far, the one load() does included. */
  get compactions(): number {
    return this.#compactions
  }

  load(): StoredQueue {
    if (this.#state !== 'new') throw new SdkError('SDK_ERR_STORE', `${this.path}: load() is called once, first`)
    rmSync(this.#tempPath, { force: true })
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError(`cannot read ${this.path}`, cause)
      text = ''
    }
    const lines = text.split('\n')
    // after the last newline: nothing, or a line torn by a kill during its write
    lines.pop()
    const readings = new Map<number, StoredReading>()
    const reports = new Map<number, StoredReport>()
    lines.forEach((line, index) => {
      if (line !== '') this.#replay(line, index + 1, readings, reports)
    })
    this.#state = 'open'
    this.#compact()
    return { readings: [...readings.values()], nextSeq: this.#nextSeq, reports: [...reports.values()] }
  }

  append(readings: readonly StoredReading[]): void {
    this.#add('a', this.#live, readings, readingText)
  }

  remove(ids: readonly number[]): void {
    this.#drop('d', this.#live, ids)
  }

  appendReports(reports: readonly StoredReport[]): void {
    this.#add('r', this.#reports, reports, reportText)
  }

  removeReports(ids: readonly number[]): void {
    this.#drop('x', this.#reports, ids)
  }

  saveNextSeq(seq: number): void {
    this.#write(`{"s":${seq}}\n`)
    this.#nextSeq = seq
  }

  close(): void {
    if (this.#state === 'closed') return
    this.#state = 'closed'
    if (this.#fd !== undefined) closeSync(this.#fd)
    this.#fd = undefined
  }

  /** Rewrites the journal as a snapshot of what it holds now. */
  compact(): void {
    if (this.#state !== 'open') throw new SdkError('SDK_ERR_STORE', `${this.path}: the store is not open`)
    this.#compact()
  }

  get #tempPath(): string {
    return `${this.path}.tmp`
  }

  #replay(line: string, lineNumber: number, readings: Map<number, StoredReading>, reports: Map<number, StoredReport>): void {
    let record: unknown
    try {
      record = JSON.parse(line)
    } catch (cause) {
      throw storeError(`${this.path}:${lineNumber}: not JSON`, cause)
    }
    const bad = (what: string): SdkError => new SdkError('SDK_ERR_STORE', `${this.path}:${lineNumber}: ${what}`)
    if (typeof record !== 'object' || record === null || Array.isArray(record)) throw bad('expected an object')
    if ('s' in record) {
      const seq = record.s
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw bad('s: expected a seq')
      this.#nextSeq = Math.max(this.#nextSeq, seq)
    } else if ('a' in record) {
      if (!Array.isArray(record.a)) throw bad('a: expected an array of readings')
      for (const item of record.a as unknown[]) {
        const reading = parseReading(item)
        if (reading === undefined) throw bad(`a: bad reading ${JSON.stringify(item)}`)
        readings.set(reading.id, reading)
        this.#live.set(reading.id, readingText(reading))
      }
    } else if ('d' in record) {
      for (const id of idsOf(record.d, 'd', bad)) {
        readings.delete(id)
        this.#live.delete(id)
      }
    } else if ('r' in record) {
      if (!Array.isArray(record.r)) throw bad('r: expected an array of twin reports')
      for (const item of record.r as unknown[]) {
        const report = parseReport(item)
        if (report === undefined) throw bad(`r: bad twin report ${JSON.stringify(item)}`)
        reports.set(report.id, report)
        this.#reports.set(report.id, reportText(report))
      }
    } else if ('x' in record) {
      for (const id of idsOf(record.x, 'x', bad)) {
        reports.delete(id)
        this.#reports.delete(id)
      }
    } else {
      throw bad('expected s, a, d, r or x')
    }
  }

  /** Journals `items` under `key` (`a` readings, `r` reports) and keeps their text in `live`. */
  #add<T extends { readonly id: number }>(key: 'a' | 'r', live: Map<number, string>, items: readonly T[], text: (item: T) => string): void {
    if (items.length === 0) return
    const texts = items.map(text)
    this.#write(`{"${key}":[${texts.join(',')}]}\n`)
    items.forEach((item, i) => {
      const written = texts[i] as string
      live.set(item.id, written)
      this.#liveBytes += byteLength(written) + 1
    })
    this.#maybeCompact()
  }

  /** Journals the removal of the `ids` that `live` holds, under `key` (`d` readings, `x` reports). */
  #drop(key: 'd' | 'x', live: Map<number, string>, ids: readonly number[]): void {
    const known = ids.filter((id) => live.has(id)).sort((a, b) => a - b)
    if (known.length === 0) return
    this.#write(`{"${key}":${JSON.stringify(idRanges(known))}}\n`)
    for (const id of known) {
      this.#liveBytes -= byteLength(live.get(id) as string) + 1
      live.delete(id)
    }
    this.#maybeCompact()
  }

  #maybeCompact(): void {
    if (this.#journalBytes > this.#compactAfterBytes && this.#journalBytes > 2 * this.#liveBytes) this.#compact()
  }

  #compact(): void {
    const texts = [...this.#live.values()]
    const reportTexts = [...this.#reports.values()]
    let snapshot = `{"s":${this.#nextSeq}}\n`
    for (let i = 0; i < texts.length; i += SNAPSHOT_LINE_READINGS) {
      snapshot += `{"a":[${texts.slice(i, i + SNAPSHOT_LINE_READINGS).join(',')}]}\n`
    }
    // one report per line: a report holds up to a frame's worth of patch
    for (const text of reportTexts) snapshot += `{"r":[${text}]}\n`
    try {
      const temp = openSync(this.#tempPath, 'w', 0o600)
      try {
        writeAll(temp, snapshot)
        if (this.#fsync) fsyncSync(temp)
      } finally {
        closeSync(temp)
      }
      renameSync(this.#tempPath, this.path)
      if (this.#fsync) syncDirectory(dirname(this.path))
      if (this.#fd !== undefined) closeSync(this.#fd)
      this.#fd = openSync(this.path, 'a', 0o600)
    } catch (cause) {
      throw storeError(`cannot compact ${this.path}`, cause)
    }
    this.#liveBytes = [...texts, ...reportTexts].reduce((sum, text) => sum + byteLength(text) + 1, 0)
    this.#journalBytes = byteLength(snapshot)
    this.#compactions++
  }

  #write(line: string): void {
    const fd = this.#fd
    if (this.#state !== 'open' || fd === undefined) throw new SdkError('SDK_ERR_STORE', `${this.path}: the store is not open (load() first, not after close())`)
    try {
      writeAll(fd, line)
      if (this.#fsync) fsyncSync(fd)
    } catch (cause) {
      throw storeError(`cannot write ${this.path}`, cause)
    }
    this.#journalBytes += byteLength(line)
  }
}

// write(2) may write less than asked (a full disk, a signal): go on until all of it is written
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8')
  let offset = 0
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset)
}

function syncDirectory(path: string): void {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    fsyncSync(fd)
  } catch {
    // some platforms (Windows) cannot fsync a directory; the rename is as durable as they allow
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

function readingText(reading: StoredReading): string {
  return JSON.stringify(reading.g === undefined ? [reading.id, reading.ts, reading.m] : [reading.id, reading.ts, reading.m, reading.g])
}

function reportText(report: StoredReport): string {
  return JSON.stringify([report.id, report.p])
}

// Only the shape: the client checks the patch with the twin rules when it loads it.
function parseReport(item: unknown): StoredReport | undefined {
  if (!Array.isArray(item) || item.length !== 2) return undefined
  const [id, p] = item as [unknown, unknown]
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || !isObject(p)) return undefined
  return { id, p: p as TwinDocument }
}

/** The ids of a removal line's `[from, to]` ranges. */
function* idsOf(ranges: unknown, key: string, bad: (what: string) => SdkError): Generator<number> {
  if (!Array.isArray(ranges)) throw bad(`${key}: expected id ranges`)
  for (const range of ranges as unknown[]) {
    if (!Array.isArray(range) || range.length !== 2 || !range.every((id) => Number.isSafeInteger(id))) throw bad(`${key}: expected [from, to] ranges`)
    for (let id = range[0] as number; id <= (range[1] as number); id++) yield id
  }
}

// Only the shape: the client checks metrics and tags with the codec's rules when it loads them.
function parseReading(item: unknown): StoredReading | undefined {
  if (!Array.isArray(item) || item.length < 3 || item.length > 4) return undefined
  const [id, ts, m, g] = item as [unknown, unknown, unknown, unknown]
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || typeof ts !== 'number' || !isObject(m)) return undefined
  if (g !== undefined && !isObject(g)) return undefined
  return g === undefined ? { id, ts, m: m as Metrics } : { id, ts, m: m as Metrics, g: g as Tags }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function idRanges(sorted: readonly number[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = []
  for (const id of sorted) {
    const last = ranges.at(-1)
    if (last !== undefined && id === last[1] + 1) last[1] = id
    else ranges.push([id, id])
  }
  return ranges
}
