/** Why a client's byte stream was refused before its packet reached the parser. */
export interface ScanFailure {
  /** `packet_too_large`: a declared remaining length over the limit; `malformed_packet`: a remaining length of more than 4 bytes (MQTT 3.1.1 §2.2.3). */
  readonly reason: 'packet_too_large' | 'malformed_packet'
  /** The declared remaining length, in bytes (0 when malformed). */
  readonly declaredBytes: number
}

/** MQTT 3.1.1 §2.2.3: the remaining length takes at most 4 bytes. */
const MAX_LENGTH_BYTES = 4
/** MQTT 3.1.1 §3.4: the first byte of a PUBACK (type 4, no flags); its remaining length is 2, the packet id. */
const PUBACK = 0x40
/** A PUBACK's bytes: fixed header (2) and packet id (2). */
const PUBACK_BYTES = 4

/**
 * Follows the fixed headers of one client's MQTT byte stream (MQTT 3.1.1 §2.2) and judges each
 * packet by its declared remaining length the moment that length is read, before its body
 * arrives: mqtt-packet's parser has no size limit and buffers a packet's body, however large the
 * header says it is, until it is complete. Bodies are skipped, never copied.
 *
 * The first packet (the CONNECT, MQTT-3.1.0-1) has its own, smaller limit: nothing is known of
 * a client until it authenticates.
 */
export class PacketScanner {
  readonly #maxFirstBytes: number
  readonly #maxBytes: number
  /** Body bytes of the current packet still to pass. */
  #skip = 0
  /** Whether the first byte of a fixed header was read and its remaining length is being read. */
  #inLength = false
  #length = 0
  #multiplier = 1
  #lengthBytes = 0
  #packets = 0
  /** Where the header being read started in the current chunk, when it is a PUBACK's; else -1. */
  #ackAt = -1

  /** `maxFirstBytes`: largest remaining length of the first packet; `maxBytes`: of every later one. */
  constructor(maxFirstBytes: number, maxBytes: number) {
    this.#maxFirstBytes = maxFirstBytes
    this.#maxBytes = maxBytes
  }

  /** Packets whose fixed header was read whole. */
  get packets(): number {
    return this.#packets
  }

  /**
   * Reads the next bytes of the stream; the first failure, or undefined when every header so far
   * is within its limit. With `acks`, appends the offset of each PUBACK that lies whole in `chunk`
   * (encoded as MQTT 3.1.1 §3.4 says: first byte 0x40, remaining length 2 in one byte).
   */
  feed(chunk: Uint8Array, acks?: number[]): ScanFailure | undefined {
    let i = 0
    this.#ackAt = -1
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const taken = Math.min(this.#skip, chunk.length - i)
        this.#skip -= taken
        i += taken
        continue
      }
      const byte = chunk[i++] as number
      if (!this.#inLength) {
        this.#ackAt = byte === PUBACK ? i - 1 : -1
        this.#inLength = true
        this.#length = 0
        this.#multiplier = 1
        this.#lengthBytes = 0
        continue
      }
      this.#length += (byte & 0x7f) * this.#multiplier
      this.#multiplier *= 128
      this.#lengthBytes++
      if ((byte & 0x80) !== 0) {
        if (this.#lengthBytes === MAX_LENGTH_BYTES) return { reason: 'malformed_packet', declaredBytes: 0 }
        continue
      }
      const limit = this.#packets === 0 ? this.#maxFirstBytes : this.#maxBytes
      this.#packets++
      if (this.#length > limit) return { reason: 'packet_too_large', declaredBytes: this.#length }
      this.#inLength = false
      this.#skip = this.#length
      if (acks !== undefined && this.#ackAt >= 0 && this.#ackAt === i - 2 && this.#length === 2 && i + 2 <= chunk.length) acks.push(this.#ackAt)
    }
    return undefined
  }
}

/** `chunk` without the PUBACKs at `acks` (offsets from `PacketScanner.feed`, ascending); null when nothing is left. */
export function withoutAcks(chunk: Uint8Array, acks: readonly number[]): Buffer | null {
  const left = chunk.length - acks.length * PUBACK_BYTES
  if (left === 0) return null
  const out = Buffer.allocUnsafe(left)
  let at = 0
  let from = 0
  for (const ack of acks) {
    out.set(chunk.subarray(from, ack), at)
    at += ack - from
    from = ack + PUBACK_BYTES
  }
  out.set(chunk.subarray(from), at)
  return out
}
