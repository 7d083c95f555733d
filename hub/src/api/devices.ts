import type { KeyType } from '@fleetgate/device-sdk'
import type { AuditLog } from '../audit/index.js'
import { parseEd25519PublicKey, type DeviceRecord, type IssuedSecret, type NewDevice, type Presence, type Registry, type SessionPlace } from '../devices/index.js'
import { apiError, deviceNotFound, invalid, type Reply, type RequestContext, type Router } from '../transport/index.js'
import {
  asObject,
  checkBoolean,
  checkDeviceId,
  checkInteger,
  checkTags,
  onlyKeys,
  type Checked,
} from '../validate.js'

/** docs/rest.md: bulk creation takes up to 10,000 devices. */
export const MAX_BULK_DEVICES = 10_000
/** Listing page size when `limit` is not given: 100. */
export const DEFAULT_PAGE = 100
/** Largest listing page: 1,000 devices. */
export const MAX_PAGE = 1000
/** Longest grace period for a rotated key, in s: 30 days. */
export const MAX_GRACE_SEC = 30 * 24 * 3600

const iso = (ms: number): string => new Date(ms).toISOString()

/** What the devices API needs. */
export interface DevicesApiDeps {
  readonly registry: Registry
  /** Where sessions are: this node's, or in cluster mode any node's. */
  readonly presence: Presence
  readonly audit: AuditLog
  /** Called once a device is deleted (its queued commands end `expired`, its twin is deleted). */
  readonly deleted: (id: string) => Promise<void>
}

/** Registers the device routes of docs/rest.md (create, bulk, list, get, patch, delete, key rotation). */
export function registerDeviceRoutes(router: Router, deps: DevicesApiDeps): void {
  const { registry, presence, audit } = deps
  const actorOf = (ctx: RequestContext): string => ctx.operator?.name ?? 'unknown'
  const placeOf = async (id: string): Promise<SessionPlace | undefined> => (await presence.find([id])).get(id)
  /**
   * Audits a forced disconnect when the device was online as the change began. The session itself
   * ends on whatever node holds it, once the changed record reaches that node (Sessions.recordChanged).
   */
  const revoked = (ctx: RequestContext, id: string, reason: string, wasOnline: boolean): void => {
    if (wasOnline) audit.record(actorOf(ctx), 'device.disconnect', id, reason)
  }

  /**
   * The device as REST shows it (docs/rest.md); in cluster mode with the node that holds its
   * session, or null (docs/cluster.md). `place` is where its session is when the caller looked it
   * up already (null: nowhere), undefined to look it up here.
   */
  const view = async (device: DeviceRecord, place?: SessionPlace | null): Promise<Record<string, unknown>> => {
    const session = place === undefined ? await placeOf(device.id) : (place ?? undefined)
    const lastSeenAt = session?.lastSeenAt ?? (await registry.lastSeenAt(device))
    return {
      id: device.id,
      keyType: device.key.type,
      tags: device.tags,
      disabled: device.disabled,
      createdAt: iso(device.createdAt),
      online: session !== undefined,
      ...(presence.clustered ? { node: session?.node ?? null } : {}),
      ...(session === undefined ? {} : { connectedAt: iso(session.connectedAt) }),
      ...(lastSeenAt === undefined ? {} : { lastSeenAt: iso(lastSeenAt) }),
    }
  }
  const withSecret = async (device: DeviceRecord, secret: IssuedSecret): Promise<Record<string, unknown>> => ({ ...(await view(device)), ...secret })

  router.route('post', '/api/v1/devices', { scope: 'admin', body: 'required' }, async (ctx) => {
    const input = checkNewDevice(ctx.body, 'body')
    if (!input.ok) return invalid(input.message)
    const created = await registry.create(input.value)
    audit.record(actorOf(ctx), 'device.create', input.value.id, created === undefined ? 'exists' : 'ok')
    if (created === undefined) return apiError(409, 'exists', `device "${input.value.id}" exists`)
    return { status: 201, body: await withSecret(created.device, created.secret) }
  })

  router.route('post', '/api/v1/devices/bulk', { scope: 'admin', body: 'required' }, async (ctx) => {
    const object = asObject(ctx.body)
    const list = object?.['devices']
    if (object === undefined || !Array.isArray(list)) return invalid('body: {"devices": [...]} is required')
    const keys = onlyKeys(object, ['devices'], 'body')
    if (!keys.ok) return invalid(keys.message)
    if (list.length > MAX_BULK_DEVICES) return invalid(`devices: at most ${MAX_BULK_DEVICES} per call`)
    const errors: Array<{ id: unknown; error: string; message: string }> = []
    const accepted: NewDevice[] = []
    const seen = new Set<string>()
    list.forEach((entry: unknown, index) => {
      const checked = checkNewDevice(entry, `devices[${index}]`)
      const id = asObject(entry)?.['id'] ?? null
      if (!checked.ok) errors.push({ id, error: 'invalid', message: checked.message })
      else if (seen.has(checked.value.id)) errors.push({ id, error: 'exists', message: `device "${checked.value.id}" is listed twice` })
      else {
        seen.add(checked.value.id)
        accepted.push(checked.value)
      }
    })
    const results = await registry.createMany(accepted)
    const created: Array<Record<string, unknown>> = []
    for (const [index, result] of results.entries()) {
      if (result !== undefined) {
        created.push(await withSecret(result.device, result.secret))
        audit.record(actorOf(ctx), 'device.create', result.device.id, 'ok')
      } else errors.push({ id: accepted[index]?.id ?? null, error: 'exists', message: 'the device exists' })
    }
    return { status: 200, body: { created, errors } }
  })

  router.route('get', '/api/v1/devices', { scope: 'reader', body: 'none' }, async ({ query }) => {
    const tags: Array<[string, string]> = []
    for (const filter of query.getAll('tag')) {
      const colon = filter.indexOf(':')
      const checked = colon < 1 ? undefined : checkTags({ [filter.slice(0, colon)]: filter.slice(colon + 1) }, 'tag')
      if (checked === undefined || !checked.ok) return invalid('tag: a filter is name:value, a registry tag')
      tags.push([filter.slice(0, colon), filter.slice(colon + 1)])
    }
    const online = query.get('online')
    if (online !== null && online !== 'true' && online !== 'false') return invalid('online: true or false')
    const limitText = query.get('limit')
    const limit = limitText === null ? DEFAULT_PAGE : Number(limitText)
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE || (limitText !== null && !/^\d+$/.test(limitText))) {
      return invalid(`limit: a whole number from 1 to ${MAX_PAGE}`)
    }
    const after = query.get('after') ?? undefined
    if (after !== undefined && !checkDeviceId(after, 'after').ok) return invalid('after: a device id')
    const wantOnline = online === null ? undefined : online === 'true'
    const page = await registry.list(
      { tags, after, limit },
      wantOnline === undefined
        ? undefined
        : async (ids) => {
            const found = await presence.find(ids)
            return new Set(ids.filter((id) => found.has(id) === wantOnline))
          },
    )
    const places = await presence.find(page.items.map((device) => device.id))
    return { status: 200, body: { items: await Promise.all(page.items.map((device) => view(device, places.get(device.id) ?? null))), next: page.next } }
  })

  router.route('get', '/api/v1/devices/:id', { scope: 'reader', body: 'none' }, async ({ params }) => {
    const id = params[0] ?? ''
    const device = registry.get(id)
    return device === undefined ? deviceNotFound(id) : { status: 200, body: await view(device) }
  })

  router.route('patch', '/api/v1/devices/:id', { scope: 'admin', body: 'required' }, async (ctx) => {
    const id = ctx.params[0] ?? ''
    const change = checkPatch(ctx.body)
    if (!change.ok) return invalid(change.message)
    // docs/protocol.md: a disabled device's session ends with 4003 (the registry counts the revocation).
    const disabling = change.value.disabled === true && registry.get(id)?.disabled === false
    const wasOnline = disabling && (await placeOf(id)) !== undefined
    const device = await registry.update(id, change.value)
    if (device === undefined) return deviceNotFound(id)
    audit.record(actorOf(ctx), 'device.update', id, Object.keys(change.value).join(',') || 'nothing')
    revoked(ctx, id, 'device disabled', wasOnline)
    return { status: 200, body: await view(device) }
  })

  router.route('del', '/api/v1/devices/:id', { scope: 'admin', body: 'none' }, async (ctx) => {
    const id = ctx.params[0] ?? ''
    const wasOnline = (await placeOf(id)) !== undefined
    if (!(await registry.remove(id))) return deviceNotFound(id)
    audit.record(actorOf(ctx), 'device.delete', id, 'ok')
    revoked(ctx, id, 'device deleted', wasOnline)
    await deps.deleted(id)
    return { status: 204 }
  })

  router.route('post', '/api/v1/devices/:id/key', { scope: 'admin', body: 'optional' }, async (ctx) => {
    const id = ctx.params[0] ?? ''
    const options = checkRotation(ctx.body)
    if (!options.ok) return invalid(options.message)
    const { graceSec, disconnect } = options.value
    const wasOnline = disconnect && (await placeOf(id)) !== undefined
    const rotated = await registry.rotateKey(id, graceSec, disconnect)
    if (rotated === undefined) return deviceNotFound(id)
    audit.record(actorOf(ctx), 'device.key_rotate', id, `grace ${graceSec} s`)
    revoked(ctx, id, 'device key rotated', wasOnline)
    return { status: 200, body: rotated.secret }
  })
}

function checkNewDevice(value: unknown, where: string): Checked<NewDevice> {
  const body = asObject(value)
  if (body === undefined) return { ok: false, message: `${where}: a device object {id, keyType?, publicKey?, tags?}` }
  const keys = onlyKeys(body, ['id', 'keyType', 'publicKey', 'tags'], where)
  if (!keys.ok) return keys
  const id = checkDeviceId(body['id'], `${where}.id`)
  if (!id.ok) return id
  const { keyType: rawType, publicKey: rawKey } = body
  // A public key implies ed25519: it is the only key type an operator can bring.
  const keyType: unknown = rawType ?? (rawKey === undefined ? 'hmac' : 'ed25519')
  if (keyType !== 'hmac' && keyType !== 'ed25519') return { ok: false, message: `${where}.keyType: "hmac" or "ed25519"` }
  let publicKey: string | undefined
  if (rawKey !== undefined) {
    if (keyType !== 'ed25519') return { ok: false, message: `${where}.publicKey: only an ed25519 device takes a public key` }
    publicKey = typeof rawKey === 'string' ? parseEd25519PublicKey(rawKey) : undefined
    if (publicKey === undefined) {
      return { ok: false, message: `${where}.publicKey: an Ed25519 public key, 32 raw bytes or SPKI DER, base64url` }
    }
  }
  const tags = body['tags'] === undefined ? { ok: true as const, value: {} } : checkTags(body['tags'], `${where}.tags`)
  if (!tags.ok) return tags
  const device: NewDevice = { id: id.value, keyType: keyType satisfies KeyType, tags: tags.value }
  return { ok: true, value: publicKey === undefined ? device : { ...device, publicKey } }
}

function checkPatch(value: unknown): Checked<{ tags?: Record<string, string>; disabled?: boolean }> {
  const body = asObject(value)
  if (body === undefined) return { ok: false, message: 'body: an object {tags?, disabled?}' }
  const keys = onlyKeys(body, ['tags', 'disabled'], 'body')
  if (!keys.ok) return keys
  const change: { tags?: Record<string, string>; disabled?: boolean } = {}
  if (body['tags'] !== undefined) {
    const tags = checkTags(body['tags'])
    if (!tags.ok) return tags
    change.tags = tags.value
  }
  if (body['disabled'] !== undefined) {
    const disabled = checkBoolean(body['disabled'], 'disabled', false)
    if (!disabled.ok) return disabled
    change.disabled = disabled.value
  }
  return { ok: true, value: change }
}

function checkRotation(value: unknown): Checked<{ graceSec: number; disconnect: boolean }> {
  const body = asObject(value ?? {})
  if (body === undefined) return { ok: false, message: 'body: an object {graceSec?, disconnect?}' }
  const keys = onlyKeys(body, ['graceSec', 'disconnect'], 'body')
  if (!keys.ok) return keys
  const graceSec = checkInteger(body['graceSec'], 'graceSec', 0, MAX_GRACE_SEC, 0)
  if (!graceSec.ok) return graceSec
  const disconnect = checkBoolean(body['disconnect'], 'disconnect', false)
  if (!disconnect.ok) return disconnect
  return { ok: true, value: { graceSec: graceSec.value, disconnect: disconnect.value } }
}
