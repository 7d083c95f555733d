import { beforeAll, describe, expect, it } from 'vitest'
import { consoleSuite, type ConsolePage } from '../support/console.js'
import { ADMIN_TOKEN, tempDir, writeTokensFile } from '../support/hub.js'

const READER = 'test-reader-token-0123456789'
const OPERATOR = 'test-operator-token-0123456789'
/** Buttons that change something, by name; none may be offered beyond a token's scope. */
const ADMIN_BUTTONS = /^(Provision device|Edit tags|Rotate key…|Disable…|Enable…|Delete…)$/
const OPERATOR_BUTTONS = /^(Send command|Send to all|Edit desired)$/

const dir = tempDir()
const suite = consoleSuite(
  () => ({
    FLEETGATE_TOKENS_FILE: writeTokensFile(dir.path, { viewer: { scope: 'reader', token: READER }, ops: { scope: 'operator', token: OPERATOR } }),
  }),
  () => dir.cleanup(),
)

beforeAll(async () => {
  await suite.devices.connect(suite.hub.wsUrl, await suite.hub.provision('scope-1', { tags: { site: 'rome' } }))
})

const buttonNames = (tab: ConsolePage): Promise<string[]> => tab.page.getByRole('button').allTextContents()
const navLinks = (tab: ConsolePage): Promise<string[]> => tab.page.getByRole('navigation', { name: 'Pages' }).getByRole('link').allTextContents()

/** Fleet and device pages, loaded, with their buttons. */
async function visibleButtons(tab: ConsolePage): Promise<string[]> {
  await expect.poll(() => tab.page.locator('tr[data-device="scope-1"]').count()).toBe(1)
  const fleet = await buttonNames(tab)
  await tab.go('#/devices/scope-1')
  await expect.poll(() => tab.page.getByRole('heading', { name: 'Commands' }).count()).toBe(1)
  return [...fleet, ...(await buttonNames(tab))]
}

/** A write the page's own token attempts outside the UI (the console is no gate: the API is). */
function forge(tab: ConsolePage, method: string, path: string, body: unknown): Promise<number> {
  return tab.page.evaluate(
    async ([m, p, b]) => {
      const token = sessionStorage.getItem('fleetgate.operatorToken') ?? ''
      const response = await fetch(p, { method: m, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(b) })
      return response.status
    },
    [method, path, body] as const,
  )
}

/** Audit entries by `actor`, read with the admin token. */
async function auditBy(actor: string): Promise<unknown[]> {
  const log = await suite.hub.api('GET', '/api/v1/audit?limit=1000')
  return (log.body.items as Array<{ actor: string }>).filter((entry) => entry.actor === actor)
}

describe('console: what a token may do is what it is offered', () => {
  it('offers a reader no write action; a forged write from the page is refused 403', async () => {
    const tab = await suite.browser.open(suite.hub.base, READER)
    expect(await tab.page.getByTestId('scope').textContent()).toBe('reader')
    expect(await navLinks(tab)).toEqual(['Fleet', 'Hub'])
    const buttons = await visibleButtons(tab)
    expect(buttons.filter((name) => ADMIN_BUTTONS.test(name) || OPERATOR_BUTTONS.test(name))).toEqual([])
    expect(await tab.page.locator('form.command-form').count()).toBe(0)
    await tab.go('#/audit')
    await expect.poll(() => tab.page.getByRole('heading', { level: 1 }).textContent()).toBe('Not available')
    await tab.shot('reader-device')

    expect(await forge(tab, 'POST', '/api/v1/devices', { id: 'forged' })).toBe(403)
    expect(await forge(tab, 'PATCH', '/api/v1/devices/scope-1', { disabled: true })).toBe(403)
    expect(await forge(tab, 'POST', '/api/v1/devices/scope-1/commands', { name: 'reboot' })).toBe(403)
    expect(await forge(tab, 'POST', '/api/v1/commands', { target: { tags: { site: 'rome' } }, name: 'reboot' })).toBe(403)
    expect((await suite.hub.api('GET', '/api/v1/devices/forged')).status).toBe(404)
    expect((await suite.hub.api('GET', '/api/v1/devices/scope-1')).body.disabled).toBe(false)
    // Finding the scope had no side effect: nothing was recorded for this token.
    expect(await auditBy('viewer')).toEqual([])
    await tab.close()
  })

  it('offers an operator commands and fan-out but no admin action; its scope probe leaves no trace', async () => {
    const tab = await suite.browser.open(suite.hub.base, OPERATOR)
    expect(await tab.page.getByTestId('scope').textContent()).toBe('operator')
    expect(await navLinks(tab)).toEqual(['Fleet', 'Fan-out', 'Hub'])
    const buttons = await visibleButtons(tab)
    expect(buttons.filter((name) => ADMIN_BUTTONS.test(name))).toEqual([])
    expect(buttons).toContain('Send command')
    expect(await auditBy('ops')).toEqual([])
    expect((await suite.hub.api('GET', '/api/v1/devices/scope-1/commands')).body.items).toEqual([])
    expect(await forge(tab, 'DELETE', '/api/v1/devices/scope-1', undefined)).toBe(403)
    await tab.close()
  })

  it('offers an admin everything', async () => {
    const tab = await suite.browser.open(suite.hub.base, ADMIN_TOKEN)
    expect(await tab.page.getByTestId('scope').textContent()).toBe('admin')
    expect(await navLinks(tab)).toEqual(['Fleet', 'Fan-out', 'Audit', 'Hub'])
    const buttons = await visibleButtons(tab)
    expect(buttons.filter((name) => ADMIN_BUTTONS.test(name)).sort()).toEqual(['Delete…', 'Disable…', 'Edit tags', 'Provision device', 'Rotate key…'])
    await tab.close()
  })
})
