// Invalid frames sent on purpose (--bad-frames), which the hub must refuse with `nak invalid`.
//
// The SDK validates every reading with the hub's own codec and never sends an invalid one
// (SDK_ERR_INVALID_READING), so no call of the public client makes the hub nak `invalid`. A second
// raw connection with the device's credentials would replace the device's own session (4001,
// which also stops the SDK from reconnecting), and a separate "bad" device would not be this
// device. So the bad frame goes out on the device's own live session: the fleet's WebSocket class
// hands it the socket, and the frame is built with the SDK's public encodeFrame (which encodes
// without validating), like firmware with a bug in its encoder.
//
// Its seq is 0. The SDK numbers frames from 1, so the hub's `nak` for seq 0 can never reject a real
// frame of the device, and it reaches the client as an `error` SDK_ERR_NAK "not in flight", which
// the device matches to its oldest bad frame awaiting a nak. The hub checks validity before order
// (refuseInvalid naks whatever the seq) and draws no rate token for an invalid frame, so bad frames
// disturb neither the device's sequence nor its rate. Each bad frame carries one reading, counted
// as sent and, once naked, as "naked, expected". A bad frame still awaiting its nak when the
// session ends is sent again on the next session, as the SDK does with unacked frames.
import { type Metrics, type SdkError } from '@fleetgate/device-sdk'
import { encodeFrame } from '@fleetgate/device-sdk/wire'

/** The ways a bad frame breaks docs/protocol.md, used in turn. */
export const BAD_FRAME_KINDS = Object.freeze(['empty_metrics', 'bad_key', 'reserved_tag', 'long_text', 'not_finite'] as const)
export type BadFrameKind = (typeof BAD_FRAME_KINDS)[number]

/** The seq of every bad frame: below the SDK's first seq (1). */
export const BAD_FRAME_SEQ = 0

/** An invalid `tm` frame of `kind` at device time `ts`, built around a valid reading `metrics`. */
export function badFrame(kind: BadFrameKind, ts: number, metrics: Metrics): Uint8Array {
  switch (kind) {
    case 'empty_metrics':
      // m: 1 to 64 entries
      return encodeFrame({ t: 'tm', s: BAD_FRAME_SEQ, ts, m: {} })
    case 'bad_key':
      // a metric key must start with a letter or _
      return encodeFrame({ t: 'tm', s: BAD_FRAME_SEQ, ts, m: { ...metrics, '9lives': 1 } })
    case 'reserved_tag':
      // the hub sets tag `device` itself
      return encodeFrame({ t: 'tm', s: BAD_FRAME_SEQ, ts, m: metrics, g: { device: 'spoofed' } })
    case 'long_text':
      // text metrics hold at most 256 bytes
      return encodeFrame({ t: 'tm', s: BAD_FRAME_SEQ, ts, m: { ...metrics, note: 'x'.repeat(300) } })
    case 'not_finite':
      // numbers must be finite
      return encodeFrame({ t: 'tm', s: BAD_FRAME_SEQ, ts, m: { ...metrics, spike: Number.NaN } })
  }
}

/** Whether an SDK `error` is the hub's nak of a bad frame: SDK_ERR_NAK for seq 0, reason `invalid`. */
export function isBadFrameNak(error: SdkError): boolean {
  if (error.code !== 'SDK_ERR_NAK' || error.reason !== 'invalid') return false
  const cause: unknown = error.cause
  return typeof cause === 'object' && cause !== null && (cause as { t?: unknown }).t === 'nak' && (cause as { s?: unknown }).s === BAD_FRAME_SEQ
}

/** What a BadFrameQueue sends through: the device's current socket (undefined or not open: wait). */
export interface BadFrameSocket {
  readonly readyState: number
  send(bytes: Uint8Array): void
}

interface Pending {
  readonly bytes: Uint8Array
  sent: boolean
}

const OPEN = 1

/**
 * One device's bad frames until each is naked: those on the wire of the current session (naks
 * come back in send order) and those waiting for a session (never sent, or sent on a session that
 * ended before their nak, like the SDK's unacked frames).
 */
export class BadFrameQueue {
  #onWire: Pending[] = []
  #waiting: Pending[] = []
  #resent = 0

  /** Bad frames not yet naked. */
  get pending(): number {
    return this.#onWire.length + this.#waiting.length
  }

  /** Bad frames sent again after their session ended. */
  get resent(): number {
    return this.#resent
  }

  /** Sends `bytes` now on `socket` if it is open, else on the next session. */
  add(bytes: Uint8Array, socket: BadFrameSocket | undefined): void {
    this.#transmit({ bytes, sent: false }, socket)
  }

  /** A nak for seq 0 arrived: the oldest bad frame on the wire is settled. False when none was on the wire. */
  naked(): boolean {
    return this.#onWire.shift() !== undefined
  }

  /** The session ended: no nak can come for what is on the wire; it goes again on the next session. */
  lost(): void {
    this.#waiting = [...this.#onWire, ...this.#waiting]
    this.#onWire = []
  }

  /** A session opened on `socket`: sends what waits. */
  opened(socket: BadFrameSocket | undefined): void {
    const waiting = this.#waiting
    this.#waiting = []
    for (const frame of waiting) this.#transmit(frame, socket)
  }

  #transmit(frame: Pending, socket: BadFrameSocket | undefined): void {
    if (socket === undefined || socket.readyState !== OPEN) {
      this.#waiting.push(frame)
      return
    }
    if (frame.sent) this.#resent++
    frame.sent = true
    socket.send(frame.bytes)
    this.#onWire.push(frame)
  }
}
