// Console benchmark (not part of `npm run bench`): a hub process with 10,000 devices, headless
// Chromium, time from navigation to a usable fleet table (the first page of rows drawn); then a
// device with 7 days of one reading per second in the embedded history, time from choosing "7 d" on
// its page to the chart drawn with every interval.
// Run: npx tsc -b && npm run build && npx tsx test/bench/console.ts [devices]
import { launchChromium } from '../support/browser.js'
import { api, ADMIN_TOKEN, HubProcesses, testEnv } from '../support/hub.js'
import { hubMetrics } from './context.js'
import { loadWeek } from './history.js'
import { sleep } from './measure.js'

/** Devices provisioned; default 10,000 (one bulk call, docs/rest.md's maximum). */
const DEVICES = Number(process.argv[2] ?? 10_000)
/** Loads measured with a warm cache after the cold one. */
const WARM_LOADS = 5
/** Rows the fleet page shows first (its default page size). */
const FIRST_PAGE = 50

/** Times the 7-day chart is drawn, each after a fresh load of the device page. */
const WEEK_DRAWS = 5
const HOUR_MS = 3_600_000

const procs = new HubProcesses()
// The week of readings must outlive the default 7-day retention while the benchmark runs.
const hub = await procs.start(testEnv(procs.dir(), { FLEETGATE_HISTORY_RETENTION: '9d', FLEETGATE_DEVICE_RATE: '10000' }))
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

  // Issue 15's figure: the device page's chart over 7 days of one reading per second.
  const week = await api(hub.base, 'POST', '/api/v1/devices', { id: 'bench-week' })
  const now = Date.now()
  const loadStarted = Date.now()
  await loadWeek(hub.wsUrl, { id: 'bench-week', key: week.body.key as string }, Math.floor(now / HOUR_MS) * HOUR_MS - 7 * 24 * HOUR_MS)
  console.log(`device with 604,800 readings (7 days at 1/s) loaded in ${Date.now() - loadStarted} ms`)
  // A week that arrived over a week is compacted hour by hour: wait for upkeep to get there (60 s after the last hour closed).
  let compacted = 0
  for (const deadline = Date.now() + 180_000; compacted < 7 * 24 - 1 && Date.now() < deadline; await sleep(500)) {
    compacted = (await hubMetrics(hub.base)).get('fleetgate_history_compactions_total') ?? 0
  }
  console.log(`${compacted} device-hours compacted after ${Date.now() - loadStarted} ms`)
  const draws: number[] = []
  let intervals = ''
  for (let i = 0; i < WEEK_DRAWS; i++) {
    await page.goto(`${hub.base}/console/#/devices/bench-week`)
    await page.getByRole('button', { name: '7 d' }).waitFor()
    await page.waitForFunction(() => /points/.test(document.querySelector('[data-testid="range-note"]')?.textContent ?? ''), undefined, { polling: 'raf' })
    const clickedAt = await page.evaluate(() => performance.now())
    await page.getByRole('button', { name: '7 d' }).click()
    // Drawn: the note names the intervals, the chart holds them, and one more frame has been painted.
    await page.waitForFunction(() => /mean per 15m/.test(document.querySelector('[data-testid="range-note"]')?.textContent ?? ''), undefined, { polling: 'raf' })
    intervals = (await page.locator('.chart-box[aria-label^="temp"]').getAttribute('data-points')) ?? ''
    const drawnAt = await page.evaluate(() => new Promise<number>((resolve) => requestAnimationFrame(() => resolve(performance.now()))))
    draws.push(drawnAt - clickedAt)
  }
  console.log(`device page, 7 days at 1/s, "7 d" chosen to the chart drawn (${intervals} intervals, mean per 15m):`)
  console.log(`  median of ${WEEK_DRAWS}: ${median(draws).toFixed(0)} ms (each: ${draws.map((ms) => ms.toFixed(0)).join(', ')} ms)`)
} finally {
  await browser.close()
  await procs.cleanup()
}
