import { describe, expect, it } from 'vitest'
import { consoleSuite, HUB_HAS, type ConsolePage } from '../support/console.js'
import { tempDir, writeTokensFile } from '../support/hub.js'
import type { RawDevice } from '../support/ws.js'

const READER = 'twin-console-reader-0123456789'
const OPERATOR = 'twin-console-operator-0123456789'

const dir = tempDir()
const suite = consoleSuite(
  () => ({
    FLEETGATE_TOKENS_FILE: writeTokensFile(dir.path, { viewer: { scope: 'reader', token: READER }, ops: { scope: 'operator', token: OPERATOR } }),
  }),
  () => dir.cleanup(),
)

const EDITOR = 'Desired state (JSON object; the console sends the merge patch)'

/** Opens a device page and waits for its twin section, loaded. */
async function twinPage(id: string, token: string): Promise<ConsolePage> {
  const tab = await suite.browser.open(suite.hub.base, token)
  await tab.go(`#/devices/${id}`)
  await expect.poll(() => tab.page.getByLabel('Desired state', { exact: true }).count()).toBe(1)
  return tab
}

/** The twin section of a device page. */
const section = (tab: ConsolePage) => tab.page.getByRole('region', { name: 'Twin' })

/** The twin as the console shows it without live updates: read again (the event stream brings it live where the hub has it). */
async function refreshed(tab: ConsolePage): Promise<void> {
  if (!HUB_HAS.events) await tab.page.reload()
}

describe('console: the device twin', () => {
  it("sends an operator's edit to the device as twd; the delta shows until the device reports, then In sync", async () => {
    const creds = await suite.hub.provision('twin-edit')
    const ws: RawDevice = await suite.devices.connect(suite.hub.wsUrl, creds)
    const tab = await twinPage('twin-edit', OPERATOR)
    expect(await tab.page.getByText('In sync').count()).toBe(1)
    await tab.page.getByRole('button', { name: 'Edit desired' }).click()
    await tab.page.getByLabel(EDITOR).fill('{"setpoint": 21.5, "fan": {"speed": 2}}')
    await tab.page.getByRole('button', { name: 'Save desired' }).click()
    expect(await ws.next()).toStrictEqual({ t: 'twd', v: 1, d: { setpoint: 21.5, fan: { speed: 2 } } })
    await expect.poll(() => section(tab).getByRole('status').textContent()).toBe('Saved as desired version 1.')
    const delta = tab.page.getByLabel('Delta: desired not yet reported')
    expect(JSON.parse((await delta.textContent()) ?? '')).toStrictEqual({ setpoint: 21.5, fan: { speed: 2 } })
    await tab.shot('device-twin-delta')

    // the device applies part of it: the delta shrinks to the rest
    ws.send({ t: 'twr', id: 'r1', p: { setpoint: 21.5 } })
    expect(await ws.next()).toStrictEqual({ t: 'twa', id: 'r1', v: 1 })
    await refreshed(tab)
    await expect.poll(async () => JSON.parse((await delta.textContent()) ?? 'null') as unknown).toStrictEqual({ fan: { speed: 2 } })
    ws.send({ t: 'twr', id: 'r2', p: { fan: { speed: 2 }, firmware: '1.0.0' } })
    expect(await ws.next()).toStrictEqual({ t: 'twa', id: 'r2', v: 2 })
    await refreshed(tab)
    await expect.poll(() => tab.page.getByText('In sync').count()).toBe(1)
    expect(JSON.parse((await tab.page.getByLabel('Reported state').textContent()) ?? '')).toStrictEqual({ setpoint: 21.5, fan: { speed: 2 }, firmware: '1.0.0' })
    await tab.shot('device-twin')
    // the operator's change is audited under the token's name
    const audit = (await suite.hub.api('GET', '/api/v1/audit?limit=1000')).body.items as Array<Record<string, unknown>>
    expect(audit.filter((e) => e['action'] === 'twin.desired' && e['target'] === 'twin-edit').map((e) => [e['actor'], e['outcome']])).toEqual([['ops', 'version 1']])
    await tab.close()
  })

  it('answers a save over a change made meanwhile with the conflict, keeping the edit, and saves nothing', async () => {
    await suite.hub.provision('twin-conflict')
    expect((await suite.hub.api('PATCH', '/api/v1/devices/twin-conflict/twin', { desired: { mode: 'eco' } })).status).toBe(200)
    const tab = await twinPage('twin-conflict', OPERATOR)
    await tab.page.getByRole('button', { name: 'Edit desired' }).click()
    const edit = '{"mode": "comfort", "setpoint": 22}'
    await tab.page.getByLabel(EDITOR).fill(edit)
    // someone else changes it through the API after the editor opened
    expect((await suite.hub.api('PATCH', '/api/v1/devices/twin-conflict/twin', { desired: { mode: 'away' } })).status).toBe(200)
    await tab.page.getByRole('button', { name: 'Save desired' }).click()
    const conflict = tab.page.getByTestId('twin-conflict')
    await expect.poll(() => conflict.count()).toBe(1)
    expect(await conflict.locator('p').textContent()).toContain('the desired state changed after you opened version 1 (409 version_conflict)')
    expect(await conflict.getByLabel('Your edit, not saved').textContent()).toBe(edit)
    expect(await tab.page.getByLabel(EDITOR).inputValue()).toBe(edit)
    expect((await suite.hub.api('GET', '/api/v1/devices/twin-conflict/twin')).body).toMatchObject({ desired: { mode: 'away' }, desiredVersion: 2 })
    await tab.shot('device-twin-conflict')
    await tab.page.getByRole('button', { name: 'Load current version' }).click()
    await expect.poll(async () => JSON.parse((await tab.page.getByLabel('Desired state', { exact: true }).textContent()) ?? 'null') as unknown).toStrictEqual({ mode: 'away' })
    await tab.close()
  })

  it('shows a reader the twin without "Edit desired"', async () => {
    await suite.hub.provision('twin-reader')
    expect((await suite.hub.api('PATCH', '/api/v1/devices/twin-reader/twin', { desired: { a: 1 } })).status).toBe(200)
    const tab = await twinPage('twin-reader', READER)
    expect(JSON.parse((await tab.page.getByLabel('Desired state', { exact: true }).textContent()) ?? '')).toStrictEqual({ a: 1 })
    expect(await tab.page.getByRole('button', { name: 'Edit desired' }).count()).toBe(0)
    await tab.close()
  })

  it('disables Save for invalid JSON, null and a $ key, saying why', async () => {
    await suite.hub.provision('twin-invalid')
    const tab = await twinPage('twin-invalid', OPERATOR)
    await tab.page.getByRole('button', { name: 'Edit desired' }).click()
    const save = tab.page.getByRole('button', { name: 'Save desired' })
    const cases: ReadonlyArray<readonly [string, string]> = [
      ['{"setpoint": 21', 'not valid JSON'],
      ['{"setpoint": null}', 'null deletes in a merge patch'],
      ['null', 'the desired state is a JSON object'],
      ['{"$set": {"a": 1}}', 'starts with $ (reserved)'],
    ]
    for (const [text, problem] of cases) {
      await tab.page.getByLabel(EDITOR).fill(text)
      expect(await save.isDisabled(), text).toBe(true)
      expect(await section(tab).getByRole('alert').textContent(), text).toContain(problem)
    }
    await tab.page.getByLabel(EDITOR).fill('{"setpoint": 20}')
    expect(await save.isDisabled()).toBe(false)
    await save.click()
    await expect.poll(async () => (await suite.hub.api('GET', '/api/v1/devices/twin-invalid/twin')).body.desired as unknown).toStrictEqual({ setpoint: 20 })
    await tab.close()
  })
})
