// The real DeviceClient against the real hub (docs/protocol.md): both key types and both ways of
// carrying the token, reconnecting on its own across a SIGKILL of the hub process, the WHATWG
// WebSocket of Node (in a child process: Node 20 has it only behind --experimental-websocket),
// and wss:// with a self-signed certificate the client trusts through its WebSocket constructor.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { DeviceClient, type DeviceClientEvents, type DeviceClientOptions, type SdkError } from '@fleetgate/device-sdk'
import { ADMIN_TOKEN, api, provision, startTestHub, stopHubProcess, tempDir, testEnv, type HubProcess, type TestHub, HubProcesses } from './support/hub.js'
import { assertBuilt } from './support/build.js'
import { freePort } from './support/ports.js'
import { until } from './support/telemetry.js'

/** The SDK as a child process loads it: its build, which `npm test` makes with `tsc -b` first. */
const SDK_DIST = fileURLToPath(new URL('../device-sdk/dist/index.js', import.meta.url))


const clients: DeviceClient[] = []
function newClient(options: DeviceClientOptions): DeviceClient {
  const client = new DeviceClient(options)
  clients.push(client)
  return client
}

/** Records the client's events by name, errors by code. */
function eventsOf(client: DeviceClient): string[] {
  const seen: string[] = []
  const names: Array<keyof DeviceClientEvents> = ['connected', 'disconnected', 'reconnecting', 'error']
  for (const name of names) {
    client.on(name, (arg: unknown) => seen.push(name === 'error' ? `error:${(arg as SdkError).code}` : name))
  }
  return seen
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()))
})

describe('DeviceClient and the hub in-process', () => {
  let hub: TestHub
  beforeAll(async () => {
    hub = await startTestHub()
  })
  afterAll(async () => {
    await hub?.stop()
  })

  it.each([
    ['hmac', 'header'],
    ['hmac', 'query'],
    ['ed25519', 'header'],
    ['ed25519', 'query'],
  ] as const)('connects an %s device with the token in the %s, and its readings are acked', async (keyType, auth) => {
    const device = await hub.provision(`sdk-${keyType}-${auth}`, { keyType })
    const client = newClient({ url: hub.base, deviceId: device.deviceId, key: device.key, keyType, auth, reconnect: false })
    const hello = await client.connect()
    expect(hello).toMatchObject({ t: 'hello', dev: device.deviceId, lim: { frame: 65_536, batch: 500, rate: 100, window: 64 } })
    await client.send({ up: 1 })
    await client.sendBatch([{ metrics: { up: 2 } }, { metrics: { up: 3 } }])
    expect([client.queued, client.inflight]).toStrictEqual([0, 0])
    const fetched = await hub.api('GET', `/api/v1/devices/${device.deviceId}`)
    expect(fetched.body).toMatchObject({ id: device.deviceId, keyType, online: true })
  })

  it('is refused with a wrong key: SDK_ERR_HANDSHAKE caused by SDK_ERR_UNAUTHORIZED (HTTP 401)', async () => {
    const device = await hub.provision('sdk-wrong-key')
    const client = newClient({ url: hub.wsUrl, deviceId: device.deviceId, key: Buffer.alloc(32, 7).toString('base64url'), reconnect: false })
    await expect(client.connect()).rejects.toMatchObject({ code: 'SDK_ERR_HANDSHAKE', cause: { code: 'SDK_ERR_UNAUTHORIZED' } })
  })
})

describe('DeviceClient and the hub process', () => {
  const hubs = new HubProcesses()
  const dir = (): string => hubs.dir()
  const start = (env: Record<string, string>): Promise<HubProcess> => hubs.start(env)
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()))
    await hubs.cleanup()
  })

  it('reconnects by itself when the hub is killed with SIGKILL and restarted on the same port', async () => {
    const dataDir = dir()
    const env = testEnv(dataDir, { FLEETGATE_PORT: String(await freePort()) })
    const first = await start(env)
    const device = await provision(first.base, 'sdk-phoenix')
    const client = newClient({ url: first.wsUrl, deviceId: device.deviceId, key: device.key, backoff: { initialDelayMs: 100, maxDelayMs: 400 } })
    const seen = eventsOf(client)
    await client.connect()
    await client.send({ before: 1 })

    await stopHubProcess(first, 'SIGKILL')
    await until(() => seen.includes('reconnecting'), 'reconnecting')
    expect(seen.slice(0, 3)).toStrictEqual(['connected', 'disconnected', 'reconnecting'])
    expect(client.connected).toBe(false)

    await start(env)
    await until(() => client.connected, 'the client to connect again')
    expect(seen.filter((name) => name === 'connected')).toHaveLength(2)
    expect(seen.at(-1)).toBe('connected')
    // in between: only failed attempts, each an error and a new delay
    expect(new Set(seen.slice(3, -1))).toStrictEqual(new Set(seen.length > 4 ? ['error:SDK_ERR_HANDSHAKE', 'reconnecting'] : []))
    await client.send({ after: 1 })
  })

  it('connects over wss:// with a WebSocket constructor that trusts the hub certificate', async () => {
    const dataDir = dir()
    const cert = join(dataDir, 'cert.pem')
    const key = join(dataDir, 'key.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' })
    const ca = readFileSync(cert)
    const hub = await start(testEnv(dataDir, { FLEETGATE_TLS_CERT: cert, FLEETGATE_TLS_KEY: key }))
    const https = `https://127.0.0.1:${hub.ports.http}`
    const created = await api(https, 'POST', '/api/v1/devices', { id: 'sdk-tls' }, ADMIN_TOKEN, { ca })
    expect(created.status).toBe(201)

    class TrustingWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[], options?: WebSocket.ClientOptions) {
        super(url, protocols, { ...options, ca })
      }
    }
    const client = newClient({ url: https, deviceId: 'sdk-tls', key: created.body.key, WebSocket: TrustingWebSocket, reconnect: false })
    expect(client.url).toBe(`wss://127.0.0.1:${hub.ports.http}/v1/connect`)
    expect(await client.connect()).toMatchObject({ t: 'hello', dev: 'sdk-tls' })
    await client.send({ secure: 1 })

    // without the CA, the same client is refused: the certificate really is checked
    const untrusting = newClient({ url: https, deviceId: 'sdk-tls', key: created.body.key, reconnect: false })
    await expect(untrusting.connect()).rejects.toMatchObject({ code: 'SDK_ERR_HANDSHAKE' })
  })
})

describe('DeviceClient on the WHATWG WebSocket of Node (--experimental-websocket, child process)', () => {
  let hub: TestHub
  let scripts: { path: string; cleanup(): void } | undefined
  beforeAll(async () => {
    assertBuilt('device-sdk')
    scripts = tempDir('fleetgate-sdk-whatwg-')
    hub = await startTestHub()
  })
  afterAll(async () => {
    await hub?.stop()
    scripts?.cleanup()
  })

  it('connects with the token in the query and gets its readings acked', async () => {
    const device = await hub.provision('sdk-whatwg')
    const script = join((scripts as { path: string }).path, 'whatwg-device.mjs')
    writeFileSync(
      script,
      `import { DeviceClient } from ${JSON.stringify(pathToFileURL(SDK_DIST).href)}
const [url, deviceId, key] = process.argv.slice(2)
const report = (value) => process.stdout.write(JSON.stringify(value) + '\\n')
if (typeof globalThis.WebSocket !== 'function') {
  report({ error: 'no global WebSocket' })
  process.exit(2)
}
const client = new DeviceClient({ url, deviceId, key, WebSocket: globalThis.WebSocket, auth: 'query', reconnect: false })
try {
  const hello = await client.connect()
  await client.send({ whatwg: 1 })
  await client.sendBatch([{ metrics: { whatwg: 2 } }, { metrics: { whatwg: 3 } }])
  report({ dev: hello.dev, window: hello.lim.window, queued: client.queued, inflight: client.inflight })
} catch (error) {
  report({ error: String(error), code: error.code })
} finally {
  await client.close()
}
`,
    )
    const child = spawn(process.execPath, ['--experimental-websocket', '--no-warnings', script, hub.wsUrl, device.deviceId, device.key], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    clearTimeout(timer)
    expect({ code, stderr, report: stdout.trim() === '' ? undefined : JSON.parse(stdout) }).toStrictEqual({
      code: 0,
      stderr: '',
      report: { dev: 'sdk-whatwg', window: 64, queued: 0, inflight: 0 },
    })
  })
})
