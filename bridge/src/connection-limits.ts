import type { Duplex } from 'node:stream'
import { MAX_COMMAND_PAYLOAD_BYTES } from './codec.js'
import { intOption } from './options.js'
import { PacketScanner, withoutAcks } from './packet-scanner.js'

/**
 * Why the broker cut a connection of its own accord; each is counted and reported once per connection.
 * - `packet_too_large`: a packet declared a remaining length over its limit (`maxConnectPacketBytes`
 *   for the first packet, `maxPacketBytes` after);
 * - `malformed_packet`: a fixed header whose remaining length runs past 4 bytes (MQTT 3.1.1 §2.2.3);
 * - `too_many_unauthenticated`: `maxUnauthenticated` connections were already waiting for their
 *   CONNECT to be accepted;
 * - `connect_timeout`: no CONNECT accepted within `connectTimeoutMs` of the connection;
 * - `backlog_full`: more than `maxBacklogBytes` were queued for the client when the next write came;
 * - `backlog_slow`: more than `softBacklogBytes` stayed queued for the client for `softBacklogMs`.
 */
export type CutReason =
  | 'packet_too_large'
  | 'malformed_packet'
  | 'too_many_unauthenticated'
  | 'connect_timeout'
  | 'backlog_full'
  | 'backlog_slow'

/** Every `CutReason`, in a stable order (for counters). */
export const CUT_REASONS: readonly CutReason[] = [
  'packet_too_large',
  'malformed_packet',
  'too_many_unauthenticated',
  'connect_timeout',
  'backlog_full',
  'backlog_slow',
]

/** Largest packet after the CONNECT, by default: the largest command payload plus 4 KiB of topic and headers (135,168 bytes). */
export const DEFAULT_MAX_PACKET_BYTES = MAX_COMMAND_PAYLOAD_BYTES + 4096

/** MQTT 3.1.1 §2.2.3: the largest remaining length 4 bytes can declare. */
const MAX_REMAINING_LENGTH = 268_435_455

/** The bounds every connection of the embedded broker lives under; each has a default. */
export interface ConnectionLimitsConfig {
  /** Largest remaining length of a connection's first packet (its CONNECT), in bytes; default 4096. */
  readonly maxConnectPacketBytes?: number
  /** Largest remaining length of any later packet, in bytes; default `DEFAULT_MAX_PACKET_BYTES` (135,168). */
  readonly maxPacketBytes?: number
  /** Connections at once whose CONNECT is not accepted yet; more are closed at once; default 128. */
  readonly maxUnauthenticated?: number
  /** Time a new connection has to get its CONNECT accepted, in milliseconds; default 10000. Bytes trickled in do not extend it. */
  readonly connectTimeoutMs?: number
  /** Bytes queued for one client beyond which it is disconnected at its next message; default 67108864 (64 MiB). */
  readonly maxBacklogBytes?: number
  /** Bytes queued for one client that it may exceed only for `softBacklogMs`; default 1048576 (1 MiB), at most `maxBacklogBytes`. */
  readonly softBacklogBytes?: number
  /** Time a client may stay over `softBacklogBytes` before it is disconnected, in milliseconds; default 10000. */
  readonly softBacklogMs?: number
}

/** The keys of `ConnectionLimitsConfig`, for the broker's check of its options. */
export const CONNECTION_LIMIT_KEYS: readonly string[] = [
  'maxConnectPacketBytes', 'maxPacketBytes', 'maxUnauthenticated', 'connectTimeoutMs', 'maxBacklogBytes', 'softBacklogBytes', 'softBacklogMs',
]

/** Every bound with its default applied. */
type Resolved = { readonly [K in keyof ConnectionLimitsConfig]-?: number }

/** Applies the defaults and checks each bound; throws `BRIDGE_ERR_INVALID_OPTION` naming the first one out of range. */
function resolve(config: ConnectionLimitsConfig): Resolved {
  const maxBacklogBytes = intOption(config.maxBacklogBytes, 'maxBacklogBytes', 64 * 1024 * 1024, 16_384, 1024 * 1024 * 1024)
  return Object.freeze({
    maxConnectPacketBytes: intOption(config.maxConnectPacketBytes, 'maxConnectPacketBytes', 4096, 64, 1024 * 1024),
    maxPacketBytes: intOption(config.maxPacketBytes, 'maxPacketBytes', DEFAULT_MAX_PACKET_BYTES, 1024, MAX_REMAINING_LENGTH),
    maxUnauthenticated: intOption(config.maxUnauthenticated, 'maxUnauthenticated', 128, 1, 1_000_000),
    connectTimeoutMs: intOption(config.connectTimeoutMs, 'connectTimeoutMs', 10_000, 100, 600_000),
    maxBacklogBytes,
    softBacklogBytes: intOption(config.softBacklogBytes, 'softBacklogBytes', Math.min(1024 * 1024, maxBacklogBytes), 16_384, maxBacklogBytes),
    softBacklogMs: intOption(config.softBacklogMs, 'softBacklogMs', 10_000, 100, 3_600_000),
  })
}

/** One connection admitted under the limits. */
export interface AdmittedConnection {
  /**
   * Its CONNECT was accepted: it stops counting as unauthenticated and its connect timer stops.
   * From now on its PUBACKs are taken out of what aedes reads (see ConnectionLimits), and `onAcks`
   * is called for each read that had any, to do what aedes does for every packet it reads.
   */
  authenticated(onAcks: () => void): void
  /**
   * For a writer that gathers bytes before one write (the hub's outboxes): whether the connection
   * is cut, or is cut now because more than `maxBacklogBytes` are queued counting `unwrittenBytes`
   * gathered for it. Asked before each message, this keeps the rule of the stream's own writes.
   */
  backlogFull(unwrittenBytes: number): boolean
}

/**
 * The bounds every connection of the embedded broker lives under, applied on its stream in front
 * of aedes, which has none of them:
 *
 * - Reads: each packet is judged on its declared length (PacketScanner) as aedes reads the bytes,
 *   so an oversized packet is cut before mqtt-packet buffers its body.
 * - Before the CONNECT is accepted: a bound on such connections, and a deadline that bytes
 *   trickled in do not extend.
 * - PUBACKs: once the CONNECT is accepted, each PUBACK found whole in what aedes reads is taken
 *   out before aedes parses it. Sessions are always clean, so aedes has nothing to acknowledge: it
 *   parses the packet, looks its id up in its persistence, finds nothing and emits `ack`, which
 *   cost about as much as delivering the message it answers (bench:mqtt). The one thing aedes
 *   does for every packet it reads, restarting the keepalive timer, is left to `onAcks`. A PUBACK
 *   split across two reads, or encoded otherwise, still goes to aedes.
 * - Writes: aedes (1.2) delivers a QoS 1 message to a client in `deliverQoS` (lib/client.js),
 *   which hands its mqemitter callback to the packet as `writeCallback`; `write` (lib/write.js)
 *   calls it at once unless mqtt-packet's `writeToStream` returned false, and then only on the
 *   socket's `drain` or after aedes's drain timeout (`waitForDrain`). mqemitter (fastparallel)
 *   completes an emit only once every matching client's callback has run, and `Aedes.publish`
 *   calls back only after that emit. So one socket that stopped reading held every publish of
 *   every topic it matched, the broker's pending count, and the hub's acks with them, for as long
 *   as the drain timeout. Here a write always answers "go on", so no delivery waits on one
 *   socket; instead, what is queued for the client is bounded. The hub publishes in bursts (a commit
 *   releases many frames at once) that a client reading at full speed takes in a moment, so the
 *   bound has two parts: a client may go over `softBacklogBytes` for at most `softBacklogMs`
 *   (a slow reader), and never over `maxBacklogBytes` (checked before each write, so at most one
 *   message more is ever held). The hub's own publishes skip aedes (HubPublisher) and gather a
 *   client's packets of one turn for one write; they ask `backlogFull` before each message, the
 *   gathered bytes counted, so the same holds for them. Sessions are always clean here, and for a
 *   clean session aedes keeps no copy of a QoS 1 message awaiting its PUBACK (`outgoingUpdate` is
 *   skipped), so the socket's queue (and, within a turn, the hub's outbox) is all that is held for
 *   a client. Cutting destroys the socket, so aedes drops its subscriptions and completes whatever
 *   it still had under way for it.
 */
export class ConnectionLimits {
  readonly #options: Resolved
  readonly #open = new Set<Duplex>()
  #unauthenticated = 0

  /** Reads only the keys of `ConnectionLimitsConfig`; throws `BRIDGE_ERR_INVALID_OPTION` naming a bound out of range. */
  constructor(config: ConnectionLimitsConfig) {
    this.#options = resolve(config)
  }

  /** The connect deadline in force, in milliseconds. */
  get connectTimeoutMs(): number {
    return this.#options.connectTimeoutMs
  }

  /** Connections whose CONNECT is not accepted yet, now. */
  get unauthenticated(): number {
    return this.#unauthenticated
  }

  /** Bytes queued now for every admitted connection together, and for the one with the most (a pass over them: for figures, not a hot path). */
  backlog(): { readonly totalBytes: number; readonly largestBytes: number } {
    let totalBytes = 0
    let largestBytes = 0
    for (const stream of this.#open) {
      totalBytes += stream.writableLength
      largestBytes = Math.max(largestBytes, stream.writableLength)
    }
    return { totalBytes, largestBytes }
  }

  /**
   * Puts `stream` under the limits; `onCut` is called once, just before the stream is destroyed,
   * should a limit cut it. Answers undefined, having cut it already, when too many connections are
   * unauthenticated.
   */
  admit(stream: Duplex, onCut: (reason: CutReason, bytes: number) => void): AdmittedConnection | undefined {
    const options = this.#options
    if (this.#unauthenticated >= options.maxUnauthenticated) {
      onCut('too_many_unauthenticated', 0)
      stream.destroy()
      return undefined
    }
    this.#unauthenticated++
    this.#open.add(stream)
    let waiting = true
    let onAcks: (() => void) | undefined
    let cut = false
    let slowTimer: NodeJS.Timeout | undefined
    const cutOff = (reason: CutReason, bytes: number): void => {
      if (cut) return
      cut = true
      onCut(reason, bytes)
      stream.destroy()
    }
    const connectTimer = setTimeout(() => cutOff('connect_timeout', 0), options.connectTimeoutMs).unref()
    const settled = (): void => {
      if (!waiting) return
      waiting = false
      this.#unauthenticated--
      clearTimeout(connectTimer)
    }
    const authenticated = (acks: () => void): void => {
      onAcks = acks
      settled()
    }
    const caughtUp = (): void => {
      clearTimeout(slowTimer)
      slowTimer = undefined
    }
    const slowCheck = (): void => {
      slowTimer = undefined
      if (stream.writableLength > options.softBacklogBytes) cutOff('backlog_slow', stream.writableLength)
    }
    stream.once('close', () => {
      settled()
      caughtUp()
      this.#open.delete(stream)
    })

    const scanner = new PacketScanner(options.maxConnectPacketBytes, options.maxPacketBytes)
    const read = stream.read.bind(stream)
    // aedes reads only through `read()` on 'readable' (lib/client.js, nextBatch).
    stream.read = (size?: number): unknown => {
      const chunk: unknown = read(size)
      if (cut) return null
      if (chunk === null) return chunk
      if (!(chunk instanceof Uint8Array)) {
        cutOff('malformed_packet', 0)
        return null
      }
      const acks: number[] | undefined = onAcks === undefined ? undefined : []
      const failure = scanner.feed(chunk, acks)
      if (failure !== undefined) {
        cutOff(failure.reason, failure.declaredBytes)
        return null
      }
      if (acks === undefined || acks.length === 0) return chunk
      onAcks?.()
      return withoutAcks(chunk, acks)
    }

    const backlogFull = (unwrittenBytes: number): boolean => {
      if (cut) return true
      const queued = stream.writableLength + unwrittenBytes
      if (queued <= options.maxBacklogBytes) return false
      cutOff('backlog_full', queued)
      return true
    }
    const write = stream.write.bind(stream) as Duplex['write']
    stream.write = ((...args: Parameters<Duplex['write']>) => {
      if (backlogFull(0)) return true
      write(...args)
      // Over the soft bound from this write on, unless a later write finds it back under; the
      // check when the time is up does not depend on any more writes coming.
      if (stream.writableLength <= options.softBacklogBytes) caughtUp()
      else slowTimer ??= setTimeout(slowCheck, options.softBacklogMs).unref()
      return true
    }) as Duplex['write']

    return { authenticated, backlogFull }
  }

  /** Destroys every admitted connection (aedes closes only those it registered, after CONNECT). */
  destroyAll(): void {
    for (const stream of this.#open) stream.destroy()
  }
}
