import type { NodeRecord } from '../store/index.js'
import { apiError, type Router } from '../transport/index.js'

/** What the nodes API needs. */
export interface NodesApiDeps {
  /** The nodes to list, in cluster mode: every node that beat within a day; undefined on one node. */
  readonly nodes: (() => Promise<NodeRecord[]>) | undefined
}

const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * `GET /api/v1/nodes` (reader, docs/cluster.md): `{items: [{id, startedAt, lastSeenAt, sessions,
 * version, alive}]}`. A node that stopped cleanly is gone from the list; one that stopped beating
 * (a crash) stays, `alive: false` with no sessions, for a day or until it starts again. A hub that
 * is not in a cluster answers 404 `not_found`: it has no nodes to list (the console then shows none).
 */
export function registerNodeRoutes(router: Router, deps: NodesApiDeps): void {
  router.route('get', '/api/v1/nodes', { scope: 'reader', body: 'none' }, async () => {
    if (deps.nodes === undefined) return apiError(404, 'not_found', 'this hub is not in a cluster (FLEETGATE_POSTGRES_URL is unset): it has no nodes to list')
    const nodes = await deps.nodes()
    return {
      status: 200,
      body: {
        items: nodes.map((node) => ({
          id: node.id,
          startedAt: iso(node.startedAt),
          lastSeenAt: iso(node.lastSeenAt),
          // A dead node's sessions are gone: its devices read offline (docs/cluster.md).
          sessions: node.alive ? node.sessions : 0,
          version: node.version,
          alive: node.alive,
        })),
      },
    }
  })
}
