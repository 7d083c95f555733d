import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort } from './ports.js'
import { findExecutable, makeTempDir, startService, track, untrack, type Service } from './service.js'

const INSTALL_HINT = 'apt-get install haproxy'

/** A hub behind the balancer. */
export interface Backend {
  /** The server's name in HAProxy (and its logs). */
  readonly name: string
  /** Its HTTP port on 127.0.0.1. */
  readonly port: number
}

/** A HAProxy started for a test, on 127.0.0.1 and a port of its own. */
export interface Haproxy {
  /** `http://127.0.0.1:PORT`: REST and devices (`ws://…/v1/connect`) through the balancer. */
  readonly url: string
  readonly wsUrl: string
  readonly port: number
  /** Each backend server's state as its health checks see it (`UP`, `DOWN`, ...), by name. */
  servers(): Promise<Record<string, string>>
  /** The last 64 KiB of its log. */
  output(): string
  /** Stops it and removes its dir. Idempotent. */
  stop(): Promise<void>
}

/**
 * The configuration of docs/cluster.md for tests: HTTP mode (REST and WebSocket upgrades), a
 * health check of `/healthz` every 500 ms (down after 2 failures, up after 2 answers), sessions of
 * a server marked down cut at once so their devices reconnect elsewhere, and long tunnel timeouts
 * for device sessions. `leastconn` spreads long-lived sessions evenly.
 */
export function haproxyConfig(port: number, backends: readonly Backend[], statsPort?: number): string {
  return [
    'global',
    // Two descriptors a connection: 9,000 fits a soft limit of 20,000 open files.
    '  maxconn 9000',
    '  log stderr format raw local0 notice',
    'defaults',
    '  mode http',
    '  log global',
    '  option redispatch',
    '  retries 3',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-request 10s',
    '  timeout tunnel 1h',
    'frontend devices_and_rest',
    `  bind 127.0.0.1:${port}`,
    '  default_backend hubs',
    'backend hubs',
    '  balance leastconn',
    // HTTP/1.1 with a Host: uWS answers no HTTP/1.0 request.
    '  option httpchk',
    '  http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host fleetgate',
    '  http-check expect status 200',
    '  default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions',
    ...backends.map((backend) => `  server ${backend.name} 127.0.0.1:${backend.port} check`),
    ...(statsPort === undefined ? [] : ['frontend stats', `  bind 127.0.0.1:${statsPort}`, '  stats enable', '  stats uri /stats']),
    '',
  ].join('\n')
}

/**
 * Starts a real HAProxy (Debian's `haproxy`) in the foreground, in a temp dir, balancing `backends`.
 * A missing binary fails with how to install it; the test is never skipped. Stopped after the test
 * file at the latest, also when a test failed.
 */
export async function startHaproxy(backends: readonly Backend[]): Promise<Haproxy> {
  const binary = await findExecutable('haproxy', INSTALL_HINT)
  const dir = await makeTempDir('haproxy')
  const port = await freePort()
  const statsPort = await freePort()
  const config = join(dir, 'haproxy.cfg')
  await writeFile(config, haproxyConfig(port, backends, statsPort))
  const servers = async (): Promise<Record<string, string>> => {
    // The stats page as CSV: one line per proxy and server, `pxname,svname,...,status,...`.
    const lines = (await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text()).split('\n')
    const columns = (lines[0] ?? '').replace(/^# /, '').split(',')
    const status = columns.indexOf('status')
    return Object.fromEntries(
      lines
        .slice(1)
        .map((line) => line.split(','))
        .filter((fields) => fields[0] === 'hubs' && fields[1] !== 'BACKEND' && fields[1] !== undefined)
        .map((fields) => [fields[1] as string, fields[status] ?? '']),
    )
  }
  let service: Service | undefined
  let stopped = false
  const balancer: Haproxy = {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/v1/connect`,
    port,
    servers,
    output: () => service?.output() ?? '',
    async stop() {
      if (stopped) return
      stopped = true
      untrack(balancer)
      await service?.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
  track(balancer)
  try {
    // -db: stay in the foreground, -W: master-worker, so that SIGTERM stops both.
    // Ready once every backend passed its health checks: until then HAProxy answers 503.
    const ready = async (): Promise<boolean> => {
      try {
        const states = Object.values(await servers())
        return states.length === backends.length && states.every((state) => state === 'UP')
      } catch {
        return false
      }
    }
    service = await startService({ name: 'haproxy', command: binary, args: ['-W', '-db', '-f', config], dir, ready, installHint: INSTALL_HINT })
  } catch (err) {
    await balancer.stop()
    throw err
  }
  return balancer
}
