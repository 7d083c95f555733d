import { scopeAllows, type Scope } from './scopes.js'
import { isAllowedFilter, parseCommandTopic } from './topics.js'

/** Who did something: an operator token's name and scope (the audit's actor), or the uplink. */
export interface Actor {
  readonly name: string
  readonly scope: Scope
}

/** The actor of every command taken from the uplink: `{ name: 'uplink', scope: 'operator' }`. */
export const UPLINK_ACTOR: Actor = Object.freeze({ name: 'uplink', scope: 'operator' })

/**
 * Why the broker refused a connection, a publish or a subscription:
 * - `no_password`, `unknown_token`: CONNECT without a password, or with one that is no operator token;
 * - `auth_error`: the hub's `authenticate` threw (CONNACK 3, server unavailable);
 * - `unauthenticated`: a publish with no authenticated client behind it (an orphaned Last Will);
 * - `scope`: a `reader` publishing;
 * - `topic`: a publish outside `fleetgate/devices/{id}/commands`, or a filter outside `fleetgate/`;
 * - `retain`, `qos`: a command published retained, or at QoS 2.
 */
export type RefusalReason =
  | 'no_password'
  | 'unknown_token'
  | 'auth_error'
  | 'unauthenticated'
  | 'scope'
  | 'topic'
  | 'retain'
  | 'qos'

/** The verdict on a client's PUBLISH: the command's device id and actor, or why it is refused. */
export type PublishVerdict =
  | { readonly ok: true; readonly deviceId: string; readonly actor: Actor }
  | { readonly ok: false; readonly reason: RefusalReason }

/**
 * docs/mqtt.md, deny by default: a client may publish only a command, only with an `operator` or
 * `admin` token, only on exactly `fleetgate/devices/{id}/commands` with a valid id, not retained
 * (a retained command would run again for every new subscriber) and at QoS 0 or 1 (the bridge
 * offers no exactly-once; the command `id` is the idempotency key, docs/rest.md). Telemetry,
 * status and result topics are published only by the hub, which does not pass through here.
 */
export function authorizePublish(actor: Actor | undefined, topic: string, qos: number, retain: boolean): PublishVerdict {
  if (actor === undefined) return { ok: false, reason: 'unauthenticated' }
  if (!scopeAllows(actor.scope, 'operator')) return { ok: false, reason: 'scope' }
  const deviceId = parseCommandTopic(topic)
  if (deviceId === undefined) return { ok: false, reason: 'topic' }
  if (retain) return { ok: false, reason: 'retain' }
  if (qos !== 0 && qos !== 1) return { ok: false, reason: 'qos' }
  return { ok: true, deviceId, actor }
}

/** docs/mqtt.md: every authenticated scope may subscribe to filters under `fleetgate/`; nothing else. */
export function authorizeSubscribe(actor: Actor | undefined, filter: string): boolean {
  return actor !== undefined && isAllowedFilter(filter)
}
