import { connect, type Socket } from 'node:net'
import { generate, parser, type Packet } from 'mqtt-packet'
import { Inbox } from './inbox.js'
import { track, untrack } from './service.js'

/**
 * A raw MQTT 3.1.1 connection on a `net` socket, for tests that must do what no well-behaved client
 * does (stop reading, send oversized or broken packets): packets out through mqtt-packet (MQTT.js's
 * own codec) or as bytes, packets in parsed and queued.
 */
export class RawMqtt {
  readonly socket: Socket
  /** Resolves when the socket is closed, by either side. */
  readonly closed: Promise<void>
  /** Whether the socket is closed. */
  isClosed = false
  readonly #inbox = new Inbox<Packet>()

  private constructor(socket: Socket) {
    this.socket = socket
    const packets = parser()
    packets.on('packet', (packet: Packet) => this.#inbox.push(packet))
    // A broken answer is the broker's bug, and the test fails on the missing packet.
    packets.on('error', () => socket.destroy())
    socket.on('data', (chunk: Buffer) => packets.parse(chunk))
    socket.on('error', () => undefined)
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true
        this.#inbox.wake()
        resolve()
      }),
    )
  }

  /** Opens a TCP connection to the broker on 127.0.0.1:`port`. */
  static async open(port: number): Promise<RawMqtt> {
    const socket = connect({ host: '127.0.0.1', port })
    socket.setNoDelay(true)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return track(new RawMqtt(socket))
  }

  /** Opens a connection, sends CONNECT with `password` (an operator token) and waits for its CONNACK. */
  static async session(port: number, password: string, clientId: string): Promise<RawMqtt> {
    const raw = await RawMqtt.open(port)
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0, username: 'raw', password: Buffer.from(password) })
    const connack = await raw.next(5000)
    if (connack.cmd !== 'connack' || connack.returnCode !== 0) throw new Error(`${clientId}: expected CONNACK 0, got ${JSON.stringify(connack)}`)
    return raw
  }

  /** Sends one packet. */
  send(packet: Packet): void {
    this.socket.write(generate(packet))
  }

  /** Sends bytes as they are. */
  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes)
  }

  /** SUBSCRIBE to `filter` and the granted QoS from its SUBACK (128 = refused). */
  async subscribe(filter: string, qos: 0 | 1 = 1): Promise<number[]> {
    this.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] })
    const suback = await this.next(5000)
    if (suback.cmd !== 'suback') throw new Error(`expected SUBACK, got ${JSON.stringify(suback)}`)
    return suback.granted.map((g) => (typeof g === 'number' ? g : Number.NaN))
  }

  /** Packets received and not yet taken by `next`, oldest first. */
  get packets(): Packet[] {
    return this.#inbox.items
  }

  /** The next packet not yet taken, waiting up to `timeoutMs`; rejects when the socket closes first. */
  async next(timeoutMs: number): Promise<Packet> {
    return await this.#inbox.next(timeoutMs, 'packet from the broker', () => this.isClosed, 'the broker closed the connection')
  }

  /** Stops reading: the broker's writes pile up in the kernel's buffers, then in its own. */
  stopReading(): void {
    this.socket.pause()
  }

  /** Closes the socket at once. Idempotent. */
  destroy(): void {
    this.socket.destroy()
    untrack(this)
  }

  /** `destroy`, for the after-file safety net (`track`). */
  async stop(): Promise<void> {
    this.destroy()
  }
}
