import type { Aedes, Client, PublishPacket } from 'aedes'

// What the bridge uses of aedes 1.2 beyond its typings, in one place. Each is checked where it is
// taken, so that another aedes version fails loudly (a connection refused, an error reported, a
// broker that does not start) instead of misbehaving.

/**
 * An aedes Client's state (lib/client.js): its live subscriptions (filter -> the Subscription
 * aedes made, with the QoS granted) and the counter aedes takes its packet ids from (`QoSPacket`,
 * lib/qos-packet.js: 1 to 65535, then 1 again).
 */
export interface ClientState {
  readonly subscriptions: Readonly<Record<string, { readonly qos: number }>>
  _nextId: number
}

/** Whether `client` carries the state the hub publisher reads and updates. */
export function hasClientState(client: Client): client is Client & ClientState {
  return (
    'subscriptions' in client && typeof client.subscriptions === 'object' && client.subscriptions !== null &&
    '_nextId' in client && typeof client._nextId === 'number'
  )
}

/** Takes the next packet id of `client`, as aedes does for its own QoS 1 deliveries to it. */
export function nextPacketId(client: ClientState): number {
  const id = client._nextId
  client._nextId = id >= 65_535 ? 1 : id + 1
  return id
}

function isTimer(value: unknown): value is NodeJS.Timeout {
  return typeof value === 'object' && value !== null && 'refresh' in value && typeof value.refresh === 'function'
}

/** Restarts `client`'s keepalive timer, as aedes does for every packet it reads (lib/handlers/index.js); none without keepalive. */
export function refreshKeepalive(client: Client): void {
  const timer = '_keepaliveTimer' in client ? client._keepaliveTimer : undefined
  if (isTimer(timer)) timer.refresh()
}

/** Where aedes keeps retained messages (aedes-persistence: stored at once, a promise for the outcome). */
export interface RetainedStore {
  storeRetained(packet: PublishPacket): Promise<void>
}

function isRetainedStore(value: unknown): value is RetainedStore {
  return typeof value === 'object' && value !== null && 'storeRetained' in value && typeof value.storeRetained === 'function'
}

/** `aedes`'s persistence, for retained messages; undefined when it has none such (another version). */
export function retainedStore(aedes: Aedes): RetainedStore | undefined {
  const store = 'persistence' in aedes ? aedes.persistence : undefined
  return isRetainedStore(store) ? store : undefined
}
