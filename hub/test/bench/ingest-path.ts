// The hub's ingest path in one process, for CPU per reading without the noise of a whole bench:
// device frames (CBOR, encoded beforehand) go through what the device endpoint does with a message
// (decode, the frame counter, `Ingest.accept`), the group commit into a real lmdb spool in a temp
// dir, the acks back to sessions (a DeviceSession over a socket that takes every write), the
// shipper's lines and its HTTP writes to an InfluxDB stand-in (a child process that answers 204
// and counts lines), and the MQTT broker with no client. Prints the process's CPU (every thread:
// lmdb's writer included) per acked reading over the steady part; asserts that every reading landed.
//
//   node --import tsx hub/test/bench/ingest-path.ts [--readings-per-frame 1] [--devices 100] [--readings 400000] [--history]
//
// It lives in the hub's tests because it builds the hub's telemetry from its parts.
import { fork, type ChildProcess } from 'node:child_process'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { realClock } from '@fleetgate/device-sdk'
import { decodeDeviceFrame, encodeFrame, type DeviceFrame, type Reading } from '@fleetgate/device-sdk/wire'
import type { WebSocket } from 'uWebSockets.js'
import { tempDir } from '../../../test/support/hub.js'
import { grantOf, Registry } from '../../src/devices/index.js'
import { createLogger } from '../../src/logger.js'
import { HubMetrics } from '../../src/observability/index.js'
import { openLmdbStores } from '../../src/store/index.js'
import { createTelemetry } from '../../src/telemetry/index.js'
import { DeviceSession, type SocketData } from '../../src/transport/device-session.js'

const args = new Map<string, string>()
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const name = (argv[i] as string).replace(/^--/, '')
  const next = argv[i + 1]
  if (next === undefined || next.startsWith('--')) args.set(name, 'true')
  else args.set(name, argv[++i] as string)
}
const READINGS_PER_FRAME = Number(args.get('readings-per-frame') ?? 1)
const DEVICES = Number(args.get('devices') ?? 100)
const READINGS = Number(args.get('readings') ?? (READINGS_PER_FRAME === 1 ? 400_000 : 2_000_000))
const HISTORY = args.has('history')
/** The first part of the readings warms the JIT and is not measured. */
const WARMUP_SHARE = 0.25
const WINDOW = 64
/** Frames a device delivers per turn of the event loop at most, as socket reads would. */
const FRAMES_PER_TURN = 8
const T0 = Date.now() - 3_600_000

/** An InfluxDB stand-in in its own process: 204 to every write, lines counted. */
function startSink(): Promise<{ child: ChildProcess; url: string; lines: () => Promise<number> }> {
  const source = `
    const http = require('node:http')
    let lines = 0
    const server = http.createServer((req, res) => {
      if (req.url.startsWith('/count')) { res.end(String(lines)); return }
      if (req.url.startsWith('/query')) { res.setHeader('content-type', 'application/json'); res.end('{"results":[{}]}'); return }
      let newlines = 0, any = false
      req.on('data', (chunk) => { any = true; for (const byte of chunk) if (byte === 10) newlines++ })
      req.on('end', () => { if (req.url.startsWith('/write') && any) lines += newlines + 1; res.statusCode = 204; res.end() })
    })
    server.listen(0, '127.0.0.1', () => process.send(server.address().port))
  `
  const child = fork('-e', [source], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve) => {
    child.once('message', (port) => {
      const url = `http://127.0.0.1:${String(port)}`
      resolve({ child, url, lines: async () => Number(await (await fetch(`${url}/count`)).text()) })
    })
  })
}

/** A uWS socket that takes every write. */
const socket = {
  cork: (fn: () => void) => fn(),
  send: () => 1,
  end: () => undefined,
} as unknown as WebSocket<SocketData>

const frameOf = (s: number): DeviceFrame => {
  const metrics = (n: number): Reading['m'] => ({ t: 20 + (n % 50) / 10, h: 45.5, v: 3.3 })
  if (READINGS_PER_FRAME === 1) return { t: 'tm', s, ts: T0 + s, m: metrics(s) }
  return { t: 'tb', s, r: Array.from({ length: READINGS_PER_FRAME }, (_, i) => ({ ts: T0 + s * READINGS_PER_FRAME + i, m: metrics(s + i) })) }
}

const sink = await startSink()
const dir = tempDir('fleetgate-ingest-path-')
const stores = openLmdbStores(dir.path)
const clock = realClock
const registry = new Registry(stores.registry, clock)
const ids = Array.from({ length: DEVICES }, (_, i) => `dev-${String(i).padStart(5, '0')}`)
await registry.createMany(ids.map((id) => ({ id, keyType: 'hmac' as const, tags: { site: 'bench' } })))
let sessions = 0
const metrics = new HubMetrics({ sessions: () => sessions, spoolBytes: () => stores.spool.bytes, pendingFrames: () => 0, historyBytes: () => undefined, eventStreams: () => 0 })
const telemetry = createTelemetry({
  spool: stores.spool,
  history: HISTORY ? { store: stores.history, retentionMs: 7 * 86_400_000, maxBytes: 2 ** 33 } : undefined,
  registry,
  influx: { url: sink.url, database: 'bench' },
  dataDir: dir.path,
  log: createLogger('silent'),
  clock,
  counters: metrics,
  ratePerSec: 1_000_000,
  spoolMaxBytes: 2 ** 33,
  publish: () => undefined,
})
telemetry.start()
const ingest = telemetry.ingest

const framesPerDevice = Math.ceil(READINGS / READINGS_PER_FRAME / DEVICES)
interface Device {
  readonly session: DeviceSession
  readonly frames: Uint8Array[]
  next: number
  acked: number
}
const devices: Device[] = ids.map((id) => {
  const record = registry.get(id)
  if (record === undefined) throw new Error(`device ${id} was not created`)
  const session = new DeviceSession(id, clock.now(), grantOf(record), ingest.newState())
  session.socket = socket
  sessions++
  const frames = Array.from({ length: framesPerDevice }, (_, i) => encodeFrame(frameOf(i + 1)))
  return { session, frames, next: 0, acked: 0 }
})
// Acks come back through the session's send: the device keeps count of what was acked.
for (const device of devices) {
  const send = device.session.send.bind(device.session)
  device.session.send = (frame) => {
    if (frame.t === 'ack') device.acked = frame.s
    else if (frame.t === 'nak') throw new Error(`naked: ${JSON.stringify(frame)}`)
    return send(frame)
  }
}

/** What the device endpoint does with one binary message. */
const receive = (session: DeviceSession, bytes: Uint8Array): void => {
  session.lastSeenAt = clock.now()
  const decoded = decodeDeviceFrame(bytes)
  if (!decoded.ok) throw new Error(decoded.reason)
  metrics.frames.inc(decoded.frame.t)
  if (decoded.frame.t !== 'tm' && decoded.frame.t !== 'tb') throw new Error('not telemetry')
  ingest.accept(session, decoded.frame, bytes)
}

const totalFrames = framesPerDevice * DEVICES
const ackedFrames = (): number => devices.reduce((n, d) => n + d.acked, 0)
const lag = monitorEventLoopDelay({ resolution: 1 })
let mark: { cpu: NodeJS.CpuUsage; at: number; acked: number } | undefined
let done: (() => void) | undefined
const finished = new Promise<void>((resolve) => (done = resolve))
const turn = (): void => {
  let sent = 0
  for (const device of devices) {
    for (let k = 0; k < FRAMES_PER_TURN && device.next < device.frames.length && device.next - device.acked < WINDOW; k++) {
      receive(device.session, device.frames[device.next++] as Uint8Array)
      sent++
    }
  }
  const acked = ackedFrames()
  if (mark === undefined && acked >= totalFrames * WARMUP_SHARE) {
    mark = { cpu: process.cpuUsage(), at: performance.now(), acked }
    lag.enable()
  }
  if (acked >= totalFrames) done?.()
  // Nothing to send: wait for acks (a timer, so the loop can block in I/O for lmdb's callbacks).
  else if (sent === 0) setTimeout(turn, 0)
  else setImmediate(turn)
}
turn()
await finished
const cpu = process.cpuUsage(mark?.cpu)
lag.disable()
const end = { at: performance.now(), acked: ackedFrames() }
const readings = (end.acked - (mark?.acked ?? 0)) * READINGS_PER_FRAME
const cpuUs = cpu.user + cpu.system
// Every acked reading must land; the shipper sends what waits at most a second later.
let landed = await sink.lines()
for (let waited = 0; landed < totalFrames * READINGS_PER_FRAME && waited < 30_000; waited += 100) {
  await new Promise((resolve) => setTimeout(resolve, 100))
  landed = await sink.lines()
}
await telemetry.stop()
console.log(
  `${READINGS_PER_FRAME} reading(s)/frame, ${DEVICES} devices${HISTORY ? ', history on' : ''}: ${(cpuUs / readings).toFixed(2)} µs CPU per reading ` +
    `(${(cpuUs / 1000 / (end.at - (mark?.at ?? 0))).toFixed(2)} cores, ${Math.round((readings * 1000) / (end.at - (mark?.at ?? 0)))} readings/s); ` +
    `event loop delay p50 ${(lag.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(1)} ms; ` +
    `heap ${Math.round(process.memoryUsage().heapUsed / 1048576)} MiB, RSS ${Math.round(process.memoryUsage().rss / 1048576)} MiB; ` +
    `landed ${landed} of ${totalFrames * READINGS_PER_FRAME}`,
)
sink.child.kill()
await stores.close()
dir.cleanup()
if (landed !== totalFrames * READINGS_PER_FRAME) process.exit(1)
