import type { Duplex } from 'node:stream'

/** MQTT 3.1.1 §3.3.1: a PUBLISH fixed header without DUP and RETAIN; the QoS goes in bits 1-2. */
const PUBLISH = 0x30

/** The bytes of the remaining length `n` (MQTT 3.1.1 §2.2.3). */
function varintBytes(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

/**
 * The topic of a PUBLISH as it goes on the wire: its length on two bytes, then its UTF-8 bytes
 * (MQTT 3.1.1 §1.5.3). Built once per topic and shared by every packet and client.
 */
export function topicBytes(topic: string): Buffer {
  const length = Buffer.byteLength(topic, 'utf8')
  const bytes = Buffer.allocUnsafe(2 + length)
  bytes.writeUInt16BE(length, 0)
  bytes.write(topic, 2, 'utf8')
  return bytes
}

/** What an outbox writes to and where it takes its packet ids. */
export interface OutboxTarget {
  /** The client's stream (under its connection limits). */
  readonly stream: Duplex
  /**
   * The next packet id for a QoS 1 PUBLISH to this client. It must be the counter aedes uses for
   * the same client, so that ids never clash with those of aedes's own deliveries to it.
   */
  nextPacketId(): number
  /**
   * Whether the client's backlog is over its bound once `unwrittenBytes` more are counted; when
   * it is, the connection was cut and nothing more is taken (see ConnectionLimits).
   */
  backlogFull(unwrittenBytes: number): boolean
}

/**
 * The PUBLISH packets for one client during one turn of the event loop, written as one buffer:
 * one allocation and one stream write per client and turn, however many messages. A packet
 * differs between clients only in its QoS and packet id, so each client's bytes are copied from
 * the topic and payload shared by all. Packet ids are taken when the buffer is built, in the
 * order of the bytes, from the client's own counter.
 */
export class Outbox {
  readonly #target: OutboxTarget
  #topics: Buffer[] = []
  #payloads: Buffer[] = []
  #qos: Array<0 | 1> = []
  #bytes = 0
  #refused = false

  /** An empty outbox for the client behind `target`. */
  constructor(target: OutboxTarget) {
    this.#target = target
  }

  /** Whether nothing waits to be written. */
  get empty(): boolean {
    return this.#topics.length === 0
  }

  /**
   * Queues one PUBLISH of `payload` on `topic` (from `topicBytes`) at `qos`, retain 0 (MQTT-3.3.1-9:
   * a message sent to an established subscription). Answers false, and keeps nothing, once the
   * client's backlog bound cut it.
   */
  add(topic: Buffer, payload: Buffer, qos: 0 | 1): boolean {
    if (this.#refused) return false
    if (this.#target.backlogFull(this.#bytes)) {
      this.#refused = true
      this.#clear()
      return false
    }
    const remaining = topic.length + (qos === 1 ? 2 : 0) + payload.length
    this.#bytes += 1 + varintBytes(remaining) + remaining
    this.#topics.push(topic)
    this.#payloads.push(payload)
    this.#qos.push(qos)
    return true
  }

  /** Writes what was queued as one buffer, packet ids assigned now. */
  flush(): void {
    const count = this.#topics.length
    if (count === 0) return
    if (this.#target.stream.destroyed) return this.#clear()
    const out = Buffer.allocUnsafe(this.#bytes)
    let at = 0
    for (let i = 0; i < count; i++) {
      const topic = this.#topics[i] as Buffer
      const payload = this.#payloads[i] as Buffer
      const qos = this.#qos[i] as 0 | 1
      let remaining = topic.length + (qos === 1 ? 2 : 0) + payload.length
      out[at++] = PUBLISH | (qos << 1)
      do {
        const digit = remaining & 0x7f
        remaining >>>= 7
        out[at++] = remaining > 0 ? digit | 0x80 : digit
      } while (remaining > 0)
      out.set(topic, at)
      at += topic.length
      if (qos === 1) {
        const id = this.#target.nextPacketId()
        out[at++] = id >> 8
        out[at++] = id & 0xff
      }
      out.set(payload, at)
      at += payload.length
    }
    this.#clear()
    this.#target.stream.write(out)
  }

  #clear(): void {
    this.#topics = []
    this.#payloads = []
    this.#qos = []
    this.#bytes = 0
  }
}
