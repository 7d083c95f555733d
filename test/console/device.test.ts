import { describe, expect, it } from 'vitest'
import { assertHubFeatures, consoleSuite, HUB_HAS, unlabelledControls } from '../support/console.js'
import { ADMIN_TOKEN } from '../support/hub.js'
import { startInfluxd, type Influxd } from '../support/influxd.js'
import { eventually } from '../support/telemetry.js'
import { connectRaw, tokenFor, type Credentials, type RawDevice } from '../support/ws.js'

const HOSTILE = '<img src=x onerror="window.__pwned=1">'

let influx: Influxd | undefined
const suite = consoleSuite(
  async () => {
    influx = await startInfluxd()
    return { FLEETGATE_INFLUX_URL: influx.url }
  },
  () => influx?.destroy(),
)

/** Sends readings and waits for their acks. */
async function send(ws: RawDevice, readings: ReadonlyArray<{ ts: number; m: Record<string, number | string | boolean> }>, firstSeq: number): Promise<void> {
  readings.forEach((reading, i) => ws.send({ t: 'tm', s: firstSeq + i, ts: reading.ts, m: reading.m }))
  await ws.untilAck(firstSeq + readings.length - 1)
}

/** The device's points as the telemetry API answers them. */
const pointCount = async (id: string, from: number): Promise<number> =>
  ((await suite.hub.api('GET', `/api/v1/devices/${id}/telemetry?from=${new Date(from).toISOString()}`)).body?.points?.length as number | undefined) ?? 0

describe('console: a device page', () => {
  it('shows details, latest values with age (stale marked), a chart per numeric metric, and device text as text', async () => {
    const creds = await suite.hub.provision('dev-view', { tags: { site: 'oslo' } })
    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    const now = Date.now()
    await send(ws, [{ ts: now - 600_000, m: { old: 1 } }], 1)
    await send(ws, [20, 21, 22].map((t, i) => ({ ts: now - 30_000 + i * 10_000, m: { temp: t, note: HOSTILE, on: i % 2 === 0 } })), 2)
    await eventually(() => pointCount('dev-view', now - 3_600_000), (n) => n === 4)

    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.go('#/devices/dev-view')
    await expect.poll(() => tab.page.getByTestId('device-online').textContent()).toBe('Online')
    const latest = (metric: string) => tab.page.locator(`tr[data-metric="${metric}"]`)
    await expect.poll(() => latest('temp').locator('.value').textContent()).toBe('22')
    expect(await latest('note').locator('.value').textContent()).toBe(HOSTILE)
    expect(await latest('on').locator('.value').textContent()).toBe('true')
    expect(await latest('temp').locator('.state').textContent()).toBe('Fresh')
    expect(await latest('old').locator('.state').textContent()).toBe('Stale')
    expect(await latest('old').locator('td').nth(1).textContent()).toBe('10 min ago')
    // One chart per numeric metric, drawn on a canvas with every point of the range.
    const charts = tab.page.locator('figure.chart')
    await expect.poll(() => charts.locator('figcaption').allTextContents()).toEqual(['old', 'temp'])
    expect(await tab.page.locator('.chart-box[aria-label^="temp"]').getAttribute('data-points')).toBe('4')
    expect(await charts.locator('canvas').count()).toBe(2)
    // Hostile metric text made no element and ran nothing.
    expect(await tab.page.locator('img').count()).toBe(0)
    expect(await tab.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined()

    await assertHubFeatures(suite.hub.base, ADMIN_TOKEN, 'dev-view')
    if (!HUB_HAS.twins) expect(await tab.page.getByTestId('twin-absent').textContent()).toContain('This hub has no device twins')
    if (HUB_HAS.events) {
      await expect.poll(() => tab.page.getByTestId('live-state').getAttribute('data-state')).toBe('live')
      expect(await tab.page.getByTestId('range-note').textContent()).toContain('; live readings are appended')
    } else {
      expect(await tab.page.getByTestId('live-state').getAttribute('data-state')).toBe('unavailable')
      expect(await tab.page.getByTestId('range-note').textContent()).toContain('live readings need the event stream')
    }
    expect(await unlabelledControls(tab.page)).toEqual([])
    await tab.shot('device')
    await tab.page.getByRole('button', { name: '24 h' }).click()
    await expect.poll(() => tab.page.getByRole('button', { name: '24 h' }).getAttribute('aria-pressed')).toBe('true')
    // 24 h is read aggregated: the hub answers means per 5 minutes (docs/rest.md `every`).
    const intervals = new Set([now - 600_000, now - 30_000, now - 20_000, now - 10_000].map((ts) => Math.floor(ts / 300_000))).size
    await expect.poll(() => tab.page.getByTestId('range-note').textContent()).toBe(`${intervals} points, mean per 5m; live readings are appended`)
    await tab.close()
  })

  it('follows a device live: connection history, readings appended to the chart and the latest values, no reload', async () => {
    const creds = await suite.hub.provision('dev-live')
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    // The page's own loads end with the older latest values (`fn=last`): from then on, only the stream.
    const loaded = tab.page.waitForResponse((response) => response.url().includes('/telemetry?') && response.url().includes('fn=last'))
    await tab.go('#/devices/dev-live')
    await loaded
    await expect.poll(() => tab.page.getByTestId('live-state').getAttribute('data-state')).toBe('live')
    const history = tab.page.locator('ol.history li')
    expect(await history.count()).toBe(0)
    const reads: string[] = []
    tab.page.on('request', (request) => reads.push(request.url()))

    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    await expect.poll(() => history.allTextContents()).toEqual([expect.stringMatching(/^Connected /)])
    await expect.poll(() => tab.page.getByTestId('device-online').textContent()).toBe('Online')
    const now = Date.now()
    await send(ws, [{ ts: now - 2000, m: { temp: 20.5 } }, { ts: now - 1000, m: { temp: 21.5, mode: 'eco' } }], 1)
    const latest = (metric: string) => tab.page.locator(`tr[data-metric="${metric}"] .value`)
    await expect.poll(() => latest('temp').textContent()).toBe('21.5')
    expect(await latest('mode').textContent()).toBe('eco')
    const chart = tab.page.locator('.chart-box[aria-label^="temp"]')
    await expect.poll(() => chart.getAttribute('data-points')).toBe('2')
    await send(ws, [{ ts: now, m: { temp: 22 } }], 3)
    await expect.poll(() => chart.getAttribute('data-points')).toBe('3')
    await expect.poll(() => latest('temp').textContent()).toBe('22')

    ws.close()
    await expect.poll(() => history.allTextContents()).toEqual([expect.stringMatching(/^Disconnected /), expect.stringMatching(/^Connected /)])
    await expect.poll(() => tab.page.getByTestId('device-online').textContent()).toBe('Offline')
    // All of it came over the one event stream opened with the page: no page load, no telemetry read.
    expect(reads).toEqual([])
    await tab.close()
  })

  it('reads 7 days as means per 15 minutes, aggregated by the hub', async () => {
    const creds = await suite.hub.provision('dev-week')
    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    const now = Date.now()
    // Two readings in each 15-minute interval of the week (epoch-aligned, as the hub aligns them), in batches.
    const QUARTER = 900_000
    const first = Math.ceil((now - 7 * 86_400_000) / QUARTER) * QUARTER
    const readings: Array<{ ts: number; m: { temp: number } }> = []
    for (let start = first; start + 2000 < now - 60_000; start += QUARTER) {
      readings.push({ ts: start + 1000, m: { temp: 20 } }, { ts: start + 2000, m: { temp: 21 } })
    }
    const intervals = readings.length / 2
    for (let i = 0; i < readings.length; i += 500) {
      ws.send({ t: 'tb', s: i / 500 + 1, r: readings.slice(i, i + 500) })
      await ws.untilAck(i / 500 + 1)
    }
    const stored = async (): Promise<number> =>
      ((await suite.hub.api('GET', `/api/v1/devices/dev-week/telemetry?from=${new Date(first).toISOString()}&limit=10000`)).body.points as unknown[]).length
    await eventually(stored, (n) => n === readings.length)
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.go('#/devices/dev-week')
    await tab.page.getByRole('button', { name: '7 d' }).click()
    await expect.poll(() => tab.page.getByTestId('range-note').textContent()).toBe(`${intervals.toLocaleString('en-US')} points, mean per 15m; live readings are appended`)
    expect(await tab.page.locator('.chart-box[aria-label^="temp"]').getAttribute('data-points')).toBe(String(intervals))
    await tab.shot('device-week')
    await tab.close()
  })

  it('sends a command from the form; it reaches the device and its result shows, as text', async () => {
    const creds = await suite.hub.provision('dev-cmd')
    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.go('#/devices/dev-cmd')
    await tab.page.getByLabel('Command name').fill('set_setpoint')
    await tab.page.getByLabel('Params (JSON, optional)').fill('{"c": 19')
    expect(await tab.page.getByRole('button', { name: 'Send command' }).isDisabled()).toBe(true)
    await tab.page.getByLabel('Params (JSON, optional)').fill('{"c": 19}')
    await tab.page.getByRole('button', { name: 'Send command' }).click()

    const frame = await ws.next()
    if (frame.t !== 'cmd') throw new Error(`expected a command, got ${JSON.stringify(frame)}`)
    expect(frame.n).toBe('set_setpoint')
    expect(frame.p).toEqual({ c: 19 })
    const row = tab.page.locator(`tr[data-command="${frame.id}"]`)
    await expect.poll(() => row.getByTestId('command-status').textContent()).toBe('sent')
    // With the event stream, the change comes live: the page reads the command list no more.
    const reads: string[] = []
    tab.page.on('request', (request) => {
      if (request.method() === 'GET' && request.url().includes('/commands')) reads.push(request.url())
    })
    ws.send({ t: 'res', id: frame.id, ok: true, r: { applied: 19, note: HOSTILE } })
    await expect.poll(() => row.getByTestId('command-status').textContent()).toBe('succeeded')
    if (HUB_HAS.events) expect(reads).toEqual([])
    expect(JSON.parse((await row.getByTestId('command-result').locator('pre').textContent()) ?? '')).toEqual({ applied: 19, note: HOSTILE })
    expect(await tab.page.locator('img').count()).toBe(0)
    await tab.shot('device-command')

    // Offline without a TTL: the hub's 409 is said plainly.
    ws.close()
    await eventually(async () => (await suite.hub.api('GET', '/api/v1/devices/dev-cmd')).body.online as boolean, (online) => !online)
    await tab.page.getByRole('button', { name: 'Send command' }).click()
    await expect.poll(() => tab.page.locator('.command-form [role=alert]').textContent()).toBe('dev-cmd is offline. Give a TTL to queue the command until it connects.')
    await tab.close()
  })

  it('rotates a key with disconnect: the session drops, the new key is shown once and works, the old one does not', async () => {
    const creds = await suite.hub.provision('dev-rot')
    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.go('#/devices/dev-rot')
    await tab.page.getByRole('button', { name: 'Rotate key…' }).click()
    const dialog = tab.page.getByRole('dialog')
    expect(await dialog.getByRole('heading').textContent()).toBe('Rotate the key of "dev-rot"?')
    expect(await dialog.getByLabel('Disconnect its live session now (close 4003)').isChecked()).toBe(true)
    await dialog.getByLabel('Grace period, seconds').fill('soon')
    expect(await dialog.getByRole('alert').textContent()).toBe('Grace: whole seconds from 0 to 2592000')
    expect(await dialog.getByRole('button', { name: 'Rotate key' }).isDisabled()).toBe(true)
    await dialog.getByLabel('Grace period, seconds').fill('0')
    await dialog.getByRole('button', { name: 'Rotate key' }).click()
    expect((await ws.closed).code).toBe(4003)
    const key = await tab.page.getByTestId('secret-value').inputValue()
    expect(key).not.toBe(creds.key)
    const rotated: Credentials = { ...creds, key }
    const fresh = await connectRaw(suite.hub.wsUrl, { token: await tokenFor(rotated) })
    expect(fresh.ok).toBe(true)
    if (fresh.ok) suite.devices.track(fresh.ws)
    const old = await connectRaw(suite.hub.wsUrl, { token: await tokenFor(creds) })
    expect(old.ok ? 101 : old.status).toBe(401)
    await tab.close()
  })

  it('disables and enables a device, each after a confirmation that names it', async () => {
    const creds = await suite.hub.provision('dev-dis')
    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.go('#/devices/dev-dis')
    await tab.page.getByRole('button', { name: 'Disable…' }).click()
    expect(await tab.page.getByRole('dialog').getByRole('heading').textContent()).toBe('Disable "dev-dis"?')
    await tab.page.getByRole('dialog').getByRole('button', { name: 'Disable device' }).click()
    expect((await ws.closed).code).toBe(4003)
    await expect.poll(() => tab.page.getByTestId('device-disabled').count()).toBe(1)
    expect((await suite.hub.api('GET', '/api/v1/devices/dev-dis')).body.disabled).toBe(true)
    const refused = await connectRaw(suite.hub.wsUrl, { token: await tokenFor(creds) })
    expect(refused.ok ? 101 : refused.status).toBe(401)

    await tab.page.getByRole('button', { name: 'Enable…' }).click()
    expect(await tab.page.getByRole('dialog').getByRole('heading').textContent()).toBe('Enable "dev-dis"?')
    await tab.page.getByRole('dialog').getByRole('button', { name: 'Enable device' }).click()
    await expect.poll(() => tab.page.getByTestId('device-disabled').count()).toBe(0)
    await suite.devices.connect(suite.hub.wsUrl, creds)
    await tab.close()
  })

  it('deletes a device only once its id is typed in the confirmation', async () => {
    const creds = await suite.hub.provision('dev-del')
    const ws = await suite.devices.connect(suite.hub.wsUrl, creds)
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.go('#/devices/dev-del')
    await tab.page.getByRole('button', { name: 'Delete…' }).click()
    const dialog = tab.page.getByRole('dialog')
    expect(await dialog.getByRole('heading').textContent()).toBe('Delete "dev-del"?')
    const confirm = dialog.getByRole('button', { name: 'Delete device' })
    expect(await confirm.isDisabled()).toBe(true)
    await dialog.getByLabel('Type dev-del to confirm').fill('dev-de')
    expect(await confirm.isDisabled()).toBe(true)
    // Cancel keeps the device.
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    expect((await suite.hub.api('GET', '/api/v1/devices/dev-del')).status).toBe(200)
    await tab.page.getByRole('button', { name: 'Delete…' }).click()
    await tab.page.getByRole('dialog').getByLabel('Type dev-del to confirm').fill('dev-del')
    await tab.page.getByRole('dialog').getByRole('button', { name: 'Delete device' }).click()
    await expect.poll(() => tab.page.url()).toBe(`${suite.hub.base}/console/#/fleet`)
    expect((await ws.closed).code).toBe(4003)
    expect((await suite.hub.api('GET', '/api/v1/devices/dev-del')).status).toBe(404)
    await tab.close()
  })
})
