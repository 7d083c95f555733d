import { CloseCode, type HubFrame } from '@fleetgate/device-sdk/wire'
import type { DeviceRecord } from '../store/index.js'
import { revokedReason, type SessionGrant } from './registry.js'

/**
 * A device's live session as the rest of the hub sees it: ingest, commands and the REST views work
 * on this, never on a socket. The transport adapts a uWS WebSocket to it; a unit test supplies its own.
 */
export interface Peer {
  readonly deviceId: string
  /** When the session opened, Unix ms. */
  readonly connectedAt: number
  /** The last frame or pong from the device, Unix ms. */
  readonly lastSeenAt: number
  /** What the session was admitted under: it ends once its device's record no longer admits it. */
  readonly grant: SessionGrant
  /** False once the session has closed: nothing may be sent then. */
  isOpen(): boolean
  /** Sends one frame; false when it was not written (closed, or dropped for backpressure). */
  send(frame: HubFrame): boolean
  /** Starts closing the session with a close code of docs/protocol.md. */
  close(code: number, reason: string): void
}

/** What happens when a device comes and goes (status topic, command delivery, lastSeenAt, cluster ownership). */
export interface SessionHooks {
  online?(peer: Peer): void
  offline?(peer: Peer, code: number): void
  /** A session left the table because a newer one on another node replaced it: the device is not offline. */
  replaced?(peer: Peer): void
  /** The device's record as it is now (the registry), to check a session that opens against it. */
  current?(deviceId: string): DeviceRecord | undefined
}

/**
 * The table of live sessions by device id: at most one per device; a newer one replaces the older,
 * here (`opened`) or on another node (`replace`); a session ends once its device's record no
 * longer admits it (`recordChanged`).
 */
export class Sessions {
  readonly #live = new Map<string, Peer>()
  readonly #hooks: SessionHooks
  /** Sessions closed because a newer one elsewhere replaced them. */
  readonly #replaced = new WeakSet<Peer>()

  constructor(hooks: SessionHooks = {}) {
    this.#hooks = hooks
  }

  /** Number of live sessions. */
  get size(): number {
    return this.#live.size
  }

  /** The live session of a device, or undefined. */
  get(deviceId: string): Peer | undefined {
    return this.#live.get(deviceId)
  }

  /**
   * Registers a new session; an older one of the same device is closed with 4001 (docs/protocol.md). A
   * session whose device changed while it was admitted (disabled, deleted, rotated with
   * `disconnect`) is closed at once with 4003.
   */
  opened(peer: Peer): void {
    const revoked = this.#hooks.current === undefined ? undefined : revokedReason(this.#hooks.current(peer.deviceId), peer.grant)
    if (revoked !== undefined) {
      // Never in the table: no status, no commands, no claim.
      peer.close(CloseCode.revoked, revoked)
      return
    }
    const older = this.#live.get(peer.deviceId)
    // The newer session takes the slot first, so the older one's close is not seen as going offline.
    this.#live.set(peer.deviceId, peer)
    older?.close(CloseCode.replaced, 'replaced by a newer session')
    this.#hooks.online?.(peer)
  }

  /** Closes `peer` with 4001: a newer session of its device opened on another node (docs/cluster.md). */
  replace(peer: Peer): void {
    this.#replaced.add(peer)
    peer.close(CloseCode.replaced, 'replaced by a newer session')
  }

  /** Forgets a closed session, unless a newer one already took its place. */
  closed(peer: Peer, code: number): void {
    if (this.#live.get(peer.deviceId) !== peer) return
    this.#live.delete(peer.deviceId)
    if (this.#replaced.has(peer)) this.#hooks.replaced?.(peer)
    else this.#hooks.offline?.(peer, code)
  }

  /**
   * A device's record changed (here or on another node; undefined: deleted): its live session ends
   * with 4003 if the record no longer admits it (docs/protocol.md). Whether one was ended.
   */
  recordChanged(deviceId: string, record: DeviceRecord | undefined): boolean {
    const peer = this.#live.get(deviceId)
    const reason = peer === undefined ? undefined : revokedReason(record, peer.grant)
    if (peer === undefined || reason === undefined) return false
    peer.close(CloseCode.revoked, reason)
    return true
  }

  /** Ends every session (shutdown: 1001). */
  disconnectAll(code: number, reason: string): void {
    for (const peer of [...this.#live.values()]) peer.close(code, reason)
  }
}
