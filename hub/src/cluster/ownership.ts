import type { Peer } from '../devices/index.js'
import type { Logger } from '../logger.js'
import type { ClusterStore } from '../store/index.js'

/** A session this node holds, as the cluster knows it. */
interface Held {
  readonly peer: Peer
  /** Its epoch once its claim committed. */
  epoch: number | undefined
  /** A claim is under way. */
  claiming: boolean
  /** The highest epoch of a takeover that came while the claim was under way. */
  takenAt: number
  /** It left the table before its claim committed: release once it has. */
  ended: boolean
}

/** What ownership needs besides the store. */
export interface OwnershipOptions {
  readonly store: ClusterStore
  readonly nodeId: string
  /** Closes a session that a newer one elsewhere replaced, with 4001 (docs/protocol.md, docs/cluster.md). */
  readonly replace: (peer: Peer) => void
  /** Tells `node` that `device` has a newer session at `epoch`; false when it could not be sent. */
  readonly tell: (node: string, device: string, epoch: number) => boolean
  /** Whether `node` is alive, as of the last heartbeat. */
  readonly alive: (node: string) => boolean
  readonly log: Pick<Logger, 'warn' | 'debug'>
}

/**
 * Who holds each device's session across the cluster (docs/cluster.md: one session per device in the
 * whole cluster). Each session that opens here claims its device in PostgreSQL, which gives it an
 * epoch above every earlier one and names the node that held it before; that node is told over
 * the bus and closes its older session with 4001. A session that ends releases its claim if no
 * newer one took it. What the bus loses, `check` (each heartbeat) makes good from the table: an
 * older session that missed its takeover is closed, a claim that failed is made again, and a claim
 * a survivor cleared (taking this node for dead) is put back.
 */
export class Ownership {
  readonly #options: OwnershipOptions
  readonly #held = new Map<string, Held>()

  constructor(options: OwnershipOptions) {
    this.#options = options
  }

  /** The devices whose sessions this node holds. */
  devices(): string[] {
    return [...this.#held.keys()]
  }

  /** A session opened here: claims its device. */
  opened(peer: Peer): void {
    const held: Held = { peer, epoch: undefined, claiming: false, takenAt: 0, ended: false }
    this.#held.set(peer.deviceId, held)
    this.#claim(held)
  }

  /** A session left this node's table (ended, or replaced by a newer one elsewhere). */
  closed(peer: Peer): void {
    const held = this.#held.get(peer.deviceId)
    if (held?.peer !== peer) return
    this.#held.delete(peer.deviceId)
    held.ended = true
    if (held.epoch !== undefined) this.#release(peer.deviceId, held.epoch)
  }

  /** Another node opened a newer session of `device` with `epoch`. */
  takeover(device: string, epoch: number): void {
    const held = this.#held.get(device)
    if (held === undefined) return
    if (held.epoch === undefined) held.takenAt = Math.max(held.takenAt, epoch)
    else if (held.epoch < epoch) this.#replace(held)
  }

  /**
   * Compares every session held here with the table and mends what messages missed: a session a
   * newer one replaced is closed with 4001, a claim that failed is made again, a claim cleared by
   * a survivor is put back. Resolves once done; a store failure rejects (the next check tries again).
   */
  async check(): Promise<void> {
    const { store } = this.#options
    const claimed = [...this.#held.values()].filter((held) => held.epoch !== undefined)
    for (const held of this.#held.values()) if (held.epoch === undefined && !held.claiming) this.#claim(held)
    if (claimed.length === 0) return
    const owners = await store.owners(claimed.map((held) => held.peer.deviceId))
    const mine: Array<readonly [string, number]> = []
    for (const held of claimed) {
      const owner = owners.get(held.peer.deviceId)
      if (this.#held.get(held.peer.deviceId) !== held || held.epoch === undefined) continue
      if (owner !== undefined && owner.epoch > held.epoch) this.#replace(held)
      else if (owner?.node !== this.#options.nodeId) mine.push([held.peer.deviceId, held.epoch])
    }
    if (mine.length > 0) {
      const back = await store.reassert(mine)
      if (back.length > 0) this.#options.log.warn({ devices: back.length }, 'cluster: session owners cleared by another node were put back (this node was taken for dead)')
    }
  }

  #claim(held: Held): void {
    const { store, nodeId, log } = this.#options
    held.claiming = true
    store.claim(held.peer.deviceId, held.peer.connectedAt).then(
      (claim) => {
        held.claiming = false
        held.epoch = claim.epoch
        if (held.ended) {
          this.#release(held.peer.deviceId, claim.epoch)
          return
        }
        if (held.takenAt > claim.epoch) {
          this.#replace(held)
          return
        }
        const previous = claim.previous
        if (previous !== undefined && previous !== nodeId && this.#options.alive(previous)) {
          // A lost message is made good by the previous node's own check.
          this.#options.tell(previous, held.peer.deviceId, claim.epoch)
        }
      },
      (err: unknown) => {
        held.claiming = false
        log.debug({ err, deviceId: held.peer.deviceId }, 'cluster: session claim failed; the next check claims again')
      },
    )
  }

  #release(device: string, epoch: number): void {
    this.#options.store.release(device, epoch).catch((err: unknown) => {
      // The owner stays set until the next session's claim or until a survivor takes this node for dead.
      this.#options.log.debug({ err, deviceId: device }, 'cluster: session release failed')
    })
  }

  #replace(held: Held): void {
    if (this.#held.get(held.peer.deviceId) !== held) return
    this.#held.delete(held.peer.deviceId)
    held.ended = true
    this.#options.replace(held.peer)
  }
}
