// docs/twins.md: an acknowledged twin change (REST 200, `twa`) survives kill -9 of the hub. A real
// hub process, killed with SIGKILL right after the answer, then started again on its data dir.
import { afterEach, describe, expect, it } from 'vitest'
import { api, HubProcesses, testEnv } from './support/hub.js'
import { connectDevice } from './support/ws.js'

const hubs = new HubProcesses()
afterEach(() => hubs.cleanup())

describe('twin changes across kill -9', () => {
  it('keeps every desired change answered 200 and every report answered twa', async () => {
    const env = testEnv(hubs.dir())
    const first = await hubs.start(env)
    const created = await api(first.base, 'POST', '/api/v1/devices', { id: 'durable' })
    const creds = { deviceId: 'durable', keyType: 'hmac' as const, key: created.body.key as string }
    const ws = await connectDevice(first.wsUrl, creds)
    expect(await ws.next()).toMatchObject({ t: 'hello' })
    expect(await ws.next()).toStrictEqual({ t: 'twd', v: 0, d: {} })
    for (let i = 1; i <= 20; i++) expect((await api(first.base, 'PATCH', '/api/v1/devices/durable/twin', { desired: { step: i, [`k${i}`]: true } })).status).toBe(200)
    for (let i = 1; i <= 20; i++) expect(await ws.next()).toMatchObject({ t: 'twd', v: i })
    for (let i = 1; i <= 20; i++) ws.send({ t: 'twr', id: `r${i}`, p: { step: i, [`k${i}`]: true } })
    for (let i = 1; i <= 19; i++) expect(await ws.next()).toStrictEqual({ t: 'twa', id: `r${i}`, v: i })
    // the last answer, then at once the kill
    expect(await ws.next()).toStrictEqual({ t: 'twa', id: 'r20', v: 20 })
    first.child.kill('SIGKILL')
    expect(await first.exited).toBe(null)
    ws.close()

    const second = await hubs.start(env)
    const twin = (await api(second.base, 'GET', '/api/v1/devices/durable/twin')).body
    const expected = Object.fromEntries([['step', 20], ...Array.from({ length: 20 }, (_, i) => [`k${i + 1}`, true])])
    expect(twin).toMatchObject({ desired: expected, desiredVersion: 20, reported: expected, reportedVersion: 20, delta: {} })
    const again = await connectDevice(second.wsUrl, creds)
    expect(await again.next()).toMatchObject({ t: 'hello' })
    expect(await again.next()).toStrictEqual({ t: 'twd', v: 20, d: expected })
    again.close()
  }, 60_000)
})
