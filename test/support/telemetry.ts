import type { Influxd } from './influxd.js'

/** Polls until `probe` returns a value `done` accepts, or fails after `timeoutMs` with the last value. */
export async function eventually<T>(probe: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = await probe()
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    last = await probe()
  }
  return last
}

/** Waits, checking every 10 ms, until `condition` holds; fails after `timeoutMs` naming `what`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** The first series' rows of an InfluxQL answer (`epoch=ms`), as objects by column. */
export async function rows(influx: Influxd, query: string, db: string): Promise<Array<Record<string, unknown>>> {
  const answer = (await influx.query(query, db)) as {
    results?: Array<{ series?: Array<{ columns: string[]; values: unknown[][] }>; error?: string }>
  }
  const result = answer.results?.[0]
  if (result?.error !== undefined) throw new Error(`InfluxQL error: ${result.error}`)
  const series = result?.series?.[0]
  if (series === undefined) return []
  return series.values.map((values) => Object.fromEntries(series.columns.map((column, i) => [column, values[i]])))
}

/** How many points of `measurement` have field `field` (0 when none). */
export async function countPoints(influx: Influxd, db: string, field: string, where = ''): Promise<number> {
  const found = await rows(influx, `SELECT count("${field}") FROM "telemetry"${where === '' ? '' : ` WHERE ${where}`}`, db)
  return (found[0]?.['count'] as number | undefined) ?? 0
}
