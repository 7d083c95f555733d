// Console first-load benchmark (not part of `npm run bench`): a hub process with 10,000 devices,
// headless Chromium, time from navigation to a usable fleet table (the first page of rows drawn).
// Run: npx tsc -b && npm run build && npx tsx test/bench/console.ts [devices]
import { launchChromium } from '../support/browser.js'
import { api, ADMIN_TOKEN, HubProcesses, testEnv } from '../support/hub.js'

/** Devices provisioned; default 10,000 (one bulk call, CONTRACT §4's maximum). */
const DEVICES = Number(process.argv[2] ?? 10_000)
/** Loads measured with a warm cache after the cold one. */
const WARM_LOADS = 5
/** Rows the fleet page shows first (its default page size). */
const FIRST_PAGE = 50

const procs = new HubProcesses()
const hub = await procs.start(testEnv(procs.dir()))
const browser = await launchChromium({ width: 1280, height: 800 })
try {
  const devices = Array.from({ length: DEVICES }, (_, i) => ({ id: `bench-${String(i).padStart(6, '0')}`, tags: { site: `s${i % 20}` } }))
  const started = Date.now()
  const created = await api(hub.base, 'POST', '/api/v1/devices/bulk', { devices })
  if (created.status !== 200 || created.body.created.length !== DEVICES) throw new Error(`bulk create: ${created.status}`)
  console.log(`provisioned ${DEVICES} devices in ${Date.now() - started} ms`)

  const page = await browser.context.newPage()
  await page.goto(`${hub.base}/console/`)
  await page.getByLabel('Operator token').fill(ADMIN_TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForSelector('tbody tr[data-device]')
  const cdp = await browser.context.newCDPSession(page)

  /** One load of the fleet page (the token is in the tab's sessionStorage): ms from navigation start. */
  const load = async (): Promise<{ tableMs: number; countsMs: number }> => {
    await page.reload({ waitUntil: 'commit' })
    await page.waitForFunction((n) => document.querySelectorAll('tbody tr[data-device]').length >= n, FIRST_PAGE, { polling: 'raf' })
    const tableMs = await page.evaluate(() => performance.now())
    await page.waitForFunction(() => /\d/.test(document.querySelector('[data-testid="count-total"]')?.textContent ?? ''), undefined, { polling: 'raf' })
    const countsMs = await page.evaluate(() => performance.now())
    return { tableMs, countsMs }
  }

  await cdp.send('Network.clearBrowserCache')
  const cold = await load()
  const warm: Array<{ tableMs: number; countsMs: number }> = []
  for (let i = 0; i < WARM_LOADS; i++) warm.push(await load())
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
  const total = await page.getByTestId('count-total').textContent()
  console.log(`fleet page, ${DEVICES} devices, first ${FIRST_PAGE} rows (counts shown: total ${total})`)
  console.log(`  cold cache: table usable at ${cold.tableMs.toFixed(0)} ms, counts at ${cold.countsMs.toFixed(0)} ms`)
  console.log(
    `  warm cache (median of ${WARM_LOADS}): table usable at ${median(warm.map((w) => w.tableMs)).toFixed(0)} ms, ` +
      `counts at ${median(warm.map((w) => w.countsMs)).toFixed(0)} ms`,
  )
} finally {
  await browser.close()
  await procs.cleanup()
}
