// A cluster for tests (docs/cluster.md): one PostgreSQL, one Mosquitto whose ACL lets only the nodes'
// credentials write under fleetgate-cluster/ (as docs/cluster.md configures it), and hubs on them.
import { freePort } from './ports.js'
import { HubProcesses, startTestHub, stopHubProcess, testEnv, type HubProcess, type HubProcessOptions, type TestHub } from './hub.js'
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

/**
 * A cluster's nodes as hub processes (`node hub/dist/main.js`), each started on a data dir and a
 * port of its own that it keeps: started again after a kill, a node comes back on the same data
 * (its spool) and behind the same balancer address.
 */
export class NodeProcesses {
  readonly #services: ClusterServices
  readonly #database: string
  readonly #extra: Record<string, string>
  readonly #options: HubProcessOptions
  readonly #processes = new HubProcesses()
  readonly #nodes = new Map<string, { env: Record<string, string>; hub: HubProcess }>()

  /** Nodes on `database` of `services`, with `extra` in their environment. */
  constructor(services: ClusterServices, database: string, extra: Record<string, string> = {}, options: HubProcessOptions = {}) {
    this.#services = services
    this.#database = database
    this.#extra = extra
    this.#options = options
  }

  /** Starts node `id`: the first time on a new data dir and a free port, later on the same. */
  async start(id: string): Promise<HubProcess> {
    const env =
      this.#nodes.get(id)?.env ??
      testEnv(this.#processes.dir(), { ...clusterEnv(this.#services, this.#database, id), FLEETGATE_PORT: String(await freePort()), ...this.#extra })
    const hub = await this.#processes.start(env, this.#options)
    this.#nodes.set(id, { env, hub })
    return hub
  }

  /** Node `id`'s running (or last) process. */
  hub(id: string): HubProcess {
    const found = this.#nodes.get(id)
    if (found === undefined) throw new Error(`no node ${id}`)
    return found.hub
  }

  /** Kills node `id` (SIGKILL unless told otherwise) and waits for it to exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await stopHubProcess(this.hub(id), signal)
  }

  /** Kills every node and removes their data dirs. */
  async cleanup(): Promise<void> {
    await this.#processes.cleanup()
  }
}
