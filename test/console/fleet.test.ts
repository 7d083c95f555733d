import { describe, expect, it } from 'vitest'
import { assertHubFeatures, consoleSuite, HUB_HAS, PHONE, unlabelledControls } from '../support/console.js'
import { ADMIN_TOKEN } from '../support/hub.js'
import { connectDevice } from '../support/ws.js'

const HOSTILE = '<img src=x onerror="window.__pwned=1">'

const suite = consoleSuite()

describe('console: sign-in and the fleet', () => {
  it('refuses an unknown token, signs in, shows the fleet with online state and counts, and signs out', async () => {
    const online = await suite.hub.provision('fleet-a1', { tags: { site: 'paris' } })
    await suite.hub.provision('fleet-a2', { tags: { site: 'berlin' } })
    const later = await suite.hub.provision('fleet-a3')
    await suite.devices.connect(suite.hub.wsUrl, online)

    const tab = await suite.browser.open(suite.hub.base)
    // docs/console.md: `/` redirects to the console.
    expect(tab.page.url()).toBe(`${suite.hub.base}/console/`)
    const token = tab.page.getByLabel('Operator token')
    await token.fill('not-a-token-0123456789')
    await token.press('Enter')
    await expect.poll(() => tab.page.getByRole('alert').textContent()).toBe('The hub does not know this token.')
    await tab.signIn(ADMIN_TOKEN)

    const row = (id: string) => tab.page.locator(`tr[data-device="${id}"]`)
    await expect.poll(() => tab.page.locator('tbody tr[data-device]').count()).toBe(3)
    expect(await row('fleet-a1').getByTestId('online').textContent()).toBe('Online')
    expect(await row('fleet-a2').getByTestId('online').textContent()).toBe('Offline')
    expect(await row('fleet-a1').locator('.tag').allTextContents()).toEqual(['site=paris'])
    await expect.poll(() => tab.page.getByTestId('count-total').textContent()).toBe('3')
    await expect.poll(() => tab.page.getByTestId('count-online').textContent()).toBe('1')
    expect(await unlabelledControls(tab.page)).toEqual([])

    await assertHubFeatures(suite.hub.base, ADMIN_TOKEN, 'fleet-a1')
    const live = tab.page.getByTestId('live-state').first()
    if (HUB_HAS.events) {
      await expect.poll(() => live.getAttribute('data-state')).toBe('live')
      const session = await suite.devices.connect(suite.hub.wsUrl, later)
      await expect.poll(() => row('fleet-a3').getByTestId('online').textContent()).toBe('Online')
      session.close()
      await expect.poll(() => row('fleet-a3').getByTestId('online').textContent()).toBe('Offline')
    } else {
      // No event stream yet: the page says so, once, and does not poll in its place.
      await expect.poll(() => live.getAttribute('data-state')).toBe('unavailable')
      expect(await live.textContent()).toContain('Live updates unavailable')
      const requests: string[] = []
      tab.page.on('request', (request) => requests.push(request.url()))
      await suite.devices.connect(suite.hub.wsUrl, later)
      await tab.page.waitForTimeout(1500)
      expect(requests).toEqual([])
      expect(await row('fleet-a3').getByTestId('online').textContent()).toBe('Offline')
    }
    await tab.shot('fleet')

    // The token lives in this tab's sessionStorage only: no cookie, no localStorage.
    expect(await tab.page.evaluate(() => [sessionStorage.length, localStorage.length, document.cookie])).toEqual([1, 0, ''])
    expect(await suite.browser.context.cookies()).toEqual([])
    await tab.page.getByRole('button', { name: 'Sign out' }).click()
    await expect.poll(() => tab.page.getByLabel('Operator token').count()).toBe(1)
    expect(await tab.page.evaluate(() => sessionStorage.length)).toBe(0)
    await tab.close()
  })

  it('searches by id prefix from a cursor, and filters by tag and online state', async () => {
    const ids = ['srch-ab1', 'srch-ab2', 'srch-ac1', 'srch-b1', 'srchz']
    for (const [i, id] of ids.entries()) await suite.hub.provision(id, { tags: { zone: i % 2 === 0 ? 'north' : 'south' } })
    await suite.devices.connect(suite.hub.wsUrl, await suite.hub.provision('srch-ab3', { tags: { zone: 'north' } }))

    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    const shown = async (): Promise<string[]> => tab.page.locator('tbody tr[data-device]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-device') ?? ''))
    await expect.poll(() => tab.page.locator('tbody tr[data-device]').count()).toBeGreaterThan(0)
    const search = tab.page.getByLabel('Search by id')
    const requests: string[] = []
    tab.page.on('request', (request) => requests.push(request.url()))
    await search.fill('srch-ab')
    await expect.poll(shown).toEqual(['srch-ab1', 'srch-ab2', 'srch-ab3'])
    // One page read from the cursor just below the prefix, not a scan of the fleet.
    const listing = requests.filter((url) => url.includes('/api/v1/devices?') && url.includes('limit=50'))
    expect(listing).toHaveLength(1)
    expect(new URL(listing[0] ?? '').searchParams.get('after')).toBe(`srch-aa${'z'.repeat(57)}`)

    await tab.page.getByLabel('Tags').fill('zone:north')
    await tab.page.getByLabel('Tags').press('Enter')
    await expect.poll(shown).toEqual(['srch-ab1', 'srch-ab3'])
    await tab.page.getByLabel('State').selectOption('true')
    await expect.poll(shown).toEqual(['srch-ab3'])
    await search.fill('srch-')
    await tab.page.getByLabel('State').selectOption('all')
    await expect.poll(shown).toEqual(['srch-ab1', 'srch-ab3', 'srch-ac1'])
    await search.fill('no-such')
    await expect.poll(() => tab.page.getByText('No device matches.').count()).toBe(1)
    await tab.close()
  })

  it('pages with the cursor: next and previous', async () => {
    for (let i = 0; i < 30; i++) await suite.hub.provision(`page-${String(i).padStart(2, '0')}`)
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.page.getByLabel('Search by id').fill('page-')
    await tab.page.getByLabel('Per page').selectOption('25')
    const first = (): Promise<string | null> => tab.page.locator('tbody tr[data-device]').first().getAttribute('data-device')
    await expect.poll(first).toBe('page-00')
    expect(await tab.page.locator('tbody tr[data-device]').count()).toBe(25)
    await tab.page.getByRole('button', { name: 'Next' }).click()
    await expect.poll(first).toBe('page-25')
    expect(await tab.page.locator('tbody tr[data-device]').count()).toBe(5)
    expect(await tab.page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true)
    await tab.page.getByRole('button', { name: 'Previous' }).click()
    await expect.poll(first).toBe('page-00')
    await tab.close()
  })

  it('provisions a device and shows its key once, with a copy button and a warning; the key connects', async () => {
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.page.getByRole('button', { name: 'Provision device' }).click()
    await tab.page.getByLabel('Device id').fill('prov-1')
    await tab.page.getByLabel('Tag 1 name').fill('site')
    await tab.page.getByLabel('Tag 1 value').fill('lyon')
    await tab.page.getByRole('button', { name: 'Create device' }).click()
    const secret = tab.page.getByTestId('secret')
    await expect.poll(() => secret.count()).toBe(1)
    expect(await secret.getByRole('alert').textContent()).toContain('Shown only this once')
    const key = await tab.page.getByTestId('secret-value').inputValue()
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    await secret.getByRole('button', { name: 'Copy key' }).click()
    await expect.poll(() => secret.getByRole('status').textContent()).toMatch(/^(Copied to the clipboard|Select the key and copy it \(Ctrl\+C\))$/)
    await tab.shot('provision-key')

    const ws = suite.devices.track(await connectDevice(suite.hub.wsUrl, { deviceId: 'prov-1', keyType: 'hmac', key }))
    expect((await ws.next()).t).toBe('hello')
    const created = await suite.hub.api('GET', '/api/v1/devices/prov-1')
    expect(created.body.tags).toEqual({ site: 'lyon' })

    await secret.getByRole('button', { name: 'Done, I stored it' }).click()
    expect(await tab.page.getByTestId('secret').count()).toBe(0)
    expect(await tab.page.content()).not.toContain(key)
    await tab.close()
  })

  it('renders hostile tags as text: no element is made from them', async () => {
    await suite.hub.provision('hostile-tags', { tags: { note: HOSTILE } })
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    await tab.page.getByLabel('Search by id').fill('hostile-tags')
    const chip = tab.page.locator('tr[data-device="hostile-tags"] .tag')
    await expect.poll(() => chip.textContent()).toBe(`note=${HOSTILE}`)
    expect(await tab.page.locator('img').count()).toBe(0)
    await tab.go('#/devices/hostile-tags')
    await expect.poll(() => tab.page.locator('.device .tag').textContent()).toBe(`note=${HOSTILE}`)
    expect(await tab.page.locator('img').count()).toBe(0)
    expect(await tab.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined()
    await tab.close()
  })

  it('reads on a 390-px phone: the page does not overflow, the table scrolls in its own region', async () => {
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN, PHONE)
    await expect.poll(() => tab.page.locator('tbody tr[data-device]').count()).toBeGreaterThan(0)
    const widths = await tab.page.evaluate(() => {
      const wrap = document.querySelector('.table-wrap')
      return { page: document.documentElement.scrollWidth, wrap: wrap?.clientWidth ?? 0, table: wrap?.scrollWidth ?? 0 }
    })
    expect(widths.page).toBeLessThanOrEqual(PHONE.width)
    expect(widths.table).toBeGreaterThan(widths.wrap)
    await tab.shot('fleet-phone')
    await tab.close()
  })

  it('is usable from the keyboard: sign in, reach the navigation and a device', async () => {
    await suite.hub.provision('kbd-1')
    const tab = await suite.browser.open(suite.hub.base)
    await tab.page.keyboard.press('Tab')
    expect(await tab.page.evaluate(() => document.activeElement?.id)).toBe('token')
    await tab.page.keyboard.type(ADMIN_TOKEN)
    await tab.page.keyboard.press('Enter')
    await expect.poll(() => tab.page.getByRole('button', { name: 'Sign out' }).count()).toBe(1)
    await tab.page.getByLabel('Search by id').fill('kbd-1')
    await expect.poll(() => tab.page.locator('tbody tr[data-device]').count()).toBe(1)
    await tab.page.getByRole('link', { name: 'kbd-1' }).focus()
    await tab.page.keyboard.press('Enter')
    await expect.poll(() => tab.page.getByRole('heading', { level: 1 }).textContent()).toBe('kbd-1')
    // The page moves focus to its heading once it has rendered, which may come a frame after the text.
    await expect.poll(() => tab.page.evaluate(() => document.activeElement?.tagName)).toBe('H1')
    await tab.close()
  })
})
