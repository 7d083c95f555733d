import { describe, expect, it } from 'vitest'
import { clusterEnv, NodeProcesses, startClusterServices, startNodes, type ClusterServices } from '../support/cluster.js'
import { consoleSuite } from '../support/console.js'
import { ADMIN_TOKEN, type TestHub } from '../support/hub.js'

let services: ClusterServices | undefined
let other: TestHub | undefined
let processes: NodeProcesses | undefined

/** The console of node n1 of a cluster whose other nodes are n2 (in this process) and n3 (a process it kills). */
const suite = consoleSuite(
  async () => {
    services = await startClusterServices()
    const database = await services.pg.createDatabase()
    ;[other] = await startNodes(services, database, ['n2'])
    processes = new NodeProcesses(services, database)
    await processes.start('n3')
    return clusterEnv(services, database, 'n1')
  },
  async () => {
    await processes?.cleanup()
    await other?.stop()
    await services?.stop()
  },
)

describe('console: a cluster node', () => {
  it("lists every node with its state and sessions, counts the fleet's sessions on all of them, and shows a killed node as stopped beating", async () => {
    const hub2 = other
    if (hub2 === undefined || processes === undefined) throw new Error('the cluster has not started')
    const device = await hub2.provision('on-n2')
    await suite.devices.connect(hub2.wsUrl, device)

    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    // The fleet's online count is every node's sessions, not only those of the node serving the console.
    await expect.poll(() => tab.page.getByTestId('count-online').textContent(), { timeout: 10_000 }).toBe('1')

    await tab.page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Hub' }).click()
    const rows = tab.page.getByTestId('nodes').locator('tbody tr')
    const table = async (): Promise<string[][]> =>
      rows.evaluateAll((trs) => trs.map((tr) => Array.from(tr.children, (cell) => cell.textContent ?? '').slice(0, 3)))
    await expect.poll(table, { timeout: 12_000 }).toEqual([
      ['n1', 'Alive', '0'],
      ['n2', 'Alive', '1'],
      ['n3', 'Alive', '0'],
    ])
    await tab.shot('hub-cluster')

    // A node killed outright stops beating; the others list it for a day, with no sessions.
    await processes.kill('n3')
    await expect.poll(table, { timeout: 25_000 }).toEqual([
      ['n1', 'Alive', '0'],
      ['n2', 'Alive', '1'],
      ['n3', 'Stopped beating', '0'],
    ])
    await tab.close()
  }, 60_000)
})
