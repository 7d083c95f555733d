// A microbenchmark of the bridge alone: what the broker's process spends to deliver the hub's
// telemetry publishes to MQTT subscribers, without InfluxDB, devices or the hub around it.
//
//   npm run bench:mqtt                                   # 1 QoS 1 mqtt.js subscriber on fleetgate/#, 5 x 100,000 messages
//   npm run bench:mqtt -- --subscribers 10 --qos 0       # 10 QoS 0 subscribers
//   npm run bench:mqtt -- --filter fleetgate/nothing     # a client that matches nothing: the cost without delivery
//   npm run bench:mqtt -- --profile                      # also the hot spots of the measured window
//
// The broker (createBroker, as the hub wires it, behind a `net` listener on 127.0.0.1) runs in this
// process and publishes `--batch` telemetry messages per event-loop turn, as a commit releases them,
// holding while 4,096 publishes are pending (the hub's egress high-water mark) or a client has over
// 512 KiB queued (so that the subscribers, not the broker, never fall behind for long). The
// subscribers run in a child process (the broker's CPU is this process's CPU alone): mqtt.js
// clients by default, as the bench's counter, which answer each QoS 1 PUBLISH with a PUBACK of its
// own; `--client raw` answers all PUBLISHes of one read with one write of PUBACKs. Every message
// is checked: per subscriber and device, seqs must arrive in order, each exactly once, at the QoS
// subscribed.
//
// Figures: this process's CPU (user + system) per delivered message and per published message, and
// the publish rate, each over `--runs` windows of `--messages` (median, lowest and highest): on a
// machine shared with other work the rate is noise, the CPU per message less so.
import { Session } from 'node:inspector/promises'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { connectAsync, type MqttClient } from 'mqtt'
import { generate } from 'mqtt-packet'
import { createBroker, type TelemetryMessage } from '@fleetgate/bridge'
import { formatProfile, summariseProfile } from './cpuprofile.js'
import { metricsFor, readingTime } from './load.js'
import { sleep } from './measure.js'
import { serve, Worker } from './procs.js'

const WORKER_NAME = 'mqtt-delivery-subscribers'
/** The hub's default egress high-water mark (hub.ts `mqttHighWater`). */
const HIGH_WATER = 4096
/** Bytes queued for one client above which the publisher waits a millisecond. */
const PACE_BACKLOG_BYTES = 512 * 1024

interface Args {
  readonly subscribers: number
  readonly messages: number
  readonly runs: number
  readonly warmup: number
  readonly qos: 0 | 1
  readonly devices: number
  readonly batch: number
  readonly filter: string
  /** `mqttjs`: mqtt.js clients (one PUBACK per message, as the bench's counter); `raw`: PUBACKs batched per read. */
  readonly client: 'mqttjs' | 'raw'
  readonly profile: boolean
}

function parseArgs(argv: readonly string[]): Args {
  const values: Record<string, string> = {}
  let profile = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--profile') {
      profile = true
      continue
    }
    const [key, inline] = arg.split('=', 2) as [string, string | undefined]
    const value = inline ?? argv[++i]
    if (!key.startsWith('--') || value === undefined) throw new Error(`bad argument ${arg}; usage: mqtt-delivery.ts [--subscribers N] [--messages N] [--runs N] [--warmup N] [--qos 0|1] [--devices N] [--batch N] [--filter F] [--client mqttjs|raw] [--profile]`)
    values[key.slice(2)] = value
  }
  const int = (name: string, fallback: number, min: number): number => {
    const raw = values[name]
    delete values[name]
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`)
    return n
  }
  const qos = int('qos', 1, 0)
  if (qos > 1) throw new Error('--qos must be 0 or 1')
  const args: Args = {
    subscribers: int('subscribers', 1, 1),
    messages: int('messages', 100_000, 1),
    runs: int('runs', 5, 1),
    warmup: int('warmup', 20_000, 0),
    qos: qos === 0 ? 0 : 1,
    devices: int('devices', 100, 1),
    batch: int('batch', 100, 1),
    filter: values['filter'] ?? 'fleetgate/#',
    client: values['client'] === 'raw' ? 'raw' : 'mqttjs',
    profile,
  }
  if (values['client'] !== undefined && values['client'] !== 'raw' && values['client'] !== 'mqttjs') throw new Error('--client must be mqttjs or raw')
  delete values['filter']
  delete values['client']
  const unknown = Object.keys(values)
  if (unknown.length > 0) throw new Error(`unknown argument --${unknown.join(', --')}`)
  return args
}

/** What the subscribers' process answers to `sample`. */
interface SubscriberSample {
  /** PUBLISH packets received, by all subscribers together. */
  readonly messages: number
  /** The fewest any one subscriber received. */
  readonly fewest: number
  /** Messages whose seq was not the next one of its device for that subscriber (a gap, a repeat, a reordering). */
  readonly outOfOrder: number
  /** PUBLISH packets at another QoS than subscribed. */
  readonly wrongQos: number
  /** QoS 1 packet ids repeated within one read, before the PUBACK for the first went out. */
  readonly idClashes: number
  /** Connections the broker closed. */
  readonly closed: number
  /** CPU of the subscribers' process since `subscribe`, in ms. */
  readonly cpuMs: number
}

/** What every subscriber counts: messages, and each check's failures. */
abstract class Subscriber {
  messages = 0
  outOfOrder = 0
  wrongQos = 0
  idClashes = 0
  closed = false
  readonly #lastSeq = new Map<string, number>()

  constructor(protected readonly qos: 0 | 1) {}

  abstract close(): void

  /** Counts one message of `device` with `seq` at `qos`. */
  protected seen(device: string, seq: number, qos: number): void {
    this.messages++
    if (qos !== this.qos) this.wrongQos++
    const last = this.#lastSeq.get(device) ?? 0
    if (seq !== last + 1) this.outOfOrder++
    this.#lastSeq.set(device, seq)
  }
}

/** An mqtt.js client, as the bench's counter (and most Node services) subscribe. */
class MqttJsSubscriber extends Subscriber {
  readonly #client: MqttClient

  private constructor(client: MqttClient, qos: 0 | 1) {
    super(qos)
    this.#client = client
    client.on('message', (_topic, payload, packet) => {
      const message = JSON.parse(payload.toString()) as { device: string; seq: number }
      this.seen(message.device, message.seq, packet.qos)
    })
    client.on('close', () => (this.closed = true))
  }

  static async open(port: number, index: number, qos: 0 | 1, filter: string): Promise<MqttJsSubscriber> {
    const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `bench-sub-${index}`, clean: true, reconnectPeriod: 0, username: 'bench', password: 'bench' })
    const subscriber = new MqttJsSubscriber(client, qos)
    await client.subscribeAsync(filter, { qos })
    return subscriber
  }

  close(): void {
    this.#client.end(true)
  }
}

/** One raw subscriber: parses MQTT 3.1.1 packets off the socket and checks each PUBLISH. */
class RawSubscriber extends Subscriber {
  readonly #socket: Socket
  readonly #unacked = new Set<number>()
  #rest: Buffer = Buffer.alloc(0)
  #suback: (() => void) | undefined

  constructor(socket: Socket, qos: 0 | 1) {
    super(qos)
    this.#socket = socket
    socket.on('data', (chunk: Buffer) => this.#read(chunk))
    socket.on('close', () => (this.closed = true))
    socket.on('error', () => undefined)
  }

  static async open(port: number, index: number, qos: 0 | 1, filter: string): Promise<RawSubscriber> {
    const socket = connect({ host: '127.0.0.1', port })
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    const subscriber = new RawSubscriber(socket, qos)
    const subscribed = new Promise<void>((resolve) => (subscriber.#suback = resolve))
    socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `bench-sub-${index}`, keepalive: 0, username: 'bench', password: Buffer.from('bench') }))
    socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }))
    await subscribed
    return subscriber
  }

  close(): void {
    this.#socket.destroy()
  }

  #read(chunk: Buffer): void {
    const data = this.#rest.length === 0 ? chunk : Buffer.concat([this.#rest, chunk])
    const acks: Buffer[] = []
    this.#unacked.clear()
    let at = 0
    while (at + 2 <= data.length) {
      let length = 0
      let multiplier = 1
      let i = at + 1
      let complete = false
      while (i < data.length) {
        const byte = data[i++] as number
        length += (byte & 0x7f) * multiplier
        multiplier *= 128
        if ((byte & 0x80) === 0) {
          complete = true
          break
        }
      }
      if (!complete || i + length > data.length) break
      const type = (data[at] as number) >> 4
      if (type === 3) this.#publish(data, at, i, i + length, acks)
      else if (type === 9) this.#suback?.()
      at = i + length
    }
    this.#rest = data.subarray(at)
    if (acks.length > 0) this.#socket.write(acks.length === 1 ? (acks[0] as Buffer) : Buffer.concat(acks))
  }

  #publish(data: Buffer, first: number, start: number, end: number, acks: Buffer[]): void {
    const qos = ((data[first] as number) >> 1) & 3
    const topicLength = data.readUInt16BE(start)
    let payload = start + 2 + topicLength
    if (qos > 0) {
      const id = data.readUInt16BE(payload)
      if (this.#unacked.has(id)) this.idClashes++
      this.#unacked.add(id)
      acks.push(Buffer.from([0x40, 2, data[payload] as number, data[payload + 1] as number]))
      payload += 2
    }
    // `{"device":"<id>","seq":<n>,...`: the bench's own payloads, so the prefix is known.
    const text = data.toString('latin1', payload, Math.min(end, payload + 96))
    const quote = text.indexOf('"', 11)
    const device = text.slice(11, quote)
    this.seen(device, Number.parseInt(text.slice(quote + 8), 10), qos)
  }
}

let subscribers: Subscriber[] = []
let cpuAtSubscribe = process.cpuUsage()

const handlers = {
  async subscribe(params: unknown): Promise<void> {
    const { port, count, qos, filter, client } = params as { port: number; count: number; qos: 0 | 1; filter: string; client: Args['client'] }
    const open = client === 'raw' ? RawSubscriber.open : MqttJsSubscriber.open
    subscribers = await Promise.all(Array.from({ length: count }, (_, i) => open(port, i, qos, filter)))
    cpuAtSubscribe = process.cpuUsage()
  },
  sample(): SubscriberSample {
    const cpu = process.cpuUsage(cpuAtSubscribe)
    return {
      messages: subscribers.reduce((sum, s) => sum + s.messages, 0),
      fewest: Math.min(...subscribers.map((s) => s.messages)),
      outOfOrder: subscribers.reduce((sum, s) => sum + s.outOfOrder, 0),
      wrongQos: subscribers.reduce((sum, s) => sum + s.wrongQos, 0),
      idClashes: subscribers.reduce((sum, s) => sum + s.idClashes, 0),
      closed: subscribers.filter((s) => s.closed).length,
      cpuMs: (cpu.user + cpu.system) / 1000,
    }
  },
  close(): void {
    for (const s of subscribers) s.close()
  },
}

async function main(args: Args): Promise<void> {
  const broker = await createBroker({ authenticate: () => ({ name: 'bench', scope: 'reader' }), onCommand: () => undefined })
  const server = createServer((socket) => broker.handle(socket))
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  const worker = await Worker.start(WORKER_NAME, { script: new URL(import.meta.url).pathname })
  await worker.call('subscribe', { port: address.port, count: args.subscribers, qos: args.qos, filter: args.filter, client: args.client })
  const matching = args.filter === 'fleetgate/#' || args.filter.endsWith('/telemetry')
  const perMessage = matching ? args.subscribers : 0

  const devices = Array.from({ length: args.devices }, (_, i) => `bench-${i}`)
  const seqs = new Array<number>(args.devices).fill(0)
  const t0 = Date.now()
  let next = 0
  /** Publishes `count` messages, `args.batch` per turn, paced like the hub's egress back-pressure. */
  const publish = async (count: number): Promise<void> => {
    let left = count
    while (left > 0) {
      const stats = broker.stats()
      if (stats.pendingPublishes >= HIGH_WATER || stats.largestBacklogBytes > PACE_BACKLOG_BYTES) {
        await sleep(1)
        continue
      }
      const n = Math.min(args.batch, left)
      for (let i = 0; i < n; i++) {
        const d = next++ % args.devices
        const seq = ++(seqs[d] as number)
        const message: TelemetryMessage = { device: devices[d] as string, seq, readings: [{ ts: readingTime(t0, seq, 1, 0), m: metricsFor(seq) }] }
        broker.publishTelemetry(devices[d] as string, message)
      }
      left -= n
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  /** Waits until the subscribers hold `expected` messages together (or nothing moves for 10 s). */
  const delivered = async (expected: number): Promise<SubscriberSample> => {
    let sample = await worker.call<SubscriberSample>('sample')
    let last = sample.messages
    let still = performance.now()
    while (sample.messages < expected && sample.closed === 0) {
      await sleep(20)
      sample = await worker.call<SubscriberSample>('sample')
      if (sample.messages !== last) {
        last = sample.messages
        still = performance.now()
      } else if (performance.now() - still > 10_000) {
        throw new Error(`delivery stalled at ${sample.messages} of ${expected}`)
      }
    }
    return sample
  }

  await publish(args.warmup)
  let total = args.warmup
  await delivered(total * perMessage)
  const session = args.profile ? new Session() : undefined
  if (session !== undefined) {
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.start')
  }
  // Several windows, each measured alone: on a shared machine one window can land on a busy moment.
  const windows: Array<{ cpuUs: number; seconds: number; deliveries: number }> = []
  let after = await worker.call<SubscriberSample>('sample')
  const subscriberCpuMs = after.cpuMs
  for (let run = 0; run < args.runs; run++) {
    const before = after
    const cpu = process.cpuUsage()
    const began = performance.now()
    await publish(args.messages)
    total += args.messages
    after = await delivered(total * perMessage)
    const used = process.cpuUsage(cpu)
    windows.push({ cpuUs: used.user + used.system, seconds: (performance.now() - began) / 1000, deliveries: after.messages - before.messages })
  }
  const profile = session === undefined ? undefined : (await session.post('Profiler.stop')).profile
  session?.disconnect()

  const stats = broker.stats()
  const cut = Object.entries(stats.disconnects).filter(([, n]) => n > 0)
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b)
    const mid = sorted.length >> 1
    return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  }
  const spread = (values: number[], digits: number): string =>
    `median ${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)} to ${Math.max(...values).toFixed(digits)})`
  const cpuSum = windows.reduce((sum, w) => sum + w.cpuUs, 0)
  const seconds = windows.reduce((sum, w) => sum + w.seconds, 0)
  console.log(`mqtt-delivery: ${args.runs} x ${args.messages} messages (after ${args.warmup} to warm up), ${args.subscribers} QoS ${args.qos} subscriber(s) (${args.client}) on ${args.filter}, ${args.devices} devices, ${args.batch} per turn`)
  console.log(`  broker process: ${(cpuSum / 1000).toFixed(0)} ms CPU over ${seconds.toFixed(2)} s (${(cpuSum / 1e6 / seconds).toFixed(2)} cores)`)
  console.log(`  CPU per published message, µs: ${spread(windows.map((w) => w.cpuUs / args.messages), 2)}`)
  if (perMessage > 0) console.log(`  CPU per delivered message, µs: ${spread(windows.map((w) => w.cpuUs / w.deliveries), 2)}`)
  console.log(`  messages/s published and delivered: ${spread(windows.map((w) => args.messages / w.seconds), 0)}`)
  console.log(`  subscribers' process CPU: ${(after.cpuMs - subscriberCpuMs).toFixed(0)} ms`)
  console.log(`  checks: out of order ${after.outOfOrder}, wrong QoS ${after.wrongQos}, id clashes ${after.idClashes}, closed ${after.closed}, cut by the broker ${cut.length === 0 ? 0 : JSON.stringify(Object.fromEntries(cut))}`)
  if (profile !== undefined) {
    const file = join(tmpdir(), `mqtt-delivery-${process.pid}.cpuprofile`)
    writeFileSync(file, JSON.stringify(profile))
    console.log(`  profile of the measured windows (${file}):`)
    console.log(formatProfile(summariseProfile(file, 25)))
  }
  const failed = after.outOfOrder + after.wrongQos + after.idClashes + after.closed + cut.length > 0 || after.messages !== total * perMessage
  await worker.call('close')
  await worker.stop()
  await broker.close()
  server.close()
  process.exit(failed ? 1 : 0)
}

if (process.env['BENCH_WORKER'] === WORKER_NAME) serve(handlers)
else await main(parseArgs(process.argv.slice(2)))
