import { describe, expect, it } from 'vitest'
import { assertHubFeatures, consoleSuite, HUB_HAS } from '../support/console.js'
import { ADMIN_TOKEN } from '../support/hub.js'
import { eventually } from '../support/telemetry.js'
import type { RawDevice } from '../support/ws.js'

const suite = consoleSuite()

/** Answers every command the device gets with `{pong: name}` until its session ends. */
function answerCommands(ws: RawDevice): void {
  void (async () => {
    for (;;) {
      const frame = await ws.next(60_000).catch(() => undefined)
      if (frame === undefined) return
      if (frame.t === 'cmd') ws.send({ t: 'res', id: frame.id, ok: true, r: { pong: frame.n } })
    }
  })()
}

describe('console: fan-out, audit and hub pages', () => {
  it('fans a command out by tags and shows the batch counts until every command ended', async () => {
    for (const id of ['fan-1', 'fan-2']) answerCommands(await suite.devices.connect(suite.hub.wsUrl, await suite.hub.provision(id, { tags: { group: 'g1' } })))
    await suite.hub.provision('fan-3', { tags: { group: 'g1' } })
    await suite.hub.provision('fan-4', { tags: { group: 'g2' } })

    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Fan-out' }).click()
    expect(await tab.page.getByRole('button', { name: 'Send to all' }).isDisabled()).toBe(true)
    await tab.page.getByLabel('Tag 1 name').fill('group')
    await tab.page.getByLabel('Tag 1 value').fill('g1')
    await tab.page.getByLabel('Command name').fill('ping')
    await tab.page.getByRole('button', { name: 'Send to all' }).click()
    const batch = tab.page.locator('section.batch')
    await expect.poll(() => batch.getByTestId('batch-state').textContent()).toBe('Finished: 3 of 3 ended')
    const figure = (name: string) => batch.getByTestId(`batch-${name}`).textContent()
    expect([await figure('targeted'), await figure('succeeded'), await figure('expired'), await figure('failed')]).toEqual(['3', '2', '1', '0'])
    await tab.shot('fanout')
    await tab.close()
  })

  it('pages the audit log from the newest entry back, with filters on the page', async () => {
    const bulk = Array.from({ length: 120 }, (_, i) => ({ id: `audit-${String(i).padStart(3, '0')}` }))
    expect((await suite.hub.api('POST', '/api/v1/devices/bulk', { devices: bulk })).status).toBe(200)
    await suite.hub.api('PATCH', '/api/v1/devices/audit-119', { tags: { note: '<b>x</b>' } })
    // An audit entry is written after the reply: wait until the update's entry is the last one.
    const log = await eventually(
      async () => (await suite.hub.api('GET', '/api/v1/audit?after=0&limit=1000')).body.items as Array<{ seq: number; action: string }>,
      (items) => items[items.length - 1]?.action === 'device.update',
    )
    const lastSeq = log[log.length - 1]?.seq ?? 0

    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Audit' }).click()
    const rows = tab.page.getByTestId('audit-table').locator('tbody tr')
    await expect.poll(() => rows.count()).toBe(100)
    // Newest first.
    expect(await rows.first().locator('td').first().textContent()).toBe(String(lastSeq))
    expect(await rows.first().locator('td').nth(3).textContent()).toBe('device.update')
    await tab.page.getByLabel('Action').selectOption('device.update')
    await expect.poll(() => rows.count()).toBe(1)
    await tab.page.getByLabel('Action').selectOption('')
    await tab.page.getByLabel('Target contains').fill('audit-11')
    await expect.poll(() => rows.count()).toBe(11)
    await tab.shot('audit')
    await tab.page.getByLabel('Target contains').fill('')
    await tab.page.getByRole('button', { name: 'Older' }).click()
    await expect.poll(() => rows.first().locator('td').first().textContent()).toBe(String(lastSeq - 100))
    expect(await rows.count()).toBe(lastSeq - 100)
    expect(await tab.page.getByRole('button', { name: 'Older' }).isDisabled()).toBe(true)
    await tab.page.getByRole('button', { name: 'Newer' }).click()
    await expect.poll(() => rows.first().locator('td').first().textContent()).toBe(String(lastSeq))
    await tab.close()
  })

  it('shows readiness and the key figures from /metrics, readings/s from two reads; no nodes section on one node', async () => {
    const ws = await suite.devices.connect(suite.hub.wsUrl, await suite.hub.provision('hub-figures'))
    for (let s = 1; s <= 5; s++) ws.send({ t: 'tm', s, m: { v: s } })
    await ws.untilAck(5)
    const sessions = (await suite.hub.api('GET', '/api/v1/devices?online=true&limit=1000')).body.items.length as number

    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Hub' }).click()
    await expect.poll(() => tab.page.getByTestId('readiness').textContent()).toBe('Ready')
    const figures = tab.page.getByTestId('hub-figures')
    const value = (label: string) => figures.locator('div').filter({ has: tab.page.getByText(label, { exact: true }) }).locator('dd').textContent()
    await expect.poll(() => value('Device sessions')).toBe(String(sessions))
    expect(await value('Readings accepted')).toBe('5')
    expect(await value('InfluxDB lag')).toBe('not exposed by this hub')
    // The second read comes 5 s after the first; then the rate is a number.
    await expect.poll(() => value('Readings per second'), { timeout: 12_000 }).toMatch(/^\d+\.\d \/s$/)
    await assertHubFeatures(suite.hub.base, ADMIN_TOKEN, 'hub-figures')
    if (!HUB_HAS.nodes) expect(await tab.page.getByTestId('nodes').count()).toBe(0)
    await tab.shot('hub')
    await tab.close()
  })
})
