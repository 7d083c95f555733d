import { ADMIN_TOKEN } from './hub.js'

/** The hub's `/metrics` text (Prometheus exposition format), read with the admin token. */
export async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return await res.text()
}

/** The value of one series in a scrape, e.g. `fleetgate_mqtt_clients` or `x_total{reason="a"}`; 0 when absent. */
export function series(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? 0 : Number(line.slice(name.length + 1))
}

/** Scrapes and reads the series named, in one object. */
export async function readSeries<K extends string>(base: string, names: readonly K[]): Promise<Record<K, number>> {
  const text = await scrape(base)
  return Object.fromEntries(names.map((name) => [name, series(text, name)])) as Record<K, number>
}
