import { encodeFrame, type HubFrame } from '@fleetgate/device-sdk'
import type { WebSocket } from 'uWebSockets.js'
import type { IngestState, Peer } from '../telemetry/ingest.js'

/** CONTRACT §3 close codes the hub sends. */
export const CloseCode = {
  normal: 1000,
  shuttingDown: 1001,
  textFrame: 1003,
  badFrame: 1007,
  rateAbuse: 1008,
  tooBig: 1009,
  /** Not in CONTRACT §3's list: a commit failed; the device reconnects and resends what was not acked. */
  storageFailure: 1011,
  replaced: 4001,
  revoked: 4003,
} as const

/** uWS `send` result: the message was dropped because of the backpressure limit. */
const SEND_DROPPED = 2

/** The uWS socket's user data. */
export interface SocketData {
  readonly session: DeviceSession
}

/**
 * One device session. It exists from the accepted upgrade; `socket`
 * is set when the WebSocket opens and must not be touched once `closed` (uWS forbids it).
 */
export class DeviceSession implements Peer {
  readonly deviceId: string
  readonly connectedAt: number
  /** Last frame or pong from the device, Unix ms. */
  lastSeenAt: number
  closed = false
  socket: WebSocket<SocketData> | undefined
  readonly ingest: IngestState

  constructor(deviceId: string, connectedAt: number, ingest: IngestState) {
    this.deviceId = deviceId
    this.connectedAt = connectedAt
    this.lastSeenAt = connectedAt
    this.ingest = ingest
  }

  isOpen(): boolean {
    return !this.closed && this.socket !== undefined
  }

  /**
   * Sends one frame, corked (a send from a promise continuation is outside uWS's own cork).
   * False when the frame was not written: the session is closed, or uWS dropped it for backpressure.
   */
  send(frame: HubFrame): boolean {
    const socket = this.socket
    if (socket === undefined || this.closed) return false
    const bytes = encodeFrame(frame)
    let status = SEND_DROPPED
    socket.cork(() => {
      status = socket.send(bytes, true)
    })
    return status !== SEND_DROPPED
  }

  close(code: number, reason: string): void {
    if (this.isOpen()) this.socket?.end(code, reason)
  }
}

/** What happens when a device comes and goes (status topic, command delivery, lastSeenAt). */
export interface SessionHooks {
  online?(session: DeviceSession): void
  offline?(session: DeviceSession, code: number): void
}

/** The table of live sessions by device id: at most one per device; a newer one replaces the older. */
export class Sessions {
  readonly #live = new Map<string, DeviceSession>()
  readonly #hooks: SessionHooks

  constructor(hooks: SessionHooks = {}) {
    this.#hooks = hooks
  }

  /** Number of live sessions. */
  get size(): number {
    return this.#live.size
  }

  /** The live session of a device, or undefined. */
  get(deviceId: string): DeviceSession | undefined {
    return this.#live.get(deviceId)
  }

  /** Registers a new session; an older one of the same device is closed with 4001 (CONTRACT §3). */
  opened(session: DeviceSession): void {
    const older = this.#live.get(session.deviceId)
    // The newer session takes the slot first, so the older one's close is not seen as going offline.
    this.#live.set(session.deviceId, session)
    older?.close(CloseCode.replaced, 'replaced by a newer session')
    this.#hooks.online?.(session)
  }

  /** Forgets a closed session, unless a newer one already took its place. */
  closed(session: DeviceSession, code: number): void {
    session.closed = true
    if (this.#live.get(session.deviceId) !== session) return
    this.#live.delete(session.deviceId)
    this.#hooks.offline?.(session, code)
  }

  /** Ends a device's session with `code`; false when it was not online. */
  disconnect(deviceId: string, code: number, reason: string): boolean {
    const session = this.#live.get(deviceId)
    if (session === undefined) return false
    session.close(code, reason)
    return true
  }

  /** Ends every session (shutdown: 1001). */
  disconnectAll(code: number, reason: string): void {
    for (const session of [...this.#live.values()]) session.close(code, reason)
  }
}
