import { CloseCode, type HubFrame } from '@fleetgate/device-sdk/wire'

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
  /** False once the session has closed: nothing may be sent then. */
  isOpen(): boolean
  /** Sends one frame; false when it was not written (closed, or dropped for backpressure). */
  send(frame: HubFrame): boolean
  /** Starts closing the session with a close code of CONTRACT §3. */
  close(code: number, reason: string): void
}

/** What happens when a device comes and goes (status topic, command delivery, lastSeenAt). */
export interface SessionHooks {
  online?(peer: Peer): void
  offline?(peer: Peer, code: number): void
}

/** The table of live sessions by device id: at most one per device; a newer one replaces the older. */
export class Sessions {
  readonly #live = new Map<string, Peer>()
  readonly #hooks: SessionHooks

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

  /** Registers a new session; an older one of the same device is closed with 4001 (CONTRACT §3). */
  opened(peer: Peer): void {
    const older = this.#live.get(peer.deviceId)
    // The newer session takes the slot first, so the older one's close is not seen as going offline.
    this.#live.set(peer.deviceId, peer)
    older?.close(CloseCode.replaced, 'replaced by a newer session')
    this.#hooks.online?.(peer)
  }

  /** Forgets a closed session, unless a newer one already took its place. */
  closed(peer: Peer, code: number): void {
    if (this.#live.get(peer.deviceId) !== peer) return
    this.#live.delete(peer.deviceId)
    this.#hooks.offline?.(peer, code)
  }

  /** Ends a device's session with `code`; false when it was not online. */
  disconnect(deviceId: string, code: number, reason: string): boolean {
    const peer = this.#live.get(deviceId)
    if (peer === undefined) return false
    peer.close(code, reason)
    return true
  }

  /** Ends every session (shutdown: 1001). */
  disconnectAll(code: number, reason: string): void {
    for (const peer of [...this.#live.values()]) peer.close(code, reason)
  }
}
