import { encodeFrame, type HubFrame } from '@fleetgate/device-sdk/wire'
import type { WebSocket } from 'uWebSockets.js'
import type { SessionGrant } from '../devices/index.js'
import type { IngestPeer, IngestState } from '../telemetry/index.js'

/** uWS `send` result: the message was dropped because of the backpressure limit. */
const SEND_DROPPED = 2

// One corked send at a time (uWS calls the cork callback synchronously): its socket, bytes and
// result live here, so that a send allocates no closure.
let corkedSocket: WebSocket<SocketData> | undefined
let corkedBytes: Uint8Array | undefined
let corkedStatus = SEND_DROPPED
const sendCorked = (): void => {
  corkedStatus = (corkedSocket as WebSocket<SocketData>).send(corkedBytes as Uint8Array, true)
}

/** The uWS socket's user data. */
export interface SocketData {
  readonly session: DeviceSession
}

/**
 * One device session over a uWS WebSocket: the Peer that ingest, commands and the session table
 * work on. It exists from the accepted upgrade; `socket` is set when the WebSocket opens and must
 * not be touched once `closed` (uWS forbids it).
 */
export class DeviceSession implements IngestPeer {
  readonly deviceId: string
  readonly connectedAt: number
  readonly grant: SessionGrant
  lastSeenAt: number
  closed = false
  socket: WebSocket<SocketData> | undefined
  readonly ingest: IngestState

  constructor(deviceId: string, connectedAt: number, grant: SessionGrant, ingest: IngestState) {
    this.deviceId = deviceId
    this.connectedAt = connectedAt
    this.grant = grant
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
    corkedSocket = socket
    corkedBytes = encodeFrame(frame)
    corkedStatus = SEND_DROPPED
    try {
      socket.cork(sendCorked)
    } finally {
      corkedSocket = undefined
      corkedBytes = undefined
    }
    return corkedStatus !== SEND_DROPPED
  }

  close(code: number, reason: string): void {
    if (this.isOpen()) this.socket?.end(code, reason)
  }
}
