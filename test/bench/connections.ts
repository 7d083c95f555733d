// Connection figures of the foundation issue: a storm of device connects (sessions authenticated
// per second, hmac and ed25519) and the hub's RSS per idle session. Run: npm run bench:connections
// [-- --storm 1000 --idle 10000]. The hub runs as its own process; this process is the load.
import WebSocket from 'ws'
import { signToken, type KeyType } from '@fleetgate/device-sdk'
import { api, startHubProcess, stopHubProcess, tempDir, testEnv } from '../support/hub.js'
import { cpuMs, mib, rssBytes, sleep } from './measure.js'

const arg = (name: string, fallback: number): number => {
  const index = process.argv.indexOf(`--${name}`)
  return index < 0 ? fallback : Number(process.argv[index + 1])
}
const STORM = arg('storm', 1000)
const IDLE = arg('idle', 10_000)

interface Device {
  readonly id: string
  readonly keyType: KeyType
  readonly key: string
}

async function provision(base: string, prefix: string, count: number, keyType: KeyType): Promise<Device[]> {
  const devices: Device[] = []
  for (let start = 0; start < count; start += 10_000) {
    const batch = Array.from({ length: Math.min(10_000, count - start) }, (_, i) => ({ id: `${prefix}-${start + i}`, keyType }))
    const created = await api(base, 'POST', '/api/v1/devices/bulk', { devices: batch })
    for (const d of created.body.created as Array<{ id: string; key?: string; privateKey?: string }>) {
      devices.push({ id: d.id, keyType, key: (d.key ?? d.privateKey) as string })
    }
  }
  return devices
}

/** Opens one session per device, all at once (up to `concurrency` in flight); resolves the sockets. */
async function connectAll(url: string, tokens: readonly string[], concurrency: number, localAddresses: readonly string[]): Promise<WebSocket[]> {
  const sockets: WebSocket[] = []
  let next = 0
  const one = async (): Promise<void> => {
    while (next < tokens.length) {
      const i = next++
      const ws = new WebSocket(url, {
        headers: { authorization: `Bearer ${tokens[i]}` },
        localAddress: localAddresses[i % localAddresses.length],
        perMessageDeflate: false,
      })
      await new Promise<void>((resolve, reject) => {
        ws.once('message', () => resolve())
        ws.once('error', reject)
        ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
      })
      sockets.push(ws)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, one))
  return sockets
}

/** Connects every device at once; the rate, and the hub's CPU use over the storm (1.0 = one core). */
async function storm(url: string, devices: readonly Device[], pid: number): Promise<{ perSec: number; hubCores: number }> {
  const exp = Math.floor(Date.now() / 1000) + 3600
  const tokens = await Promise.all(devices.map((d) => signToken({ deviceId: d.id, keyType: d.keyType, key: d.key, expSec: exp })))
  const cpuBefore = cpuMs(pid)
  const started = performance.now()
  const sockets = await connectAll(url, tokens, devices.length, ['127.0.0.1'])
  const elapsedMs = performance.now() - started
  const hubCores = (cpuMs(pid) - cpuBefore) / elapsedMs
  for (const ws of sockets) ws.terminate()
  return { perSec: (devices.length / elapsedMs) * 1000, hubCores }
}

const data = tempDir('fleetgate-bench-')
// Idle sessions must outlive the measurement; 60 s of silence is the default and plenty here.
const hub = await startHubProcess(testEnv(data.path, { FLEETGATE_LOG_LEVEL: 'warn', FLEETGATE_DEVICE_RATE: '100' }))
try {
  const hmac = await provision(hub.base, 'storm-hmac', Math.max(STORM, IDLE), 'hmac')
  const ed = await provision(hub.base, 'storm-ed', STORM, 'ed25519')
  console.log(`hub pid ${hub.child.pid}, ${hmac.length + ed.length} devices provisioned`)

  const pid = hub.child.pid as number
  // A first storm warms both sides' JIT; the second is the figure.
  await storm(hub.wsUrl, hmac.slice(0, STORM), pid)
  await sleep(1000)
  const hmacRate = await storm(hub.wsUrl, hmac.slice(0, STORM), pid)
  await sleep(1000)
  const edRate = await storm(hub.wsUrl, ed, pid)
  await sleep(2000)

  const before = rssBytes(pid)
  const exp = Math.floor(Date.now() / 1000) + 3600
  const idleDevices = hmac.slice(0, IDLE)
  const tokens = await Promise.all(idleDevices.map((d) => signToken({ deviceId: d.id, keyType: d.keyType, key: d.key, expSec: exp })))
  const addresses = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 1}`)
  const sockets = await connectAll(hub.wsUrl, tokens, 500, addresses)
  await sleep(5000)
  const after = rssBytes(pid)
  const online = await api(hub.base, 'GET', '/api/v1/devices?online=true&limit=1')
  console.log(
    JSON.stringify({
      connectStorm: {
        devices: STORM,
        hmacPerSec: Math.round(hmacRate.perSec),
        hmacHubCores: Number(hmacRate.hubCores.toFixed(2)),
        ed25519PerSec: Math.round(edRate.perSec),
        ed25519HubCores: Number(edRate.hubCores.toFixed(2)),
      },
      idle: {
        sessions: sockets.length,
        onlineListed: online.body.items.length === 1,
        hubRssBefore: mib(before),
        hubRssAfter: mib(after),
        rssPerSessionBytes: Math.round((after - before) / sockets.length),
      },
    }),
  )
  for (const ws of sockets) ws.terminate()
} finally {
  await stopHubProcess(hub, 'SIGTERM')
  data.cleanup()
}
