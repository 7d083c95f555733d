// The fleet: device ids, and their keys in the fleet file (mode 0600), created on demand through
// the bulk REST call (docs/rest.md: up to 10,000 per call, keys shown once). A later run reads the
// file and reuses the same devices without touching the registry.
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import type { KeyType } from '@fleetgate/device-sdk'
import type { DeviceIdentity } from './device.js'
import { causeText, SimError } from './errors.js'
import type { SimOptions } from './options.js'
import { asRecord, describeAnswer, rest } from './rest.js'

/** docs/rest.md: devices per bulk call. */
export const BULK_MAX_DEVICES = 10_000
/** Digits of a device id's index: `sim-000001`. */
export const ID_DIGITS = 6

/** What the fleet file holds. */
export interface FleetFile {
  readonly version: 1
  /** The hub the devices were created on. */
  readonly hub: string
  readonly devices: readonly DeviceIdentity[]
}

/** The id of device `index` (0-based): prefix + index + 1, 6 digits at least. */
export function deviceId(prefix: string, index: number): string {
  return `${prefix}${String(index + 1).padStart(ID_DIGITS, '0')}`
}

/** Reads a fleet file; undefined when it does not exist. Throws SIM_ERR_FLEET when it is not one. */
export async function readFleetFile(path: string): Promise<FleetFile | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new SimError('SIM_ERR_FLEET', `${path}: cannot read the fleet file (${causeText(cause)})`, { cause })
  }
  const fail = (why: string): never => {
    throw new SimError('SIM_ERR_FLEET', `${path}: not a fleet file (${why})`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    fail('not JSON')
  }
  const file = asRecord(parsed)
  if (file === undefined || file['version'] !== 1 || !Array.isArray(file['devices'])) fail('expected {"version": 1, "devices": [...]}')
  const devices: DeviceIdentity[] = []
  for (const entry of file?.['devices'] as unknown[]) {
    const device = asRecord(entry)
    const { id, keyType, key } = device ?? {}
    if (typeof id !== 'string' || (keyType !== 'hmac' && keyType !== 'ed25519') || typeof key !== 'string') fail('a device without id, keyType or key')
    devices.push({ id: id as string, keyType: keyType as KeyType, key: key as string })
  }
  return { version: 1, hub: typeof file?.['hub'] === 'string' ? file['hub'] : '', devices }
}

/** Writes the fleet file atomically, readable by its owner only (it holds device keys). */
export async function writeFleetFile(path: string, file: FleetFile): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`
  try {
    await writeFile(temp, `${JSON.stringify(file, null, 1)}\n`, { mode: 0o600 })
    await chmod(temp, 0o600)
    await rename(temp, path)
  } catch (cause) {
    throw new SimError('SIM_ERR_FLEET', `${path}: cannot write the fleet file (${causeText(cause)})`, { cause })
  }
}

/** The fleet's devices, in index order: read from the fleet file, the missing ones created when --provision. */
export async function loadFleet(options: SimOptions): Promise<{ devices: DeviceIdentity[]; created: number; madeFor: string | undefined }> {
  const ids = Array.from({ length: options.devices }, (_, i) => deviceId(options.prefix, i))
  const file = await readFleetFile(options.fleet)
  const known = new Map((file?.devices ?? []).map((device) => [device.id, device]))
  const missing = ids.filter((id) => !known.has(id))
  if (missing.length > 0 && !options.provision) {
    const where = file === undefined ? `there is no fleet file ${options.fleet}` : `${missing.length} of ${ids.length} devices (first ${missing[0]}) are not in ${options.fleet}`
    throw new SimError('SIM_ERR_FLEET', `${where}: run with --provision (and an admin --token) to create them`)
  }
  let created = 0
  const exists: string[] = []
  for (let start = 0; start < missing.length; start += BULK_MAX_DEVICES) {
    const chunk = missing.slice(start, start + BULK_MAX_DEVICES)
    const answer = await rest(options.hub, options.token, 'POST', '/api/v1/devices/bulk', { devices: chunk.map((id) => ({ id, keyType: options.keyType })) }, 120_000)
    if (answer.status !== 200) {
      const hint = answer.status === 401 || answer.status === 403 ? ' (--provision needs an admin token)' : ''
      throw new SimError('SIM_ERR_PROVISION', `POST /api/v1/devices/bulk answered ${describeAnswer(answer)}${hint}`)
    }
    const body = asRecord(answer.body)
    for (const entry of Array.isArray(body?.['created']) ? (body['created'] as unknown[]) : []) {
      const device = asRecord(entry)
      const id = device?.['id']
      const key = device?.['key'] ?? device?.['privateKey']
      const keyType = device?.['keyType'] ?? options.keyType
      if (typeof id !== 'string' || typeof key !== 'string' || (keyType !== 'hmac' && keyType !== 'ed25519')) {
        throw new SimError('SIM_ERR_HUB', `POST /api/v1/devices/bulk: a created device without id or key: ${JSON.stringify(entry).slice(0, 200)}`)
      }
      known.set(id, { id, keyType, key })
      created++
    }
    for (const entry of Array.isArray(body?.['errors']) ? (body['errors'] as unknown[]) : []) {
      const error = asRecord(entry)
      if (error?.['error'] === 'exists') exists.push(String(error['id']))
      else throw new SimError('SIM_ERR_PROVISION', `POST /api/v1/devices/bulk refused ${String(error?.['id'])}: ${String(error?.['error'])} ${String(error?.['message'] ?? '')}`)
    }
    // saved after every call: keys are shown once, and a later call may fail
    await writeFleetFile(options.fleet, { version: 1, hub: options.hub, devices: [...known.values()] })
  }
  if (exists.length > 0) {
    throw new SimError(
      'SIM_ERR_PROVISION',
      `${exists.length} devices (first ${exists[0]}) exist on the hub but their keys are not in ${options.fleet}: ` +
        'give the fleet file that created them, use another --prefix, or delete them',
    )
  }
  return { devices: ids.map((id) => known.get(id) as DeviceIdentity), created, madeFor: file?.hub === '' ? undefined : file?.hub }
}
