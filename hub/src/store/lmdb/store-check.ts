import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ABORT, open, type RootDatabase } from 'lmdb'
import { HubError } from '../../errors.js'
import { ENVIRONMENT_OPTIONS, STORE_DATABASES, storeDir } from './environment.js'

// lmdb keeps no checksums, and a damaged page makes it fail in one of three ways: an error
// (MDB_CORRUPTED, "page not found"), a failed assertion that aborts the process (SIGABRT), or a
// wild pointer (SIGSEGV; SIGBUS for a page cut off by truncation). The last two cannot be caught
// in the process they happen in, so the hub checks the store in a short-lived child process before
// it opens it, and turns whatever ends that child into one line that says what to do.

/** What a check of the store found. */
export interface StoreCheck {
  /** Entries in all databases. */
  readonly entries: number
  /** Size of `data.mdb`. */
  readonly bytes: number
  /** How long the walk took, in ms (without the child's start). */
  readonly walkMs: number
}

/** How long a check may take before the store counts as damaged (a loop among its pages): 60 s, plus 1 s per 32 MiB of store. */
export function checkTimeoutMs(bytes: number): number {
  return 60_000 + Math.ceil(bytes / (32 * 1024 * 1024)) * 1000
}

/** The error for a damaged store, naming it and what to do. */
export function storeDamaged(dataDir: string, detail: string, options?: ErrorOptions): HubError {
  return new HubError(
    'HUB_ERR_STORE_DAMAGED',
    `the store in ${storeDir(dataDir)} is damaged (${detail}). Restore the data dir ${dataDir} from a backup ` +
      '(fleetgate-hub backup): see "Commands, storage and recovery" in docs/security.md',
    options,
  )
}

/**
 * Runs a read of stored state while the hub starts (`what` names it). The check before (walkStore)
 * sees the structure, not the values: a value that does not decode fails here, and is reported as
 * the damage it is, in the same words.
 */
export function readAtStart<T>(dataDir: string, what: string, read: () => T): T {
  try {
    return read()
  } catch (cause) {
    throw unreadable(dataDir, what, cause)
  }
}

/** readAtStart for a read that a store answers asynchronously. */
export async function readAtStartAsync<T>(dataDir: string, what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read()
  } catch (cause) {
    throw unreadable(dataDir, what, cause)
  }
}

function unreadable(dataDir: string, what: string, cause: unknown): HubError {
  if (cause instanceof HubError) return cause
  return storeDamaged(dataDir, `${what} does not read back: ${(cause as Error).message}`, { cause })
}

/**
 * Walks the store in `dataDir`, in this process: what the child of `checkStore` runs. Every page of
 * every database's tree is read (lmdb's own count, in native code), each count must match the one
 * in the database's header, and one write transaction rewrites the first and last entry of each
 * database, where the hub writes first (spool trim and append, audit append), and is aborted:
 * damage in a page header that only a write trips over (a wild transaction id) shows there.
 * Nothing is changed. Damage inside values, and in overflow pages past their first, is not seen.
 * @throws HubError HUB_ERR_STORE_DAMAGED, or HUB_ERR_STORE when the store cannot be opened at all.
 */
export function walkStore(dataDir: string): StoreCheck {
  const started = performance.now()
  const path = storeDir(dataDir)
  const bytes = statSync(join(path, 'data.mdb')).size
  // lmdb takes an empty file for a new store and would start over on a truncated one.
  if (bytes === 0) throw storeDamaged(dataDir, 'data.mdb is empty')
  let root: RootDatabase
  try {
    root = open({ path, ...ENVIRONMENT_OPTIONS })
  } catch (cause) {
    const message = (cause as Error).message
    if (message.startsWith('MDB_')) throw storeDamaged(dataDir, message, { cause })
    throw new HubError('HUB_ERR_STORE', `cannot open the store at ${path}: ${message}`, { cause })
  }
  try {
    const present = new Set<unknown>(root.getKeys())
    const databases = STORE_DATABASES.filter((name) => present.has(name)).map((name) => ({
      name,
      db: root.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' }),
    }))
    let entries = 0
    for (const { name, db } of databases) {
      const counted = db.getCount()
      const { entryCount } = db.getStats() as { entryCount: number }
      if (counted !== entryCount) throw storeDamaged(dataDir, `database ${name} has ${counted} entries where its header says ${entryCount}`)
      entries += counted
    }
    root.transactionSync(() => {
      for (const { db } of databases) {
        for (const reverse of [false, true]) for (const { key, value } of db.getRange({ reverse, limit: 1 })) db.putSync(key, value)
      }
      return ABORT
    })
    return { entries, bytes, walkMs: Math.round(performance.now() - started) }
  } catch (cause) {
    if (cause instanceof HubError) throw cause
    throw storeDamaged(dataDir, (cause as Error).message, { cause })
  } finally {
    void root.close()
  }
}

/** The child's entry point, beside this file once built (`tsc -b`): from `src/` and from `dist/` alike. */
const PROBE = fileURLToPath(new URL('../../../dist/store/lmdb/store-probe.js', import.meta.url))

/**
 * Checks the store in `dataDir` in a child process (see walkStore); resolves with what it found, or
 * undefined when there is no store yet. The child's stdout carries one JSON line: the StoreCheck, or
 * the code and message of a HubError.
 * @throws HubError HUB_ERR_STORE_DAMAGED when the walk fails, aborts, crashes or outlasts checkTimeoutMs.
 */
export async function checkStore(dataDir: string): Promise<StoreCheck | undefined> {
  let bytes: number
  try {
    bytes = statSync(join(storeDir(dataDir), 'data.mdb')).size
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new HubError('HUB_ERR_STORE', `cannot read ${storeDir(dataDir)}: ${(cause as Error).message}`, { cause })
  }
  const child = spawn(process.execPath, [PROBE, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const timeoutMs = checkTimeoutMs(bytes)
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal]))
  }).finally(() => clearTimeout(timer))
  const line = stdout.trim()
  if (code === 0 && line !== '') {
    const answer = JSON.parse(line) as ({ ok: true } & StoreCheck) | { ok: false; code: HubError['code']; message: string }
    if (answer.ok) return { entries: answer.entries, bytes: answer.bytes, walkMs: answer.walkMs }
    throw new HubError(answer.code, answer.message)
  }
  if (signal === 'SIGKILL') throw storeDamaged(dataDir, `reading it did not end within ${timeoutMs / 1000} s`)
  // lmdb prints a failed assertion (`mdb.c:8587: Assertion 'IS_LEAF(mp)' failed in mdb_cursor_next()`) before it aborts.
  const said = stderr.split('\n').find((text) => text.trim() !== '')?.trim().slice(0, 200)
  const how = signal === null ? `exit code ${code}` : signal
  throw storeDamaged(dataDir, `lmdb stopped the process reading it with ${how}${said === undefined ? '' : `: ${said}`}`)
}
