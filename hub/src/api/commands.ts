import type { AuditLog } from '../audit/index.js'
import {
  checkCommandFields,
  commandView,
  COMMAND_STATUSES,
  MAX_QUEUED_PER_DEVICE,
  type CommandBatches,
  type CommandRecord,
  type Commands,
} from '../commands/index.js'
import { apiError, deviceNotFound, invalid, type Reply, type Router } from '../transport/index.js'
import { asObject, checkBoolean, checkDeviceId, checkTags, onlyKeys } from '../validate.js'

/** What the command API needs. */
export interface CommandsApiDeps {
  readonly commands: Commands
  readonly batches: CommandBatches
  readonly audit: AuditLog
}

/** Largest `limit` of a command or audit listing: 1,000. */
export const MAX_LIST = 1000
/** `limit` of a command or audit listing when not given: 100. */
export const DEFAULT_LIST = 100
/** docs/rest.md: fan-out takes the same devices a bulk create does, at most 10,000 listed ids. */
export const MAX_TARGET_IDS = 10_000


function limitOf(text: string | null): number | undefined {
  if (text === null) return DEFAULT_LIST
  const limit = Number(text)
  return /^\d+$/.test(text) && limit >= 1 && limit <= MAX_LIST ? limit : undefined
}

/** Registers the command and audit routes of docs/rest.md. */
export function registerCommandRoutes(router: Router, deps: CommandsApiDeps): void {
  const { commands, batches, audit } = deps

  /**
   * 200 with the final record, or 504 when the wait ended without a result (docs/rest.md, `wait:
   * true`): `timeout`, or `expired` for a held command its device's connection never took.
   */
  const waited = async (record: CommandRecord): Promise<Reply> => {
    const done = await commands.final(record)
    return { status: done.status === 'timeout' || done.status === 'expired' ? 504 : 200, body: commandView(done) }
  }

  router.route('post', '/api/v1/devices/:id/commands', { scope: 'operator', body: 'required' }, async ({ params, body, operator }) => {
    const device = params[0] ?? ''
    const object = asObject(body)
    if (object === undefined) return invalid('body: an object {name, params?, timeoutMs?, ttlMs?, wait?, id?}')
    const keys = onlyKeys(object, ['name', 'params', 'timeoutMs', 'ttlMs', 'wait', 'id'], 'body')
    if (!keys.ok) return invalid(keys.message)
    const request = checkCommandFields(object, true)
    if (!request.ok) return invalid(request.message)
    const wait = checkBoolean(object['wait'], 'wait', true)
    if (!wait.ok) return invalid(wait.message)

    const outcome = await commands.create(device, request.value, operator?.name ?? 'unknown', { recordRefusal: false, awaited: true })
    switch (outcome.kind) {
      case 'unreachable':
        // docs/cluster.md: a call that needs another node fails fast while the broker between them is away.
        return apiError(
          503,
          'not_ready',
          `device "${device}" is connected to node "${outcome.node}", which cannot be reached now: the cluster's MQTT broker (FLEETGATE_MQTT_UPLINK) is unreachable; retry shortly`,
        )
      case 'not_found':
        return deviceNotFound(device)
      case 'device_offline':
        return apiError(409, 'device_offline', `device "${device}" is offline and the command has no ttlMs to wait for it`)
      case 'queue_full':
        return apiError(429, 'queue_full', `device "${device}" has ${MAX_QUEUED_PER_DEVICE} queued commands already`)
      case 'existing':
        if (wait.value && outcome.record.status === 'sent') return waited(outcome.record)
        return { status: 200, body: commandView(outcome.record) }
      case 'created':
        // In cluster mode a command another node delivered may have ended already when this one hears it was sent.
        if (wait.value && outcome.record.status !== 'queued') return waited(outcome.record)
        return { status: 202, body: commandView(outcome.record) }
      case 'held':
        return wait.value ? waited(outcome.record) : { status: 202, body: commandView(outcome.record) }
    }
  })

  router.route('get', '/api/v1/devices/:id/commands/:cmdId', { scope: 'reader', body: 'none' }, async ({ params }) => {
    const [device = '', id = ''] = params
    const record = await commands.get(device, id)
    return record === undefined
      ? apiError(404, 'not_found', `no command "${id}" for device "${device}"`)
      : { status: 200, body: commandView(record) }
  })

  router.route('get', '/api/v1/devices/:id/commands', { scope: 'reader', body: 'none' }, async ({ params, query }) => {
    const device = params[0] ?? ''
    const statusText = query.get('status')
    const status = statusText === null ? undefined : COMMAND_STATUSES.find((s) => s === statusText)
    if (statusText !== null && status === undefined) return invalid(`status: one of ${COMMAND_STATUSES.join(', ')}`)
    const limit = limitOf(query.get('limit'))
    if (limit === undefined) return invalid(`limit: a whole number from 1 to ${MAX_LIST}`)
    return { status: 200, body: { items: (await commands.list(device, status, limit)).map(commandView) } }
  })

  router.route('post', '/api/v1/commands', { scope: 'operator', body: 'required' }, async ({ body, operator }) => {
    const object = asObject(body)
    if (object === undefined) return invalid('body: an object {target, name, params?, ttlMs?, timeoutMs?}')
    const keys = onlyKeys(object, ['target', 'name', 'params', 'ttlMs', 'timeoutMs'], 'body')
    if (!keys.ok) return invalid(keys.message)
    const target = asObject(object['target'])
    if (target === undefined) return invalid('target: an object {ids?, tags?}')
    const targetKeys = onlyKeys(target, ['ids', 'tags'], 'target')
    if (!targetKeys.ok) return invalid(targetKeys.message)
    const { ids, tags } = target
    if (ids === undefined && tags === undefined) return invalid('target: give ids, tags or both')
    if (ids !== undefined && (!Array.isArray(ids) || ids.length > MAX_TARGET_IDS || !ids.every((id) => checkDeviceId(id).ok))) {
      return invalid(`target.ids: a list of at most ${MAX_TARGET_IDS} device ids`)
    }
    const checkedTags = tags === undefined ? undefined : checkTags(tags, 'target.tags')
    if (checkedTags !== undefined && !checkedTags.ok) return invalid(checkedTags.message)
    if (checkedTags !== undefined && Object.keys(checkedTags.value).length === 0) return invalid('target.tags: at least one tag')
    const request = checkCommandFields(object, false)
    if (!request.ok) return invalid(request.message)
    const actor = operator?.name ?? 'unknown'
    const started = await batches.start(
      { ids: ids as string[] | undefined, tags: checkedTags === undefined ? undefined : Object.entries(checkedTags.value) },
      request.value,
      actor,
    )
    audit.record(actor, 'command.batch', started.batch, `targeted ${started.targeted}`)
    return { status: 202, body: started }
  })

  router.route('get', '/api/v1/commands/:batch', { scope: 'reader', body: 'none' }, async ({ params }) => {
    const batch = params[0] ?? ''
    const status = await batches.status(batch)
    return status === undefined ? apiError(404, 'not_found', `no batch "${batch}"`) : { status: 200, body: status }
  })

  router.route('get', '/api/v1/audit', { scope: 'admin', body: 'none' }, async ({ query }) => {
    const afterText = query.get('after') ?? '0'
    if (!/^\d{1,15}$/.test(afterText)) return invalid('after: an audit seq (a whole number)')
    const limit = limitOf(query.get('limit'))
    if (limit === undefined) return invalid(`limit: a whole number from 1 to ${MAX_LIST}`)
    const items = (await audit.list(Number(afterText), limit)).map((entry) => ({ ...entry, at: new Date(entry.at).toISOString() }))
    return { status: 200, body: { items } }
  })
}
