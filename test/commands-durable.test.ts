import { afterAll, describe, expect, it } from 'vitest'
import { api, startHubProcess, stopHubProcess, tempDir, testEnv, type HubProcess } from './support/hub.js'
import { eventually } from './support/telemetry.js'
import { connectDevice, type RawDevice } from './support/ws.js'

describe('queued commands across hub restarts', () => {
  const running: HubProcess[] = []
  const dirs: Array<{ cleanup(): void }> = []
  afterAll(async () => {
    for (const hub of running) await stopHubProcess(hub)
    for (const dir of dirs) dir.cleanup()
  })

  it.each(['SIGTERM', 'SIGKILL'] as const)('delivers commands queued before a %s, in order, once the device connects', async (signal) => {
    const data = tempDir()
    dirs.push(data)
    const env = testEnv(data.path)
    const first = await startHubProcess(env)
    running.push(first)
    const created = await api(first.base, 'POST', '/api/v1/devices', { id: 'sleeper' })
    const ids: string[] = []
    for (const name of ['a', 'b', 'c']) ids.push((await api(first.base, 'POST', '/api/v1/devices/sleeper/commands', { name, ttlMs: 120_000 })).body.id)
    // One that expires while the hub is down: it must never be delivered.
    const shortLived = (await api(first.base, 'POST', '/api/v1/devices/sleeper/commands', { name: 'stale', ttlMs: 300 })).body.id
    expect(await stopHubProcess(first, signal)).toBe(signal === 'SIGTERM' ? 0 : null)
    await new Promise((resolve) => setTimeout(resolve, 400))

    const second = await startHubProcess(env)
    running.push(second)
    const ws: RawDevice = await connectDevice(second.wsUrl, { deviceId: 'sleeper', keyType: 'hmac', key: created.body.key })
    await ws.opening()
    const delivered = [await ws.next(), await ws.next(), await ws.next()]
    expect(delivered.map((f) => (f.t === 'cmd' ? f.n : f.t))).toEqual(['a', 'b', 'c'])
    for (const frame of delivered) if (frame.t === 'cmd') ws.send({ t: 'res', id: frame.id, ok: true })
    for (const id of ids) {
      await eventually(() => api(second.base, 'GET', `/api/v1/devices/sleeper/commands/${id}`), (r) => r.body.status === 'succeeded')
    }
    expect((await api(second.base, 'GET', `/api/v1/devices/sleeper/commands/${shortLived}`)).body.status).toBe('expired')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(ws.frames).toEqual([])
    ws.close()
  }, 60_000)
})

describe('fan-out to 1,000 connected devices', () => {
  it('ends with every record succeeded', async () => {
    const data = tempDir()
    const hub = await startHubProcess(testEnv(data.path))
    let restarted: HubProcess | undefined
    const sockets: RawDevice[] = []
    try {
      const bulk = await api(hub.base, 'POST', '/api/v1/devices/bulk', {
        devices: Array.from({ length: 1000 }, (_, i) => ({ id: `fleet-${i}`, tags: { fleet: 'big' } })),
      })
      expect(bulk.body.created).toHaveLength(1000)
      for (let i = 0; i < 1000; i += 100) {
        const chunk = bulk.body.created.slice(i, i + 100) as Array<{ id: string; key: string }>
        sockets.push(...(await Promise.all(chunk.map((d) => connectDevice(hub.wsUrl, { deviceId: d.id, keyType: 'hmac', key: d.key })))))
      }
      for (const ws of sockets) {
        void (async () => {
          await ws.opening()
          const cmd = await ws.next(30_000)
          if (cmd.t === 'cmd') ws.send({ t: 'res', id: cmd.id, ok: true, r: cmd.p ?? null })
        })()
      }
      const started = await api(hub.base, 'POST', '/api/v1/commands', { target: { tags: { fleet: 'big' } }, name: 'ping', params: 7 })
      expect(started.body.targeted).toBe(1000)
      const done = await eventually(() => api(hub.base, 'GET', `/api/v1/commands/${started.body.batch}`), (r) => r.body.succeeded === 1000, 30_000)
      expect(done.body).toMatchObject({ targeted: 1000, queued: 0, sent: 0, succeeded: 1000, failed: 0, timeout: 0, expired: 0 })
      // A batch of an earlier run is counted from its stored records.
      expect(await stopHubProcess(hub, 'SIGTERM')).toBe(0)
      restarted = await startHubProcess(testEnv(data.path))
      expect((await api(restarted.base, 'GET', `/api/v1/commands/${started.body.batch}`)).body).toEqual(done.body)
    } finally {
      for (const ws of sockets) ws.close()
      await stopHubProcess(hub)
      if (restarted !== undefined) await stopHubProcess(restarted)
      data.cleanup()
    }
  }, 90_000)
})
