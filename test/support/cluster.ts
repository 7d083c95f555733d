// A cluster for tests (CONTRACT §8): one PostgreSQL, one Mosquitto whose ACL lets only the nodes'
// credentials write under fleetgate-cluster/ (as docs/cluster.md configures it), and hubs on them.
import { startTestHub, type TestHub } from './hub.js'
import { startMosquitto, type Mosquitto } from './mosquitto.js'
import { startPostgres, type Postgres } from './postgres.js'

/** The nodes' broker account: it alone may write node-to-node messages. */
export const NODE_USER = 'fleetgate-node'
/** An outside client's account: it reads what the hubs publish and may publish commands. */
export const OUTSIDER_USER = 'outsider'
const PASSWORDS: Readonly<Record<string, string>> = { [NODE_USER]: 'node-secret-0123', [OUTSIDER_USER]: 'outsider-secret-0123' }

/** The broker ACL of docs/cluster.md: outside clients never write under fleetgate-cluster/. */
export const CLUSTER_ACL = [
  `user ${NODE_USER}`,
  'topic readwrite fleetgate/#',
  'topic readwrite fleetgate-cluster/#',
  '',
  `user ${OUTSIDER_USER}`,
  'topic read fleetgate/#',
  'topic write fleetgate/devices/+/commands',
  '',
].join('\n')

/** The servers a cluster shares. */
export interface ClusterServices {
  readonly pg: Postgres
  readonly broker: Mosquitto
  /** `mqtt://fleetgate-node:…@127.0.0.1:PORT`: what the nodes take as FLEETGATE_MQTT_UPLINK. */
  readonly nodeUrl: string
  /** `mqtt://outsider:…@127.0.0.1:PORT`: an outside client's URL. */
  readonly outsiderUrl: string
  stop(): Promise<void>
}

/** Starts PostgreSQL and Mosquitto (password file and ACL) for one test file. */
export async function startClusterServices(options: { readonly persistence?: boolean } = {}): Promise<ClusterServices> {
  const [pg, broker] = await Promise.all([startPostgres(), startMosquitto({ users: PASSWORDS, acl: CLUSTER_ACL, persistence: options.persistence ?? false })])
  return {
    pg,
    broker,
    nodeUrl: broker.urlFor(NODE_USER),
    outsiderUrl: broker.urlFor(OUTSIDER_USER),
    async stop() {
      await Promise.all([pg.stop(), broker.stop()])
    },
  }
}

/** The environment of a node `nodeId` of the cluster on `database` (a URL of `services.pg`). */
export function clusterEnv(services: ClusterServices, database: string, nodeId: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    FLEETGATE_POSTGRES_URL: database,
    FLEETGATE_NODE_ID: nodeId,
    FLEETGATE_MQTT_PORT: '0',
    FLEETGATE_MQTT_UPLINK: services.nodeUrl,
    ...extra,
  }
}

/** Starts `ids.length` in-process nodes on `database` (a URL of `services.pg`), one after the other (the first migrates). */
export async function startNodes(services: ClusterServices, database: string, ids: readonly string[], extra: Record<string, string> = {}): Promise<TestHub[]> {
  const hubs: TestHub[] = []
  for (const id of ids) hubs.push(await startTestHub(clusterEnv(services, database, id, extra)))
  return hubs
}
