// Measures the PostgreSQL stores against lmdb (issue 14): the registry cache's memory per device at
// 100,000 devices and the time to load it, a connect storm with the registry on PostgreSQL and on
// lmdb (the token check reads the cache either way), and the command round trip (create with
// `wait: true`, delivery, the device's result) on both. Prints numbers; asserts nothing.
//
//   node --expose-gc --import tsx hub/test/bench/postgres-stores.ts [devices=100000] [storm=2000] [roundTrips=300]
//
// Everything shares this machine: PostgreSQL, Mosquitto, the hub and this client. Figures from a
// busy machine are noise; compare the two backends of one run, not runs with each other.
// It lives in the hub's tests because it opens the hub's stores directly.
import { createLogger } from '../../src/index.js'
import { migrate, openLmdbSpool, openPostgresStores, type DeviceRecord } from '../../src/store/index.js'
import { provisionBulk, type DeviceCreds } from '../../../test/bench/load.js'
import { api, startHubProcess, stopHubProcess, tempDir, testEnv, type HubProcess } from '../../../test/support/hub.js'
import { startMosquitto } from '../../../test/support/mosquitto.js'
import { startPostgres, type Postgres } from '../../../test/support/postgres.js'
import { stopAll } from '../../../test/support/service.js'
import { connectDevice, type RawDevice } from '../../../test/support/ws.js'

const [DEVICES = 100_000, STORM = 2000, ROUND_TRIPS = 300] = process.argv.slice(2).map(Number)
const STORM_CONCURRENCY = 256
const log = createLogger('silent')

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error('run with node --expose-gc')
  collect()
  collect()
}
const heapBytes = (): number => {
  gc()
  return process.memoryUsage().heapUsed
}
const dirs: Array<{ cleanup(): void }> = []
const spool = (): ReturnType<typeof openLmdbSpool> => {
  const dir = tempDir('fleetgate-bench-pg-')
  dirs.push(dir)
  return openLmdbSpool(dir.path)
}

/** Inserts `count` devices (hmac, two tags) through one node, then measures what a second node's cache takes to load them. */
async function cacheMemory(pg: Postgres, count: number): Promise<void> {
  const url = await pg.createDatabase({ name: 'cache_memory' })
  await migrate({ connectionString: url }, log)
  const writer = await openPostgresStores({ url, nodeId: 'writer', log }, spool)
  const insertStarted = performance.now()
  for (let start = 0; start < count; start += 10_000) {
    const records: DeviceRecord[] = Array.from({ length: Math.min(10_000, count - start) }, (_, i) => ({
      id: `device-${String(start + i).padStart(6, '0')}`,
      key: { type: 'hmac', material: Buffer.alloc(32, start + i).toString('base64url') },
      tags: { site: `site-${(start + i) % 50}`, model: 'm2' },
      disabled: false,
      createdAt: 1_700_000_000_000 + start + i,
    }))
    await writer.registry.insert(records)
  }
  const insertMs = performance.now() - insertStarted
  await writer.close()
  const before = heapBytes()
  const loadStarted = performance.now()
  const reader = await openPostgresStores({ url, nodeId: 'reader', log }, spool)
  const loadMs = performance.now() - loadStarted
  const after = heapBytes()
  const loaded = reader.registry.get(`device-${String(count - 1).padStart(6, '0')}`) !== undefined
  console.log(`registry cache: ${count} devices (inserted in ${(insertMs / 1000).toFixed(1)} s, 10,000 a transaction)`)
  console.log(`  opening a node (migrate check, connect, load every record): ${loadMs.toFixed(0)} ms; last device cached: ${loaded}`)
  console.log(`  heap taken by the cache: ${((after - before) / 1024 / 1024).toFixed(1)} MiB = ${((after - before) / count).toFixed(0)} bytes per device`)
  await reader.close()
}

/** Connects every device (token signed beforehand) with STORM_CONCURRENCY in flight; connects per second until each has its hello. */
async function storm(hub: HubProcess, devices: readonly DeviceCreds[]): Promise<{ perSec: number; failed: number }> {
  const credentials = devices.map((d) => ({ deviceId: d.id, keyType: d.keyType, key: d.key }))
  let next = 0
  let failed = 0
  const open: RawDevice[] = []
  const started = performance.now()
  await Promise.all(
    Array.from({ length: STORM_CONCURRENCY }, async () => {
      while (next < credentials.length) {
        const device = credentials[next++]
        if (device === undefined) break
        try {
          const ws = await connectDevice(hub.wsUrl, device)
          await ws.next()
          open.push(ws)
        } catch {
          failed++
        }
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  for (const ws of open) ws.close()
  return { perSec: (credentials.length - failed) / seconds, failed }
}

/** Sequential commands with `wait: true` to one connected device that answers at once; latency percentiles in ms. */
async function roundTrips(hub: HubProcess, device: DeviceCreds, count: number): Promise<{ p50: number; p99: number; max: number }> {
  const ws = await connectDevice(hub.wsUrl, { deviceId: device.id, keyType: device.keyType, key: device.key })
  await ws.next()
  ws.ws.on('message', () => {
    for (const frame of ws.frames.splice(0)) if (frame.t === 'cmd') ws.send({ t: 'res', id: frame.id, ok: true, r: { n: 1 } })
  })
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const started = performance.now()
    const reply = await api(hub.base, 'POST', `/api/v1/devices/${device.id}/commands`, { name: 'ping', wait: true })
    if (reply.status !== 200) throw new Error(`command ${i}: ${reply.status} ${JSON.stringify(reply.body)}`)
    times.push(performance.now() - started)
  }
  ws.close()
  times.sort((a, b) => a - b)
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0
  return { p50: at(0.5), p99: at(0.99), max: times[times.length - 1] ?? 0 }
}

async function hubFigures(name: string, env: Record<string, string>): Promise<void> {
  const dir = tempDir('fleetgate-bench-pg-hub-')
  dirs.push(dir)
  // The device answers every command: its frame rate is not what is measured.
  const hub = await startHubProcess(testEnv(dir.path, { FLEETGATE_DEVICE_RATE: '100000', ...env }), 30_000, { raiseOpenFiles: true })
  try {
    const devices = await provisionBulk(hub.base, 'storm', STORM)
    const result = await storm(hub, devices)
    const trips = await roundTrips(hub, devices[0] as DeviceCreds, ROUND_TRIPS)
    console.log(`${name}: connect storm of ${STORM}: ${result.perSec.toFixed(0)} connects/s (${result.failed} failed); ` +
      `command round trip over ${ROUND_TRIPS}: p50 ${trips.p50.toFixed(2)} ms, p99 ${trips.p99.toFixed(2)} ms, max ${trips.max.toFixed(2)} ms`)
  } finally {
    await stopHubProcess(hub, 'SIGTERM')
  }
}

async function main(): Promise<void> {
  const pg = await startPostgres()
  const broker = await startMosquitto()
  try {
    await cacheMemory(pg, DEVICES)
    // Both hubs bridge to the same broker (cluster mode needs it): only the store differs.
    const mqtt = { FLEETGATE_MQTT_PORT: '0', FLEETGATE_MQTT_UPLINK: broker.url }
    await hubFigures('lmdb      ', mqtt)
    const url = await pg.createDatabase({ name: 'hub' })
    await hubFigures('PostgreSQL', { ...mqtt, FLEETGATE_POSTGRES_URL: url, FLEETGATE_NODE_ID: 'bench' })
  } finally {
    await stopAll()
    for (const dir of dirs) dir.cleanup()
  }
}

await main()
