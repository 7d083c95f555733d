import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { KeyType } from '@fleetgate/device-sdk'
import { createLogger, loadConfig, startHub, tokenDigest, type Hub, type HubOptions, type Scope } from '@fleetgate/hub'
import type { Credentials } from './ws.js'

/** The built hub entry point (`npm test` runs `tsc -b` first). */
export const HUB_MAIN = fileURLToPath(new URL('../../hub/dist/main.js', import.meta.url))

/** A fixed admin token for tests, so no test depends on the generated one. */
export const ADMIN_TOKEN = 'test-admin-token-0123456789'

/** Environment for a test hub on loopback, any free ports, InfluxDB and MQTT off unless overridden. */
export function testEnv(dataDir: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    FLEETGATE_HOST: '127.0.0.1',
    FLEETGATE_PORT: '0',
    FLEETGATE_DATA_DIR: dataDir,
    FLEETGATE_ADMIN_TOKEN: ADMIN_TOKEN,
    FLEETGATE_INFLUX_URL: 'off',
    FLEETGATE_MQTT_PORT: 'off',
    FLEETGATE_LOG_LEVEL: 'warn',
    ...env,
  }
}

/** A temp dir removed by `cleanup`. */
export function tempDir(prefix = 'fleetgate-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

/** A hub started in this process on port 0. */
export interface TestHub {
  readonly hub: Hub
  readonly dataDir: string
  readonly base: string
  readonly wsUrl: string
  /** fetch under the hub with the admin token (or `token`), JSON in and out. */
  // JSON bodies are read field by field in assertions, so `any` is the honest type here.
  api(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>
  /** Creates a device (201 or the test fails) and returns its credentials. */
  provision(id: string, options?: { tags?: Record<string, string>; keyType?: KeyType }): Promise<Credentials>
  stop(): Promise<void>
}

/** Starts a hub in-process; `stop()` stops it and removes its data dir unless `dataDir` was given. */
export async function startTestHub(
  env: Record<string, string> = {},
  dataDir?: string,
  options: Omit<HubOptions, 'config' | 'log'> = {},
): Promise<TestHub> {
  const dir = dataDir === undefined ? tempDir() : { path: dataDir, cleanup: () => undefined }
  const config = loadConfig(testEnv(dir.path, env))
  const hub = await startHub({ ...options, config, log: createLogger('silent') })
  const base = `http://127.0.0.1:${hub.ports.http}`
  return {
    hub,
    dataDir: dir.path,
    base,
    wsUrl: `ws://127.0.0.1:${hub.ports.http}/v1/connect`,
    api: (method, path, body, token = ADMIN_TOKEN) => api(base, method, path, body, token),
    provision: (id, options = {}) => provision(base, id, options),
    async stop() {
      await hub.stop()
      dir.cleanup()
    },
  }
}

/** How a REST call reaches the hub: a CA to trust (https), a local address to send from. */
export interface ApiTransport {
  readonly ca?: Buffer
  readonly localAddress?: string
}

/** One JSON REST call (node:http/https, so a test can trust a self-signed `ca` or pick its source address). */
export function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token: string = ADMIN_TOKEN,
  transport: ApiTransport = {},
): Promise<{ status: number; body: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const headers: Record<string, string | number> = { authorization: `Bearer ${token}` }
  if (payload !== undefined) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = Buffer.byteLength(payload)
  }
  const send = base.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(`${base}${path}`, { method, headers, ...transport }, (res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Creates a device through the REST API and returns its credentials; throws unless the hub answers 201. */
export async function provision(
  base: string,
  id: string,
  options: { tags?: Record<string, string>; keyType?: KeyType } = {},
): Promise<Credentials> {
  const keyType = options.keyType ?? 'hmac'
  const created = await api(base, 'POST', '/api/v1/devices', { id, keyType, tags: options.tags ?? {} })
  if (created.status !== 201) throw new Error(`creating device ${id}: ${created.status} ${JSON.stringify(created.body)}`)
  return { deviceId: id, keyType, key: (created.body.key ?? created.body.privateKey) as string }
}

/** A hub running as its own process (`node hub/dist/main.js`), for signals and crashes. */
export interface HubProcess {
  readonly child: ChildProcess
  readonly ports: { http: number; mqtt?: number }
  readonly base: string
  readonly wsUrl: string
  /** Every stdout line so far, parsed. */
  readonly logs: Array<Record<string, unknown>>
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>
}

/** What `startHubProcess` may add to a plain `node hub/dist/main.js` (the benchmarks use both). */
export interface HubProcessOptions {
  /** Node flags before the entry point, e.g. `--cpu-prof`. */
  readonly execArgv?: readonly string[]
  /** Raise the open-files soft limit to the hard limit first (`ulimit -n` in a shell that execs node). */
  readonly raiseOpenFiles?: boolean
}

/** Starts the hub process and waits for its `listening` line (or its early exit). */
export async function startHubProcess(env: Record<string, string>, timeoutMs = 15_000, options: HubProcessOptions = {}): Promise<HubProcess> {
  const argv = [...(options.execArgv ?? []), HUB_MAIN]
  const raise = options.raiseOpenFiles === true
  const command = raise ? 'sh' : process.execPath
  const args = raise ? ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', process.execPath, ...argv] : argv
  const child = spawn(command, args, { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  let buffered = ''
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not log "listening" within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        try {
          const entry = JSON.parse(line) as Record<string, unknown>
          logs.push(entry)
          if (entry['msg'] === 'listening') {
            clearTimeout(timer)
            resolve(entry)
          }
        } catch {
          logs.push({ raw: line })
        }
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`hub exited with ${code} before listening; stderr: ${stderr}`))
    })
  })
  const line = await listening
  const http = line['http'] as number
  const mqtt = line['mqtt'] as number | undefined
  return {
    child,
    ports: mqtt === undefined ? { http } : { http, mqtt },
    base: `http://127.0.0.1:${http}`,
    wsUrl: `ws://127.0.0.1:${http}/v1/connect`,
    logs,
    exited,
  }
}

/** Kills a hub process (SIGKILL unless told otherwise) and waits for it to exit. */
export async function stopHubProcess(hub: HubProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
  if (hub.child.exitCode === null && hub.child.signalCode === null) hub.child.kill(signal)
  return hub.exited
}

/** Hub processes and temp dirs a test file made, stopped and removed by `cleanup` (call it in afterEach). */
export class HubProcesses {
  readonly #running: HubProcess[] = []
  readonly #dirs: Array<{ cleanup(): void }> = []

  /** A new temp dir, removed by `cleanup`. */
  dir(): string {
    const made = tempDir()
    this.#dirs.push(made)
    return made.path
  }

  /** Starts a hub process, killed by `cleanup`. */
  async start(env: Record<string, string>, options: HubProcessOptions = {}): Promise<HubProcess> {
    const hub = await startHubProcess(env, undefined, options)
    this.#running.push(hub)
    return hub
  }

  async cleanup(): Promise<void> {
    for (const hub of this.#running.splice(0)) await stopHubProcess(hub)
    for (const made of this.#dirs.splice(0)) made.cleanup()
  }
}

/** Writes a `FLEETGATE_TOKENS_FILE` into `dir` for tokens by name (stored as their SHA-256); returns its path. */
export function writeTokensFile(dir: string, tokens: Record<string, { scope: Scope; token: string }>): string {
  const path = join(dir, 'tokens.json')
  writeFileSync(path, JSON.stringify(Object.entries(tokens).map(([name, t]) => ({ name, scope: t.scope, sha256: tokenDigest(t.token) }))))
  return path
}
