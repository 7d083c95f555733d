// What the PostgreSQL stores do beyond the interfaces' contract (hub/test/store-contract/): the
// schema's migration, the registry cache across a lost listener, and a server that crashes or goes.
import { describe, expect, it } from 'vitest'
import { createLogger } from '../src/index.js'
import { migrate, readMigrations, type DeviceRecord, type HubStores } from '../src/store/index.js'
import { BACKENDS, postgres, useBackends, within } from './store-contract/backends.js'

useBackends()
const backend = BACKENDS.find((b) => b.name === 'postgres')
if (backend === undefined) throw new Error('no postgres backend')
const log = createLogger('silent')

const device = (id: string): DeviceRecord => ({ id, key: { type: 'hmac', material: `key-of-${id}` }, tags: {}, disabled: false, createdAt: 1 })
const postgresUp = (stores: HubStores): boolean | undefined => stores.engines.find((engine) => engine.name === 'postgres')?.healthy()

describe('PostgreSQL schema migration', () => {
  it('migrates an empty database once when four nodes start on it at once', async () => {
    const url = await postgres().createDatabase()
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => migrate({ connectionString: url }, log)))
    const versions = readMigrations().map((migration) => migration.version)
    expect(outcomes.filter((outcome) => outcome.applied.length > 0).map((outcome) => outcome.applied)).toEqual([versions])
    expect(outcomes.map((outcome) => outcome.version)).toEqual(Array(4).fill(Math.max(...versions)))
    const rows = await postgres().query<{ version: number }>('SELECT version FROM fleetgate.schema_migrations ORDER BY version', [], url.slice(url.lastIndexOf('/') + 1))
    expect(rows.map((row) => row.version)).toEqual(versions)
  })

  it('refuses a migration whose file changed after it was applied, and leaves versions of a newer hub alone', async () => {
    const url = await postgres().createDatabase()
    const database = url.slice(url.lastIndexOf('/') + 1)
    await migrate({ connectionString: url }, log)
    const [first, ...rest] = readMigrations()
    if (first === undefined) throw new Error('no migrations shipped')
    const edited = [{ ...first, sql: `${first.sql}\n-- edited`, sha256: 'f'.repeat(64) }, ...rest]
    await expect(migrate({ connectionString: url }, log, edited)).rejects.toMatchObject({
      code: 'HUB_ERR_STORE',
      message: `PostgreSQL migration ${first.name} was changed after it was applied (as ${first.name}); a migration is never edited, a new one is added`,
    })
    await postgres().query("INSERT INTO fleetgate.schema_migrations (version, name, sha256) VALUES (9999, '9999_future.sql', 'x')", [], database)
    const warned: unknown[] = []
    const outcome = await migrate({ connectionString: url }, { info: () => undefined, warn: (detail: unknown) => warned.push(detail) })
    expect(outcome).toEqual({ applied: [], version: 9999 })
    expect(warned).toEqual([{ versions: [9999] }])
  })
})

describe('PostgreSQL stores', () => {
  it("reads what changed while another node's listener was away when it reconnects, before it counts as healthy", async () => {
    const opened = await backend.open()
    const peer = await opened.peer({ reconnectMinMs: 1500, reconnectMaxMs: 1500 })
    await opened.stores.registry.insert([device('kept'), device('gone')])
    await within(1000, () => peer.registry.get('gone'), (record) => record !== undefined)
    // The peer's listener is the newest one; cut it, then change devices while it is away, so that their notifications are lost to it.
    const cut = await postgres().query<{ ok: boolean }>(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name LIKE 'fleetgate % listener' ORDER BY backend_start DESC LIMIT 1",
    )
    expect(cut).toEqual([{ ok: true }])
    await opened.stores.registry.insert([device('new')])
    await opened.stores.registry.update('kept', (before) => ({ ...before, disabled: true }))
    await opened.stores.registry.remove('gone')
    expect(await within(500, () => postgresUp(peer), (up) => up === false)).toBe(false)
    expect(peer.registry.get('new')).toBeUndefined()
    expect(await within(5000, () => postgresUp(peer), (up) => up === true)).toBe(true)
    // Healthy again means caught up: nothing more to wait for.
    expect(peer.registry.get('new')).toEqual(device('new'))
    expect(peer.registry.get('kept')?.disabled).toBe(true)
    expect(peer.registry.get('gone')).toBeUndefined()
  })

  it('keeps what resolved through a crash of the server, and every node works again once it is back', async () => {
    const opened = await backend.open()
    await opened.stores.registry.insert([device('survivor')])
    await opened.stores.commands.write({ id: 'c1', device: 'survivor', name: 'ping', status: 'queued', createdAt: 5, expiresAt: 60_005, timeoutMs: 1000, actor: 'admin' })
    const entry = await opened.stores.audit.append({ at: 5, actor: 'admin', action: 'device.create', target: 'survivor', outcome: 'ok' })
    await postgres().crash()
    expect(await within(1000, () => postgresUp(opened.stores), (up) => up === false)).toBe(false)
    await expect(opened.stores.commands.get('survivor', 'c1')).rejects.toMatchObject({ code: 'HUB_ERR_STORE_UNAVAILABLE' })
    await expect(opened.stores.registry.insert([device('during')])).rejects.toMatchObject({ code: 'HUB_ERR_STORE_UNAVAILABLE' })
    // The cache still answers the connect path, and a last-seen time is best effort.
    expect(opened.stores.registry.get('survivor')).toEqual(device('survivor'))
    await opened.stores.registry.touch('survivor', 7)
    await postgres().start()
    expect(await within(5000, () => postgresUp(opened.stores), (up) => up === true)).toBe(true)
    const fresh = await opened.peer()
    expect(fresh.registry.get('survivor')).toEqual(device('survivor'))
    expect(fresh.registry.get('during')).toBeUndefined()
    expect((await fresh.commands.get('survivor', 'c1'))?.status).toBe('queued')
    expect(await fresh.audit.list(0, 10)).toEqual([entry])
    expect(await opened.stores.registry.insert([device('after')])).toEqual([true])
    expect(await within(1000, () => fresh.registry.get('after'), (record) => record !== undefined)).toEqual(device('after'))
  })
})
