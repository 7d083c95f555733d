// The SDK's command handlers against the real hub (docs/protocol.md, docs/rest.md): results, failures, unknown
// names, and a result that waits out a lost session and is resent after the reconnect.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DeviceClient } from '@fleetgate/device-sdk'
import { startTestHub, type TestHub } from './support/hub.js'
import { eventually } from './support/telemetry.js'

describe('DeviceClient.handle against the hub', () => {
  let hub: TestHub
  const clients: DeviceClient[] = []
  const client = async (id: string): Promise<DeviceClient> => {
    const credentials = await hub.provision(id)
    const device = new DeviceClient({
      url: hub.wsUrl,
      deviceId: id,
      key: credentials.key,
      backoff: { initialDelayMs: 50, maxDelayMs: 200 },
    })
    device.on('error', () => undefined)
    clients.push(device)
    return device
  }

  beforeAll(async () => {
    hub = await startTestHub()
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()))
  })
  afterAll(async () => {
    await hub?.stop()
  })

  it('answers with the handler result, a thrown error, or unknown_command', async () => {
    const device = await client('handler-1')
    device.handle('set_setpoint', async (params) => ({ applied: (params as { c: number }).c }))
    device.handle('reboot', () => {
      throw new Error('not while heating')
    })
    await device.connect()
    const ok = await hub.api('POST', '/api/v1/devices/handler-1/commands', { name: 'set_setpoint', params: { c: 19 } })
    expect(ok).toMatchObject({ status: 200, body: { status: 'succeeded', result: { applied: 19 } } })
    const failed = await hub.api('POST', '/api/v1/devices/handler-1/commands', { name: 'reboot' })
    expect(failed).toMatchObject({ status: 200, body: { status: 'failed', error: 'not while heating' } })
    const unknown = await hub.api('POST', '/api/v1/devices/handler-1/commands', { name: 'self_destruct' })
    expect(unknown).toMatchObject({ status: 200, body: { status: 'failed', error: 'unknown_command' } })
  })

  it('resends a result that finished while the session was down', async () => {
    const device = await client('handler-2')
    let release: () => void = () => undefined
    const started = new Promise<void>((resolve) => {
      device.handle('slow', () => {
        resolve()
        return new Promise((done) => (release = () => done('finally')))
      })
    })
    await device.connect()
    const sent = await hub.api('POST', '/api/v1/devices/handler-2/commands', { name: 'slow', wait: false, timeoutMs: 30_000 })
    expect(sent.body.status).toBe('sent')
    await started
    // Take the session away while the handler runs: disabled devices are disconnected with 4003.
    await hub.api('PATCH', '/api/v1/devices/handler-2', { disabled: true })
    await eventually(() => device.connected, (connected) => !connected)
    release()
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect((await hub.api('GET', `/api/v1/devices/handler-2/commands/${sent.body.id}`)).body.status).toBe('sent')
    await hub.api('PATCH', '/api/v1/devices/handler-2', { disabled: false })
    const done = await eventually(
      () => hub.api('GET', `/api/v1/devices/handler-2/commands/${sent.body.id}`),
      (answer) => answer.body.status !== 'sent',
    )
    expect(done.body).toMatchObject({ status: 'succeeded', result: 'finally' })
  })
})
