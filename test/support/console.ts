import { mkdirSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, expect } from 'vitest'
import { launchChromium } from './browser.js'
import { startTestHub, type TestHub } from './hub.js'
import { OpenDevices } from './ws.js'

/** Screenshots of the browser tests (git-ignored). */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../test-artifacts/console/', import.meta.url))

/** Desktop and phone viewports the console must read well at. */
export const DESKTOP = { width: 1280, height: 800 } as const
export const PHONE = { width: 390, height: 844 } as const

/**
 * What the hub under test serves of the v2 contract that the console uses. The browser tests
 * check these against the hub's real answers first, so when an endpoint lands the tests fail
 * until the flag here is flipped, and then its scenarios run (no test silently passes over it).
 */
export const HUB_HAS = {
  /** `GET /api/v1/events` (docs/rest.md). */
  events: true,
  /** `GET/PATCH /api/v1/devices/{id}/twin` (docs/twins.md). */
  twins: true,
  /** `GET /api/v1/nodes` (docs/cluster.md): 404 on a hub that is not in a cluster (test/console/nodes.test.ts runs one). */
  nodes: false,
} as const

/** Asks the hub what it serves, by the same probes the console makes. */
export async function probeHubFeatures(base: string, token: string, deviceId: string): Promise<Record<keyof typeof HUB_HAS, boolean>> {
  const status = async (path: string): Promise<number> => {
    const abort = new AbortController()
    const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal })
    // The event stream never ends by itself: its status is all the probe needs.
    abort.abort()
    return response.status
  }
  return {
    events: (await status('/api/v1/events?type=status')) === 200,
    twins: (await status(`/api/v1/devices/${deviceId}/twin`)) === 200,
    nodes: (await status('/api/v1/nodes')) === 200,
  }
}

/** Fails unless the hub's answers match `HUB_HAS`, naming the flag to flip. */
export async function assertHubFeatures(base: string, token: string, deviceId: string): Promise<void> {
  const found = await probeHubFeatures(base, token, deviceId)
  for (const key of Object.keys(HUB_HAS) as Array<keyof typeof HUB_HAS>) {
    expect(found[key], `the hub ${found[key] ? 'now serves' : 'no longer serves'} "${key}": set HUB_HAS.${key} = ${found[key]} in test/support/console.ts`).toBe(HUB_HAS[key])
  }
}

/**
 * Fails unless `npm run build` built the console after its sources last changed (the hub reads
 * `console/dist` at start; `npm test` builds first).
 */
export function assertConsoleBuilt(): void {
  const root = fileURLToPath(new URL('../../console/', import.meta.url))
  const index = statSync(join(root, 'dist/index.html'), { throwIfNoEntry: false })
  if (index === undefined) throw new Error('console/dist is missing: run `npm run build` first')
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory() ? newest(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
      ),
    )
  if (newest(join(root, 'src')) > index.mtimeMs) throw new Error('console/dist is older than console/src: run `npm run build` first')
}

/** One Chromium for a test file, with a fresh profile; each `open` is a new tab (its own sessionStorage). */
export class ConsoleBrowser {
  readonly context: BrowserContext
  readonly #close: () => Promise<void>

  private constructor(context: BrowserContext, close: () => Promise<void>) {
    this.context = context
    this.#close = close
  }

  static async launch(): Promise<ConsoleBrowser> {
    assertConsoleBuilt()
    const launched = await launchChromium(DESKTOP)
    return new ConsoleBrowser(launched.context, launched.close)
  }

  /** A new tab on the console at `base`, signed in with `token` when given. */
  async open(base: string, token?: string, viewport: { width: number; height: number } = DESKTOP): Promise<ConsolePage> {
    const page = await this.context.newPage()
    await page.setViewportSize(viewport)
    const tab = new ConsolePage(page, base)
    await page.goto(`${base}/`)
    if (token !== undefined) await tab.signIn(token)
    return tab
  }

  close(): Promise<void> {
    return this.#close()
  }
}

/** A console tab: what an operator does, and what went wrong in the page meanwhile. */
export class ConsolePage {
  readonly page: Page
  readonly base: string
  /** Script errors and console errors (CSP violations among them), except failed requests the test expects. */
  readonly errors: string[] = []

  constructor(page: Page, base: string) {
    this.page = page
    this.base = base
    page.on('pageerror', (err) => this.errors.push(`pageerror: ${err.message}`))
    page.on('console', (message) => {
      // A refused request (404 from a probe, 403 from a forged write) is logged by Chromium as an error; tests assert those answers themselves.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) this.errors.push(message.text())
    })
  }

  async signIn(token: string): Promise<void> {
    await this.page.getByLabel('Operator token').fill(token)
    await this.page.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(() => this.page.getByRole('button', { name: 'Sign out' }).count()).toBe(1)
  }

  /** Goes to a console page by its hash route (`#/devices/x`). */
  async go(hash: string): Promise<void> {
    await this.page.goto(`${this.base}/console/${hash}`)
  }

  /** Writes a full-page screenshot to the artifacts dir as `<name>.png`. */
  async shot(name: string): Promise<string> {
    mkdirSync(ARTIFACTS_DIR, { recursive: true })
    const path = join(ARTIFACTS_DIR, `${name}.png`)
    await this.page.screenshot({ path, fullPage: true })
    return path
  }

  /** Fails on any script error or CSP violation seen, then closes the tab. */
  async close(): Promise<void> {
    expect(this.errors, 'errors in the page').toEqual([])
    await this.page.close()
  }
}

/** Form controls with no accessible name (no label, `aria-label` or `aria-labelledby`), by outer HTML. */
export async function unlabelledControls(page: Page): Promise<string[]> {
  return page.locator('input, select, textarea').evaluateAll((controls) =>
    controls
      .filter((c) => {
        const control = c as HTMLInputElement
        return control.type !== 'hidden' && (control.labels?.length ?? 0) === 0 && !control.hasAttribute('aria-label') && !control.hasAttribute('aria-labelledby')
      })
      .map((c) => c.outerHTML),
  )
}

/** What a browser-test file runs against: one hub, one Chromium, the devices it opened. */
export interface ConsoleSuite {
  readonly hub: TestHub
  readonly browser: ConsoleBrowser
  readonly devices: OpenDevices
}

/**
 * Starts a hub (with the environment `env` gives, after any service it starts) and Chromium
 * before the file's tests, and stops them, the devices and `stop` after.
 */
export function consoleSuite(env: () => Promise<Record<string, string>> | Record<string, string> = () => ({}), stop: () => Promise<void> | void = () => undefined): ConsoleSuite {
  let hub: TestHub | undefined
  let browser: ConsoleBrowser | undefined
  const devices = new OpenDevices()
  beforeAll(async () => {
    hub = await startTestHub(await env())
    browser = await ConsoleBrowser.launch()
  })
  afterAll(async () => {
    devices.closeAll()
    await browser?.close()
    await hub?.stop()
    await stop()
  })
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the console suite has not started (use it inside a test)')
    return value
  }
  return {
    get hub() {
      return started(hub)
    },
    get browser() {
      return started(browser)
    },
    devices,
  }
}
