// Worker handlers for MQTT: the subscriber that counts what each broker delivers (Fleetgate's,
// the reference hub's aedes, Mosquitto; mqtt.js, the client most Node services use), and the
// QoS 1 publishers of the Mosquitto peer.
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect, type MqttClient } from 'mqtt'
import { generate, parser, type Packet } from 'mqtt-packet'
import { metricsFor, pace, readingTime } from './load.js'
import type { Handlers } from './procs.js'

/** What `counter.sample` answers. */
export interface CounterSample {
  readonly at: number
  /** Telemetry messages received, duplicates included. */
  readonly messages: number
  /** Readings in messages seen for the first time (by device and seq). */
  readonly uniqueReadings: number
  /** Messages whose device and seq were seen before (MQTT QoS 1 is at least once). */
  readonly duplicates: number
  /** Messages that did not parse. */
  readonly unparsable: number
}

/** Parameters of `counter.start`. */
export interface CounterParams {
  readonly url: string
  /** The password (Fleetgate: an operator token); none for an anonymous broker. */
  readonly password?: string
  readonly topic: string
}

/** Which (device, seq) pairs were seen, as one growable bitmap per device. */
class SeenSet {
  readonly #bits = new Map<string, Uint8Array>()

  /** Marks the pair; true when it was new. */
  add(device: string, seq: number): boolean {
    let bits = this.#bits.get(device)
    const byte = seq >> 3
    if (bits === undefined || byte >= bits.length) {
      const grown = new Uint8Array(Math.max(1024, (byte + 1) * 2))
      if (bits !== undefined) grown.set(bits)
      bits = grown
      this.#bits.set(device, bits)
    }
    const mask = 1 << (seq & 7)
    if ((bits[byte] as number) & mask) return false
    bits[byte] = (bits[byte] as number) | mask
    return true
  }
}

let counter: { client: MqttClient; messages: number; uniqueReadings: number; duplicates: number; unparsable: number } | undefined

/** Connects an mqtt.js client (no reconnects) and resolves after CONNACK. */
function connectClient(url: string, options: { password?: string; clientId: string }): Promise<MqttClient> {
  const client = connect(url, {
    clientId: options.clientId,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(options.password === undefined ? {} : { username: 'bench', password: options.password }),
  })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
    client.once('close', () => reject(new Error(`MQTT connection to ${url} closed before CONNACK`)))
  })
}

/** Publishers' shared counters. */
interface Publishers {
  readonly connections: LeanPublisher[]
  sent: number
  acked: number
  inflight: number
  stopPacing: () => void
}

let publishers: Publishers | undefined

/**
 * A lean QoS 1 publisher of one device's telemetry on a raw socket: packets from mqtt-packet
 * (MQTT.js's own codec), PUBACKs parsed by it, writes corked per received chunk. mqtt.js clients
 * were the bottleneck here: 100 of them took 0.8 of a core for about 34,000 publishes/s, against
 * 0.6 of a core for 70,000/s this way, which leaves the cores to Mosquitto and its subscriber.
 * At most `window` publishes are unacknowledged (a Fleetgate device's window); `backlog` is what
 * it has to send (Infinity: as fast as Mosquitto acks).
 */
class LeanPublisher {
  backlog = 0
  #window = 0
  #seq = 0
  #messageId = 0
  #t0 = 0
  readonly #socket: Socket
  readonly #device: string
  readonly #topic: string
  readonly #state: Publishers

  private constructor(socket: Socket, device: string, state: Publishers) {
    this.#socket = socket
    this.#device = device
    this.#topic = `fleetgate/devices/${device}/telemetry`
    this.#state = state
  }

  static async connect(url: string, device: string, state: Publishers): Promise<LeanPublisher> {
    const { hostname, port } = new URL(url)
    const socket = tcpConnect({ host: hostname, port: Number(port) })
    socket.setNoDelay(true)
    const publisher = new LeanPublisher(socket, device, state)
    const packets = parser()
    let connack: (() => void) | undefined
    packets.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connack') connack?.()
      else if (packet.cmd === 'puback') {
        state.inflight--
        state.acked++
        publisher.#inflight--
        publisher.pump()
      }
    })
    socket.on('data', (chunk: Buffer) => {
      socket.cork()
      packets.parse(chunk)
      socket.uncork()
    })
    await new Promise<void>((resolve, reject) => {
      connack = resolve
      socket.once('error', reject)
      socket.once('connect', () =>
        socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `bench-${device}-${process.pid}`, keepalive: 60 })),
      )
    })
    return publisher
  }

  #inflight = 0

  start(window: number, t0: number, backlog: number): void {
    this.#window = window
    this.#t0 = t0
    this.backlog = backlog
    this.pump()
  }

  pump(): void {
    while (this.#inflight < this.#window && this.backlog >= 1) {
      const seq = ++this.#seq
      this.#messageId = (this.#messageId % 65535) + 1
      this.backlog--
      this.#inflight++
      this.#state.sent++
      this.#state.inflight++
      const payload = telemetryPayload(this.#device, seq, this.#t0)
      this.#socket.write(generate({ cmd: 'publish', topic: this.#topic, payload, qos: 1, messageId: this.#messageId, retain: false, dup: false }))
    }
  }

  close(): void {
    this.#socket.end(generate({ cmd: 'disconnect' }))
    this.#socket.destroy()
  }
}

/** The JSON a Fleetgate subscriber would get for reading `seq` of `device`. */
function telemetryPayload(device: string, seq: number, t0: number): string {
  return JSON.stringify({ device, seq, readings: [{ ts: readingTime(t0, seq, 1, 0), m: metricsFor(seq) }] })
}

export const mqttHandlers: Handlers = {
  /** Subscribes at QoS 1 and counts every telemetry message `{device, seq, readings}` it gets. */
  async 'counter.start'(raw) {
    const params = raw as CounterParams
    const client = await connectClient(params.url, {
      clientId: `bench-counter-${process.pid}`,
      ...(params.password === undefined ? {} : { password: params.password }),
    })
    const seen = new SeenSet()
    const state = { client, messages: 0, uniqueReadings: 0, duplicates: 0, unparsable: 0 }
    client.on('message', (topic: string, payload: Buffer) => {
      state.messages++
      try {
        const message = JSON.parse(payload.toString()) as { seq: number; readings: unknown[] }
        // fleetgate/devices/{id}/telemetry
        const device = topic.slice(18, topic.length - 10)
        if (seen.add(device, message.seq)) state.uniqueReadings += message.readings.length
        else state.duplicates++
      } catch {
        state.unparsable++
      }
    })
    await new Promise<void>((resolve, reject) => {
      client.subscribe(params.topic, { qos: 1 }, (err, granted) => {
        if (err !== null && err !== undefined) reject(err)
        else if (granted?.[0]?.qos !== 1) reject(new Error(`subscription to ${params.topic} granted ${String(granted?.[0]?.qos)}`))
        else resolve()
      })
    })
    counter = state
    return true
  },

  'counter.sample'(): CounterSample {
    if (counter === undefined) throw new Error('no counter')
    const { messages, uniqueReadings, duplicates, unparsable } = counter
    return { at: Date.now(), messages, uniqueReadings, duplicates, unparsable }
  },

  async 'counter.stop'() {
    const client = counter?.client
    counter = undefined
    if (client !== undefined) await new Promise<void>((resolve) => client.end(true, {}, () => resolve()))
    return true
  },

  /** Connects `count` lean publishers. */
  async 'publishers.connect'(raw) {
    const { url, count } = raw as { url: string; count: number }
    const state: Publishers = { connections: [], sent: 0, acked: 0, inflight: 0, stopPacing: () => undefined }
    for (let i = 0; i < count; i++) state.connections.push(await LeanPublisher.connect(url, `pub-${i}`, state))
    publishers = state
    return state.connections.length
  },

  /** Starts publishing: as fast as the broker acks, or `ratePerSec` over all publishers. */
  'publishers.start'(raw) {
    const { window, t0, ratePerSec } = raw as { window: number; t0: number; ratePerSec?: number }
    const state = publishers
    if (state === undefined) throw new Error('no publishers')
    for (const c of state.connections) c.start(window, t0, ratePerSec === undefined ? Number.POSITIVE_INFINITY : 0)
    // A strict offered rate: a publisher whose window is full does not save up a burst for later.
    if (ratePerSec !== undefined) state.stopPacing = pace(state.connections, ratePerSec, window)
    return true
  },

  'publishers.sample'() {
    if (publishers === undefined) throw new Error('no publishers')
    return { at: Date.now(), sent: publishers.sent, acked: publishers.acked, inflight: publishers.inflight }
  },

  /** Stops publishing and waits (up to `drainMs`) for the PUBACKs of what was sent. */
  async 'publishers.stop'(raw) {
    const drainMs = (raw as { drainMs?: number } | undefined)?.drainMs ?? 10_000
    const state = publishers
    if (state === undefined) throw new Error('no publishers')
    state.stopPacing()
    for (const c of state.connections) c.backlog = 0
    const deadline = performance.now() + drainMs
    while (state.inflight > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return { at: Date.now(), sent: state.sent, acked: state.acked, inflight: state.inflight }
  },

  'publishers.close'() {
    for (const c of publishers?.connections ?? []) c.close()
    publishers = undefined
    return true
  },
}
