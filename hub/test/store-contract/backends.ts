// The two implementations of the store interfaces, opened alike for the contract suites: each
// suite runs its cases once per backend with `describe.each(BACKENDS)`.
import { afterAll, afterEach, beforeAll } from 'vitest'
import { createLogger } from '../../src/index.js'
import { migrate, openLmdbSpool, openLmdbStores, openPostgresStores, type HubStores, type PostgresTuning } from '../../src/store/index.js'
import { tempDir } from '../../../test/support/hub.js'
import { startPostgres, type Postgres } from '../../../test/support/postgres.js'

const log = createLogger('silent')

/** One backend's stores for one test. */
export interface Opened {
  /** This node's stores. */
  readonly stores: HubStores
  /**
   * Another node's stores on the same data: on PostgreSQL a second set of connections, cache and
   * node id; on lmdb, which one process owns, the same stores.
   */
  peer(tuning?: Partial<PostgresTuning>): Promise<HubStores>
  /** Closes every store opened for the test and opens them again on the same data. */
  reopen(): Promise<HubStores>
  /** The database's URL (PostgreSQL), for a test that looks at it directly. */
  readonly url: string | undefined
}

/** A backend under test. */
export interface Backend {
  readonly name: 'lmdb' | 'postgres'
  open(): Promise<Opened>
}

let server: Postgres | undefined
/** The migrated database each test's database is copied from. */
const TEMPLATE = 'fleetgate_template'
const closing: Array<() => Promise<void>> = []

/** Test tuning: a quick reconnect, so that outages in tests end soon. */
const TEST_TUNING: Partial<PostgresTuning> = { reconnectMinMs: 50, reconnectMaxMs: 200 }

/** The PostgreSQL server of this test file (started by `useBackends`). */
export function postgres(): Postgres {
  if (server === undefined) throw new Error('useBackends() was not called in this file')
  return server
}

/** Starts one PostgreSQL for the file with a migrated template, and closes each test's stores after it. */
export function useBackends(): void {
  beforeAll(async () => {
    server = await startPostgres()
    await server.createDatabase({ name: TEMPLATE })
    await migrate({ connectionString: server.urlOf(TEMPLATE) }, log)
  })
  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close()
  })
  afterAll(async () => {
    await server?.stop()
  })
}

/** `stores` with an idempotent `close`, closed after the test at the latest. */
function track(stores: HubStores): HubStores {
  let closed: Promise<void> | undefined
  const tracked: HubStores = { ...stores, close: () => (closed ??= stores.close()) }
  closing.push(() => tracked.close())
  return tracked
}

let nodes = 0

const lmdb: Backend = {
  name: 'lmdb',
  async open() {
    const dir = tempDir('fleetgate-contract-')
    closing.push(async () => dir.cleanup())
    let stores = track(openLmdbStores(dir.path))
    return {
      get stores() {
        return stores
      },
      peer: async () => stores,
      async reopen() {
        await stores.close()
        stores = track(openLmdbStores(dir.path))
        return stores
      },
      url: undefined,
    }
  },
}

const pg: Backend = {
  name: 'postgres',
  async open() {
    const url = await postgres().createDatabase({ template: TEMPLATE })
    const open = async (tuning: Partial<PostgresTuning> = {}): Promise<HubStores> => {
      const dir = tempDir('fleetgate-contract-')
      closing.push(async () => dir.cleanup())
      const stores = await openPostgresStores({ url, nodeId: `node-${++nodes}`, log, tuning: { ...TEST_TUNING, ...tuning } }, () => openLmdbSpool(dir.path))
      return track(stores)
    }
    let stores = await open()
    const peers: HubStores[] = []
    return {
      get stores() {
        return stores
      },
      async peer(tuning) {
        const peer = await open(tuning)
        peers.push(peer)
        return peer
      },
      async reopen() {
        for (const open of [stores, ...peers.splice(0)]) await open.close()
        stores = await open()
        return stores
      },
      url,
    }
  },
}

/** Both backends, for `describe.each`. */
export const BACKENDS: readonly Backend[] = [lmdb, pg]

/** Polls `read` every 10 ms until `done` holds or `withinMs` passes; returns the last value read. */
export async function within<T>(withinMs: number, read: () => T | Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
