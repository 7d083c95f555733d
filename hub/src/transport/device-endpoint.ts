import type { Clock } from '@fleetgate/device-sdk'
import { CloseCode, decodeDeviceFrame, DEVICE_ENDPOINT_PATH, MAX_BATCH_READINGS, type ErrorFrameCode } from '@fleetgate/device-sdk/wire'
import type { HttpRequest, us_socket_context_t } from 'uWebSockets.js'
import type { DeviceAuthenticator, DeviceAuthResult, FailureLimiter } from '../auth/index.js'
import type { Commands } from '../commands/index.js'
import { grantOf, type Sessions } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { HubMetrics } from '../observability/index.js'
import type { Ingest } from '../telemetry/index.js'
import type { Twins } from '../twins/index.js'
import { tune } from '../tuning.js'
import { DeviceSession, type SocketData } from './device-session.js'
import { bearerToken } from './http.js'
import type { Exchange, GuardedApp } from './uws-guard.js'

/** The device endpoint's tuning knobs; defaults in DEVICE_ENDPOINT_DEFAULTS. */
export interface DeviceEndpointTuning {
  /**
   * Bytes the hub holds for one session that its device has not read yet (uWS `maxBackpressure`);
   * default 1 MiB (1,048,576). Past it uWS writes nothing more: acks, naks and twin answers wait in
   * order, commands stay `queued`, the desired twin is owed, and all go out in `drain`, as the device reads. Each session may hold
   * this much, so it bounds the memory a device that does not read can cost.
   */
  readonly maxBackpressureBytes: number
}

/** The defaults of DeviceEndpointTuning. */
export const DEVICE_ENDPOINT_DEFAULTS: DeviceEndpointTuning = Object.freeze({ maxBackpressureBytes: 1024 * 1024 })

/** What the device endpoint needs: of each concern, only what a frame or a handshake calls. */
export interface DeviceEndpointOptions {
  readonly authenticator: Pick<DeviceAuthenticator, 'verify'>
  readonly failures: FailureLimiter
  readonly sessions: Sessions
  readonly ingest: Pick<Ingest, 'windowFrames' | 'newState' | 'accept' | 'refuseInvalid' | 'admitResult' | 'admitTwinReport' | 'closed' | 'drained'>
  readonly commands: Pick<Commands, 'result' | 'invalidResult' | 'drained'>
  readonly twins: Pick<Twins, 'report' | 'refuse' | 'drained'>
  readonly metrics: HubMetrics
  readonly log: Logger
  /** The hub's version, sent in `hello`. */
  readonly version: string
  readonly maxFrameBytes: number
  readonly deviceRatePerSec: number
  readonly idleTimeoutSec: number
  readonly clock: Clock
  /** Tuning knobs; defaults in DEVICE_ENDPOINT_DEFAULTS. */
  readonly tuning?: Partial<DeviceEndpointTuning>
}

/** docs/protocol.md: the same answer for every failure; only the log says which check failed. */
const UNAUTHORIZED = { contentType: 'application/json', text: '{"error":"unauthorized"}' }
const THROTTLED = {
  contentType: 'application/json',
  text: '{"error":"too_many_requests","message":"too many failed authentications from this address; retry later"}',
}

/** What an upgrade needs from its request, copied before the request dies. */
interface Handshake {
  readonly key: string
  readonly protocol: string
  readonly extensions: string
  readonly context: us_socket_context_t
}

/** Mounts `/v1/connect` (docs/protocol.md) on a guarded uWS app: a throw in any callback ends one session (1011), never the hub. */
export function mountDeviceEndpoint(app: GuardedApp, options: DeviceEndpointOptions): void {
  const { authenticator, failures, sessions, ingest, commands, twins, metrics, log } = options
  const now = (): number => options.clock.now()
  const { maxBackpressureBytes } = tune('DeviceEndpoint', DEVICE_ENDPOINT_DEFAULTS, options.tuning)
  const limits = {
    frame: options.maxFrameBytes,
    batch: MAX_BATCH_READINGS,
    rate: options.deviceRatePerSec,
    window: ingest.windowFrames,
  }
  // Bound once: prom-client hashes a labels object on every `inc` of the parent.
  const accepted = metrics.connects.labels('accepted')

  /**
   * Answers an upgrade request once its token is judged: 401, or the WebSocket. A refusal counts
   * also when the client has gone meanwhile, so aborting does not dodge the 429.
   */
  const answer = (exchange: Exchange, handshake: Handshake, result: DeviceAuthResult): void => {
    const { address } = exchange
    if (!result.ok) {
      failures.fail(address)
      metrics.connects.inc({ outcome: 'unauthorized' })
      metrics.authFailures.inc({ reason: result.reason })
      log.info({ reason: result.reason, deviceId: result.deviceId, address }, 'device refused')
      exchange.reply('401 Unauthorized', UNAUTHORIZED)
      return
    }
    exchange.upgrade<SocketData>(
      { session: new DeviceSession(result.device.id, now(), grantOf(result.device), ingest.newState()) },
      handshake.key,
      handshake.protocol,
      handshake.extensions,
      handshake.context,
    )
  }

  // docs/protocol.md: `err` goes out just before the hub closes a session for a protocol error.
  const protocolClose = (session: DeviceSession, code: number, e: ErrorFrameCode, msg: string): void => {
    session.send({ t: 'err', e, msg })
    session.close(code, msg)
  }

  // uWS copies the user data's own properties onto its socket object (prototype methods are lost),
  // so the user data is a holder of the session rather than the session itself.
  app.ws<SocketData>(DEVICE_ENDPOINT_PATH, {
    // uWS drops a connection whose message exceeds maxPayloadLength without a close frame (1006).
    // Leaving it room above the contract's limit lets the hub answer most oversized frames with
    // the 1009 of docs/protocol.md itself; only frames over twice the limit get uWS's bare drop.
    maxPayloadLength: options.maxFrameBytes * 2,
    // uWS checks idleness on a 4 s tick, so a socket closes up to 4 s before its idleTimeout. One
    // tick more means a device is never dropped before FLEETGATE_IDLE_SEC of silence, at most 4 s after.
    idleTimeout: options.idleTimeoutSec + 4,
    sendPingsAutomatically: true,
    maxBackpressure: maxBackpressureBytes,

    upgrade(exchange: Exchange, req: HttpRequest, context: us_socket_context_t) {
      if (failures.blocked(exchange.address)) {
        metrics.connects.inc({ outcome: 'throttled' })
        exchange.reply('429 Too Many Requests', THROTTLED)
        return
      }
      const token = bearerToken(req.getHeader('authorization')) ?? req.getQuery('token') ?? ''
      // Copied now: `req` dies with this callback, and an Ed25519 verdict comes after it.
      const handshake: Handshake = {
        key: req.getHeader('sec-websocket-key'),
        protocol: req.getHeader('sec-websocket-protocol'),
        extensions: req.getHeader('sec-websocket-extensions'),
        context,
      }
      // A verdict that fails (node:crypto, the store) is no verdict on the token: the guard answers
      // 500, so that a device retries instead of taking a 401 for bad credentials.
      exchange.finish(authenticator.verify(token), (result) => answer(exchange, handshake, result))
    },

    open(socket) {
      const session = socket.getUserData().session
      session.socket = socket
      accepted.inc()
      // docs/protocol.md: hello is the first frame; going online then sends the desired twin (docs/twins.md) and delivers queued commands.
      session.send({ t: 'hello', dev: session.deviceId, now: now(), v: options.version, lim: limits })
      sessions.opened(session)
    },

    message(socket, message, isBinary) {
      const session = socket.getUserData().session
      session.lastSeenAt = now()
      if (!isBinary) {
        metrics.frames.inc('text')
        protocolClose(session, CloseCode.textFrame, 'text', 'frames are binary CBOR, not text')
        return
      }
      if (message.byteLength > options.maxFrameBytes) {
        metrics.frames.inc('too_big')
        protocolClose(session, CloseCode.tooBig, 'too_big', `a frame is at most ${options.maxFrameBytes} bytes`)
        return
      }
      const bytes = new Uint8Array(message)
      const decoded = decodeDeviceFrame(bytes)
      if (!decoded.ok) {
        metrics.frames.inc(decoded.code)
        if (decoded.code === 'invalid' && decoded.s !== undefined) {
          ingest.refuseInvalid(session, decoded.s)
          return
        }
        if (decoded.code === 'invalid' && decoded.id !== undefined && decoded.t === 'twr') {
          // docs/twins.md: a report that names its id is answered, and draws from the rate all the same.
          ingest.admitTwinReport(session)
          twins.refuse(session, decoded.id, 'invalid')
          return
        }
        if (decoded.code === 'invalid' && decoded.id !== undefined) {
          // A result that names its command but does not validate ends that command as failed.
          if (ingest.admitResult(session)) commands.invalidResult(session, decoded.id, decoded.reason)
          return
        }
        // Without a valid `s` a frame cannot be naked, so it is a protocol error like garbage.
        protocolClose(session, CloseCode.badFrame, decoded.code, decoded.reason.slice(0, 120))
        return
      }
      const frame = decoded.frame
      metrics.frames.inc(frame.t)
      switch (frame.t) {
        case 'tm':
        case 'tb':
          ingest.accept(session, frame, bytes)
          return
        case 'res':
          if (ingest.admitResult(session)) commands.result(session, frame)
          return
        case 'twr':
          if (ingest.admitTwinReport(session)) twins.report(session, frame.id, frame.p)
          else twins.refuse(session, frame.id, 'rate')
          return
      }
    },

    drain(socket) {
      // uWS refuses a send while more than maxBackpressure bytes wait; once under it, what the
      // socket refused goes out: the answers to telemetry first, then queued commands, then twins.
      if (socket.getBufferedAmount() > maxBackpressureBytes) return
      const session = socket.getUserData().session
      ingest.drained(session)
      commands.drained(session)
      twins.drained(session)
    },

    pong(socket) {
      socket.getUserData().session.lastSeenAt = now()
    },

    close(socket, code) {
      const session = socket.getUserData().session
      // uWS forbids touching the socket from here on.
      session.closed = true
      metrics.closed(code)
      ingest.closed(session)
      sessions.closed(session, code)
    },
  })
}
