// The reference hub: what a device hub looks like when built the way most Node code is. A `ws`
// server takes JSON text frames `{s, ts, m}`, buffers points for node-influx's `writePoints`
// (every 5,000 points or 1 s), publishes each frame through aedes (QoS 1) on the topic Fleetgate
// uses, and acks each frame once it is buffered. No durability: an ack means "in memory", a failed
// write is logged and dropped, and nothing pushes back on a device. Devices are not authenticated
// (name in `?device=`), which only makes this peer cheaper. Run by the benchmark as its own process
// (REF_INFLUX_URL, REF_INFLUX_DB); it answers `ports` and `stats` over IPC.
import { createServer } from 'node:net'
import { Aedes, type PublishPacket } from 'aedes'
import { InfluxDB, type IPoint } from 'influx'
import { WebSocketServer } from 'ws'
import { serve } from '../procs.js'

const influxUrl = new URL(process.env['REF_INFLUX_URL'] ?? 'http://127.0.0.1:8086')
const database = process.env['REF_INFLUX_DB'] ?? 'reference'
const BATCH_POINTS = 5000
const FLUSH_INTERVAL_MS = 1000

const influx = new InfluxDB({ host: influxUrl.hostname, port: Number(influxUrl.port), database })
await influx.createDatabase(database)

const stats = { frames: 0, written: 0, writeErrors: 0, droppedPoints: 0, firstError: '' }
let buffer: IPoint[] = []

function flush(): void {
  if (buffer.length === 0) return
  const points = buffer
  buffer = []
  influx.writePoints(points, { precision: 'ms' }).then(
    () => (stats.written += points.length),
    (err: unknown) => {
      stats.writeErrors++
      stats.droppedPoints += points.length
      stats.firstError ||= err instanceof Error ? err.message : String(err)
      console.error(`influx write failed, ${points.length} points dropped: ${String(err)}`)
    },
  )
}
setInterval(flush, FLUSH_INTERVAL_MS)

const broker = await Aedes.createBroker()
const mqtt = createServer((socket) => broker.handle(socket))
await new Promise<void>((resolve) => mqtt.listen(0, '127.0.0.1', resolve))

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/connect', perMessageDeflate: false })
await new Promise<void>((resolve) => wss.once('listening', resolve))

wss.on('connection', (ws, req) => {
  const device = new URL(req.url ?? '/', 'http://localhost').searchParams.get('device') ?? 'unknown'
  const topic = `fleetgate/devices/${device}/telemetry`
  ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as { s: number; ts: number; m: Record<string, number> }
    stats.frames++
    buffer.push({ measurement: 'telemetry', tags: { device }, fields: frame.m, timestamp: frame.ts })
    if (buffer.length >= BATCH_POINTS) flush()
    const packet = {
      cmd: 'publish',
      topic,
      payload: Buffer.from(JSON.stringify({ device, seq: frame.s, readings: [{ ts: frame.ts, m: frame.m }] })),
      qos: 1,
      retain: false,
      dup: false,
    } as PublishPacket
    broker.publish(packet, () => undefined)
    ws.send(JSON.stringify({ ack: frame.s }))
  })
})

const address = (server: { address(): unknown }): number => (server.address() as { port: number }).port

serve({
  ports: () => ({ http: address(wss), mqtt: address(mqtt) }),
  stats: () => ({ ...stats, buffered: buffer.length }),
})
