import type { Sessions } from './sessions.js'

/** Where a device's live session is, as the REST views show it (docs/rest.md, docs/cluster.md). */
export interface SessionPlace {
  /** The node that holds it, in cluster mode; undefined on one node. */
  readonly node: string | undefined
  /** When it opened, Unix ms. */
  readonly connectedAt: number
  /**
   * The device's last frame or pong, Unix ms; for a session on another node, that node's last
   * heartbeat, when it last vouched for the session (at most a heartbeat old).
   */
  readonly lastSeenAt: number
}

/** Finds live sessions: on this node, or in cluster mode on any node. */
export interface Presence {
  /** Whether sessions may be on other nodes (cluster mode): the views then name the node. */
  readonly clustered: boolean
  /** The live sessions of those of `devices` that have one, by device id. */
  find(devices: readonly string[]): Promise<Map<string, SessionPlace>>
}

/** One node's presence: its own session table. */
export function localPresence(sessions: Pick<Sessions, 'get'>): Presence {
  return {
    clustered: false,
    find(devices) {
      const found = new Map<string, SessionPlace>()
      for (const id of devices) {
        const peer = sessions.get(id)
        if (peer !== undefined) found.set(id, { node: undefined, connectedAt: peer.connectedAt, lastSeenAt: peer.lastSeenAt })
      }
      return Promise.resolve(found)
    },
  }
}
