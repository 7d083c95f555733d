import { createServer, type Server, type Socket } from 'node:net'
import type { IClientOptions } from 'mqtt'
import {
  createBroker,
  type Actor,
  type BridgeError,
  type Broker,
  type BrokerOptions,
  type CommandSource,
  type DecodeFailure,
  type Disconnection,
  type Refusal,
} from '@fleetgate/bridge'
import { connectMqtt, type TestClient } from '../../test/support/mqtt-client.js'
import { track, untrack } from '../../test/support/service.js'

/** Operator tokens known to the test broker: password -> operator. */
export const TOKENS: Readonly<Record<string, Actor>> = {
  'admin-token': { name: 'alice', scope: 'admin' },
  'operator-token': { name: 'olga', scope: 'operator' },
  'reader-token': { name: 'rita', scope: 'reader' },
}

export interface SeenCommand {
  readonly deviceId: string
  readonly payload: unknown
  readonly actor: Actor
  readonly source: CommandSource
}

export interface SeenInvalid {
  readonly deviceId: string
  readonly reason: DecodeFailure
  readonly actor: Actor
  readonly source: CommandSource
}

/** The broker behind a real TCP listener on 127.0.0.1, as the hub wires it, plus what its callbacks saw. */
export interface LocalBroker {
  readonly broker: Broker
  readonly url: string
  readonly commands: SeenCommand[]
  readonly invalid: SeenInvalid[]
  readonly refusals: Refusal[]
  readonly disconnections: Disconnection[]
  readonly errors: BridgeError[]
  /** The listener's port on 127.0.0.1. */
  readonly port: number
  /** An mqtt.js client with `token` as password (any user name), resolved after CONNACK 0. */
  client(token: string | undefined, options?: IClientOptions): Promise<TestClient>
  stop(): Promise<void>
}

/** Starts a broker on a `net` server on 127.0.0.1 port 0 handing each socket to `broker.handle`. */
export async function startLocalBroker(options: Partial<BrokerOptions> = {}): Promise<LocalBroker> {
  const commands: SeenCommand[] = []
  const invalid: SeenInvalid[] = []
  const refusals: Refusal[] = []
  const disconnections: Disconnection[] = []
  const errors: BridgeError[] = []
  const broker = await createBroker({
    authenticate: (password) => TOKENS[password],
    onCommand: (deviceId, payload, actor, source) => commands.push({ deviceId, payload, actor, source }),
    onInvalidCommand: (deviceId, reason, actor, source) => invalid.push({ deviceId, reason, actor, source }),
    onRefused: (refusal) => refusals.push(refusal),
    onDisconnect: (disconnection) => disconnections.push(disconnection),
    onError: (err) => errors.push(err),
    ...options,
  })
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    broker.handle(socket)
  })
  let stopped = false
  let port = 0
  const local: LocalBroker = {
    broker,
    get url() {
      return `mqtt://127.0.0.1:${port}`
    },
    get port() {
      return port
    },
    commands,
    invalid,
    refusals,
    disconnections,
    errors,
    client: async (token, clientOptions = {}) =>
      await connectMqtt(local.url, { ...(token === undefined ? {} : { username: 'any', password: token }), ...clientOptions }),
    async stop() {
      if (stopped) return
      stopped = true
      untrack(local)
      await broker.close()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  track(local)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve())
    })
  } catch (err) {
    await local.stop()
    throw err
  }
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the test listener has no TCP address')
  port = address.port
  return local
}

/** The error an mqtt.js connect rejected with, with its CONNACK return code. */
export async function connectError(local: LocalBroker, token: string | undefined, options?: IClientOptions): Promise<{ code: unknown; message: string }> {
  try {
    const client = await local.client(token, options)
    await client.stop()
  } catch (err) {
    if (err instanceof Error) return { code: 'code' in err ? err.code : undefined, message: err.message }
    throw err
  }
  throw new Error('the connection was accepted')
}
