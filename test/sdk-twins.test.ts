// The SDK's `client.twin` against the real hub (docs/twins.md): the desired event fires once per new
// version (not again after a reconnect), reports made offline arrive merged and in order, a refused
// report rejects with the hub's code, and a FileQueueStore keeps reports across a SIGKILL of the
// device process.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DeviceClient, type DesiredTwin, type DeviceClientOptions, type SdkError, type TwinDocument } from '@fleetgate/device-sdk'
import { assertBuilt } from './support/build.js'
import { runDevice, SDK_IMPORTS } from './support/device-process.js'
import { startTestHub, tempDir, type TestHub } from './support/hub.js'
import { freePort } from './support/ports.js'
import { eventually, until } from './support/telemetry.js'
import type { Credentials } from './support/ws.js'

let hub: TestHub
const clients: DeviceClient[] = []
const dirs: Array<{ cleanup(): void }> = []

beforeAll(async () => {
  assertBuilt('device-sdk')
  hub = await startTestHub()
})
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()))
  for (const dir of dirs.splice(0)) dir.cleanup()
})
afterAll(() => hub.stop())

function client(creds: Credentials, options: Partial<DeviceClientOptions> = {}): DeviceClient {
  const made = new DeviceClient({ url: hub.wsUrl, deviceId: creds.deviceId, key: creds.key, backoff: { initialDelayMs: 50, maxDelayMs: 200 }, ...options })
  // errors while a device is disabled on purpose: the test asserts outcomes, not these
  made.on('error', () => undefined)
  clients.push(made)
  return made
}
const twin = async (id: string): Promise<Record<string, unknown>> => (await hub.api('GET', `/api/v1/devices/${id}/twin`)).body as Record<string, unknown>
const patchDesired = async (id: string, desired: TwinDocument): Promise<void> => {
  expect((await hub.api('PATCH', `/api/v1/devices/${id}/twin`, { desired })).status).toBe(200)
}
/** Ends the device's session from the hub (disable: 4003) and lets it back in once `whileAway` ran. */
async function away(id: string, device: DeviceClient, whileAway: () => Promise<void>): Promise<void> {
  const gone = new Promise<void>((resolve) => device.once('disconnected', () => resolve()))
  await hub.api('PATCH', `/api/v1/devices/${id}`, { disabled: true })
  await gone
  await whileAway()
  const back = new Promise<void>((resolve) => device.once('connected', () => resolve()))
  await hub.api('PATCH', `/api/v1/devices/${id}`, { disabled: false })
  await back
}

describe('client.twin against the hub', () => {
  it('fires desired once per new version: not again for the same version after a reconnect, once for three changes made offline', async () => {
    const creds = await hub.provision('sdk-tw-desired')
    const device = client(creds)
    const seen: DesiredTwin[] = []
    device.twin.on('desired', (state) => seen.push(state))
    expect(device.twin.version).toBeUndefined()
    await device.connect()
    await until(() => seen.length === 1, 'the first desired document')
    expect(seen).toStrictEqual([{ desired: {}, version: 0 }])
    await patchDesired('sdk-tw-desired', { setpoint: 20 })
    await until(() => seen.length === 2, 'the change')
    expect(seen[1]).toStrictEqual({ desired: { setpoint: 20 }, version: 1 })
    // a reconnect: the hub sends v1 again after hello, and nothing fires
    await away('sdk-tw-desired', device, async () => undefined)
    expect(device.connected).toBe(true)
    // three changes while away: the device sees only the latest, once
    await away('sdk-tw-desired', device, async () => {
      for (const setpoint of [21, 22, 23]) await patchDesired('sdk-tw-desired', { setpoint })
    })
    await until(() => seen.length === 3, 'the latest document after the reconnect')
    // a change after it still arrives, so nothing else was queued in between
    await patchDesired('sdk-tw-desired', { mode: 'eco' })
    await until(() => seen.length === 4, 'the next change')
    expect(seen.slice(2)).toStrictEqual([
      { desired: { setpoint: 23 }, version: 4 },
      { desired: { setpoint: 23, mode: 'eco' }, version: 5 },
    ])
    expect(device.twin.desired).toStrictEqual({ setpoint: 23, mode: 'eco' })
    expect(device.twin.version).toBe(5)
  })

  it('sends reports made offline after the next hello, merged and in order, and resolves each with the version', async () => {
    const creds = await hub.provision('sdk-tw-offline')
    const device = client(creds)
    const reports = [
      device.twin.report({ setpoint: 19, fan: { speed: 1, timer: 30 } }),
      device.twin.report({ fan: { timer: null, swing: true } }),
      device.twin.report({ setpoint: 21, firmware: '1.2.3' }),
    ]
    expect(device.twin.pendingReports).toBe(3)
    await device.connect()
    expect(await Promise.all(reports)).toStrictEqual([1, 1, 1])
    expect(await twin('sdk-tw-offline')).toMatchObject({ reported: { setpoint: 21, fan: { speed: 1, swing: true }, firmware: '1.2.3' }, reportedVersion: 1 })
    expect(device.twin.reportedVersion).toBe(1)
    // online, each report on its own
    expect(await device.twin.report({ firmware: '1.2.4' })).toBe(2)
  })

  it('never merges across a key deleted and then set to an object: the hub ends with what applying in turn gives', async () => {
    const creds = await hub.provision('sdk-tw-lossy')
    const device = client(creds)
    await device.connect()
    expect(await device.twin.report({ k: { a: 1 } })).toBe(1)
    await away('sdk-tw-lossy', device, async () => {
      void device.twin.report({ k: null })
      void device.twin.report({ k: { b: 1 } })
      await until(() => device.twin.pendingReports === 2, 'the reports queued')
    })
    await until(() => device.twin.pendingReports === 0, 'the reports answered')
    // in turn: {k: {a: 1}} -> {} -> {k: {b: 1}}; one merged patch would have left a: 1 in place
    expect(await twin('sdk-tw-lossy')).toMatchObject({ reported: { k: { b: 1 } }, reportedVersion: 3 })
  })

  it('rejects a report the hub refuses with its code, and one that breaks the twin rules before sending it', async () => {
    const creds = await hub.provision('sdk-tw-refused')
    const device = client(creds)
    await device.connect()
    expect(await device.twin.report({ big: 'x'.repeat(30_000) })).toBe(1)
    const refused = await device.twin.report({ more: 'y'.repeat(5000) }).catch((error: SdkError) => error)
    expect(refused).toMatchObject({ code: 'SDK_ERR_REPORT_REFUSED', reason: 'too_large' })
    const invalid = await device.twin.report({ $bad: 1 }).catch((error: SdkError) => error)
    expect(invalid).toMatchObject({ code: 'SDK_ERR_INVALID_REPORT', message: 'patch: key "$bad" starts with $ (reserved)' })
    expect(await twin('sdk-tw-refused')).toMatchObject({ reportedVersion: 1 })
    expect(await device.twin.report({ big: null })).toBe(2)
  })

  it('shares the device rate with telemetry: reports and readings at full pace are all accepted', async () => {
    const slow = await startTestHub({ FLEETGATE_DEVICE_RATE: '5' })
    try {
      const creds = await slow.provision('sdk-tw-pace')
      const device = new DeviceClient({ url: slow.wsUrl, deviceId: creds.deviceId, key: creds.key, batchMaxReadings: 1 })
      clients.push(device)
      await device.connect()
      const readings = Array.from({ length: 20 }, (_, n) => device.send({ n }))
      const reports: Array<Promise<number>> = []
      for (let i = 0; i < 5; i++) {
        reports.push(device.twin.report({ step: i }))
        await reports[i]
      }
      await Promise.all(readings)
      expect((await slow.api('GET', '/api/v1/devices/sdk-tw-pace/twin')).body).toMatchObject({ reported: { step: 4 }, reportedVersion: 5 })
    } finally {
      await slow.stop()
    }
  })

  it('with a FileQueueStore, reports made by a device process killed with SIGKILL go after its restart', async () => {
    const creds = await hub.provision('sdk-tw-killed')
    const made = tempDir('fleetgate-sdk-twins-')
    dirs.push(made)
    const script = join(made.path, 'device.mjs')
    writeFileSync(script, twinDeviceScript())
    const storePath = join(made.path, 'queue.jsonl')
    // first run: no hub to reach; three reports wait in the store, then the process is killed
    const nowhere = `ws://127.0.0.1:${await freePort()}/v1/connect`
    const first = runDevice(script, [nowhere, creds.deviceId, creds.key, storePath, 'offline'])
    await until(() => first.reports.some((r) => r['pending'] === 3), 'the first run to make its reports')
    first.child.kill('SIGKILL')
    expect(await first.exited).toBe('SIGKILL')
    expect((await twin('sdk-tw-killed'))['reportedVersion']).toBe(0)

    const second = runDevice(script, [hub.wsUrl, creds.deviceId, creds.key, storePath, 'send'])
    expect(await second.exited).toBe(0)
    expect(second.reports).toStrictEqual([{ pending: 3 }, { done: true, pending: 0, reportedVersion: 1 }])
    const after = await eventually(() => twin('sdk-tw-killed'), (t) => t['reportedVersion'] === 1)
    expect(after['reported']).toStrictEqual({ fw: '2.0.1', mode: 'eco', sensors: { t1: true } })
  }, 60_000)
})

/** A device process: `offline` makes three reports and waits to be killed; `send` connects and sends what its store holds. */
function twinDeviceScript(): string {
  return `${SDK_IMPORTS}const [url, deviceId, key, storePath, mode] = process.argv.slice(2)
const client = new DeviceClient({ url, deviceId, key, store: new FileQueueStore(storePath) })
client.on('error', () => {})
if (mode === 'offline') {
  for (const patch of [{ fw: '2.0.0', mode: 'eco' }, { sensors: { t1: true, t2: false } }, { fw: '2.0.1', sensors: { t2: null } }]) client.twin.report(patch).catch(() => {})
  report({ pending: client.twin.pendingReports })
  await new Promise(() => setInterval(() => {}, 60_000))
}
report({ pending: client.twin.pendingReports })
await client.connect()
while (client.twin.pendingReports > 0) await new Promise((resolve) => setTimeout(resolve, 10))
report({ done: true, pending: client.twin.pendingReports, reportedVersion: client.twin.reportedVersion })
await client.close()
`
}
