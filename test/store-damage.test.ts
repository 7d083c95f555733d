// A damaged store at start (issue 10, defect 13): whatever the damage does to lmdb (an error, an
// assertion that aborts, a wild pointer, a page cut off by truncation), the hub exits 1 with one
// line that names the store and what to do, and never starts on it.
import { spawnSync } from 'node:child_process'
import { closeSync, cpSync, openSync, readSync, statSync, truncateSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { open } from 'lmdb'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HUB_MAIN, HubProcesses, provision, stopHubProcess, testEnv } from './support/hub.js'
import { connectDevice } from './support/ws.js'

/** lmdb's page size in the stores the hub makes (lmdb-js's default). */
const PAGE_BYTES = 4096
/** Page header of the lmdb inside lmdb-js 3: pgno (8 bytes), txnid (8), pad (2), flags (2, little-endian). */
const FLAGS_AT = 18
const P_BRANCH = 0x01
const P_LEAF = 0x02

/** Rewrites pages `from` to `to` (excluded; default the end) with `change`, which returns false to leave one as it was. */
function rewritePages(file: string, change: (page: Buffer) => boolean, from = 2, to = statSync(file).size / PAGE_BYTES): void {
  const fd = openSync(file, 'r+')
  try {
    const page = Buffer.alloc(PAGE_BYTES)
    for (let n = from; n < to; n++) {
      readSync(fd, page, 0, PAGE_BYTES, n * PAGE_BYTES)
      if (change(page)) writeSync(fd, page, 0, PAGE_BYTES, n * PAGE_BYTES)
    }
  } finally {
    closeSync(fd)
  }
}

/** Each damage, and what the one line must say it did to lmdb. */
const DAMAGES: Array<[string, (file: string) => void, RegExp]> = [
  [
    'both meta pages zeroed (lmdb dereferences garbage: SIGSEGV)',
    (file) => rewritePages(file, (page) => (page.fill(0), true), 0, 2),
    /^lmdb stopped the process reading it with SIGSEGV$/,
  ],
  [
    'every leaf page marked a branch too (the walk fails an lmdb assertion, which aborts: SIGABRT)',
    (file) => rewritePages(file, (page) => page.readUInt16LE(FLAGS_AT) === P_LEAF && (page.writeUInt16LE(P_BRANCH | P_LEAF, FLAGS_AT), true)),
    /^lmdb stopped the process reading it with SIGABRT: .*Assertion .* failed/,
  ],
  ['cut to three pages (a mapped page past the end: SIGBUS)', (file) => truncateSync(file, 3 * PAGE_BYTES), /^lmdb stopped the process reading it with SIGBUS$/],
  [
    'page numbers and transaction ids overwritten (only a write trips over them: SIGSEGV)',
    (file) => rewritePages(file, (page) => (page.fill(0xff, 0, 16), true)),
    /^lmdb stopped the process reading it with SIGSEGV$/,
  ],
  ['every page after the meta pages zeroed (MDB_CORRUPTED)', (file) => rewritePages(file, (page) => (page.fill(0), true)), /^MDB_CORRUPTED: /],
  // Which of the two lmdb reports depends on the first page the walk reads; either is the one line.
  [
    'every page after the meta pages overwritten (MDB_PAGE_NOTFOUND or MDB_CORRUPTED)',
    (file) => rewritePages(file, (page) => (page.fill(0x41), true)),
    /^MDB_(PAGE_NOTFOUND|CORRUPTED): /,
  ],
  ['data.mdb truncated to nothing (lmdb would start a new, empty store over it)', (file) => truncateSync(file, 0), /^data\.mdb is empty$/],
]

/** How a hub run on a damaged store ended. */
interface Refused {
  readonly dataDir: string
  readonly status: number | null
  readonly signal: string | null
  readonly stdout: string
  readonly stderr: string
}

describe('a damaged store at start (issue 10, defect 13)', () => {
  const hubs = new HubProcesses()
  /** A data dir with devices, queued commands and telemetry in the spool, from a hub stopped cleanly. */
  let pristine: string

  beforeAll(async () => {
    pristine = hubs.dir()
    // InfluxDB unreachable: the spool keeps what was acked, so the store holds overflow pages too.
    const hub = await hubs.start(testEnv(pristine, { FLEETGATE_INFLUX_URL: 'http://127.0.0.1:9' }))
    for (let i = 0; i < 40; i++) {
      const device = await provision(hub.base, `dev-${i}`, { tags: { site: `s${i % 3}` } })
      for (let c = 0; c < 3; c++) {
        const queued = await fetch(`${hub.base}/api/v1/devices/dev-${i}/commands`, {
          method: 'POST',
          headers: { authorization: `Bearer ${testEnv(pristine)['FLEETGATE_ADMIN_TOKEN']}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'reboot', ttlMs: 86_400_000, params: { note: 'n'.repeat(300) } }),
        })
        expect(queued.status).toBe(202)
      }
      if (i < 5) {
        const ws = await connectDevice(hub.wsUrl, device)
        await ws.opening()
        for (let s = 1; s <= 20; s++) ws.send({ t: 'tb', s, r: Array.from({ length: 50 }, (_, k) => ({ ts: 1_700_000_000_000 + s * 100 + k, m: { t: k, label: 'x'.repeat(40) } })) })
        await ws.untilAck(20)
        ws.close()
      }
    }
    hub.child.kill('SIGTERM')
    expect(await hub.exited).toBe(0)
  })
  afterAll(() => hubs.cleanup())

  /** Runs the hub on a copy of the pristine data dir damaged by `damage`, until it exits (or 20 s). */
  const startDamaged = async (damage: (dataDir: string) => void | Promise<void>): Promise<Refused> => {
    const dataDir = hubs.dir()
    cpSync(pristine, dataDir, { recursive: true })
    await damage(dataDir)
    const result = spawnSync(process.execPath, [HUB_MAIN], { env: { PATH: process.env['PATH'] ?? '', ...testEnv(dataDir) }, encoding: 'utf8', timeout: 20_000 })
    return { dataDir, status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr }
  }

  /** The one line (stderr) and the one JSON log line (stdout) of a refused start, and what lmdb did. */
  const expectRefused = (run: Refused, detail: RegExp): void => {
    expect({ status: run.status, signal: run.signal }).toEqual({ status: 1, signal: null })
    const line = `HUB_ERR_STORE_DAMAGED: the store in ${join(run.dataDir, 'store')} is damaged (`
    const advice = `). Restore the data dir ${run.dataDir} from a backup (fleetgate-hub backup): see "Commands, storage and recovery" in docs/security.md`
    expect(run.stderr.startsWith(`fleetgate: ${line}`), run.stderr).toBe(true)
    expect(run.stderr.endsWith(`${advice}\n`), run.stderr).toBe(true)
    expect(run.stderr.split('\n')).toHaveLength(2)
    const said = run.stderr.slice(`fleetgate: ${line}`.length, -`${advice}\n`.length)
    expect(said).toMatch(detail)
    const logged = run.stdout.split('\n').filter((text) => text !== '')
    expect(logged).toHaveLength(1)
    expect(JSON.parse(logged[0] ?? '')).toMatchObject({ level: 'fatal', msg: `${line}${said}${advice}` })
  }

  it.each(DAMAGES)('refuses to start with one line when %s', async (_what, damage, detail) => {
    expectRefused(await startDamaged((dataDir) => damage(join(dataDir, 'store', 'data.mdb'))), detail)
  })

  it('refuses to start with one line when a record it reads at start does not decode', async () => {
    const run = await startDamaged(async (dataDir) => {
      // A well-formed tree around a value that is not MessagePack: the walk cannot see it.
      const root = open({ path: join(dataDir, 'store'), maxDbs: 16, compression: false })
      await root.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' }).put('spool.bytes', Buffer.from([0xcb, 0x00]))
      await root.close()
    })
    expectRefused(run, /^the telemetry spool does not read back: /)
  })

  it('starts on the same store undamaged, with every device', async () => {
    const dataDir = hubs.dir()
    cpSync(pristine, dataDir, { recursive: true })
    const hub = await hubs.start(testEnv(dataDir))
    const listed = await fetch(`${hub.base}/api/v1/devices?limit=1000`, { headers: { authorization: `Bearer ${testEnv(dataDir)['FLEETGATE_ADMIN_TOKEN']}` } })
    expect(((await listed.json()) as { items: unknown[] }).items).toHaveLength(40)
    await stopHubProcess(hub, 'SIGTERM')
  })
})
