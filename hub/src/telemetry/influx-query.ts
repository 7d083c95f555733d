import type { Metrics } from '@fleetgate/device-sdk'
import { TELEMETRY_MEASUREMENT } from './influx-shipper.js'
import type { InfluxWriter, QuerySeries } from './influx-writer.js'
import type { TelemetryPoint, TelemetryQuery, TelemetryRequest } from './telemetry-query.js'

/** An InfluxQL identifier, double-quoted; the key pattern admits no quote or backslash, escaping is belt and braces. */
const identifier = (name: string): string => `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`
/** The alias of a mean's count column: a space, so that no metric name (docs/protocol.md key pattern) can be it. */
const countAlias = (name: string): string => `count ${name}`

/** An InfluxQL string literal. */
const literal = (text: string): string => `'${text.replace(/[\\']/g, (c) => `\\${c}`)}'`

/** The rows of InfluxQL series as points: `time` is the point's ts, null columns are left out. */
function pointsOf(series: readonly QuerySeries[]): TelemetryPoint[] {
  const points: TelemetryPoint[] = []
  for (const { columns, values } of series) {
    for (const row of values) {
      let ts = 0
      const point: Metrics = {}
      columns.forEach((column, i) => {
        const value = row[i]
        if (column === 'time') ts = value as number
        else if (value !== null && value !== undefined) point[column] = value as Metrics[string]
      })
      points.push({ ts, values: point })
    }
  }
  return points
}

/**
 * The telemetry query on InfluxDB (docs/rest.md, docs/telemetry.md): raw points with `SELECT`, intervals with
 * `GROUP BY time(every) fill(none)`, each numeric field reduced by `fn` and every other field by
 * `last` (InfluxDB refuses `mean` of a string). Field types come from `SHOW FIELD KEYS`. Every
 * query is built from validated parts only: nothing a caller sends is spliced in unchecked.
 *
 * A mean is asked as `sum` and `count` and divided here: InfluxDB's own `mean` over several series
 * (tag sets) adds each series' mean times its count, which rounds; sum / count is what the history
 * computes, so both back ends answer the same mean of the same values.
 */
export class InfluxTelemetryQuery implements TelemetryQuery {
  readonly name = 'influxdb'
  readonly #influx: Pick<InfluxWriter, 'query'>

  constructor(influx: Pick<InfluxWriter, 'query'>) {
    this.#influx = influx
  }

  async run(request: TelemetryRequest): Promise<TelemetryPoint[]> {
    const { device, fromMs, toMs, metrics, limit, every } = request
    const where = `WHERE "device" = ${literal(device)} AND time >= ${fromMs}ms AND time <= ${toMs}ms`
    const from = `FROM ${identifier(TELEMETRY_MEASUREMENT)} ${where}`
    if (every === undefined) {
      const fields = metrics === undefined ? '*::field' : metrics.map(identifier).join(', ')
      return pointsOf(await this.#influx.query(`SELECT ${fields} ${from} ORDER BY time ASC LIMIT ${limit}`))
    }
    const types = await this.#fieldTypes()
    // Without `metrics`, every field of the measurement, sorted by name as the history lists them.
    const names = (metrics ?? [...types.keys()].sort()).filter((name) => types.has(name))
    if (names.length === 0) return []
    const meaned = names.filter((name) => types.get(name) === true && every.fn === 'mean')
    const select = names
      .map((name) => {
        const field = identifier(name)
        if (meaned.includes(name)) return `sum(${field}) AS ${field}, count(${field}) AS ${identifier(countAlias(name))}`
        return `${types.get(name) === true ? every.fn : 'last'}(${field}) AS ${field}`
      })
      .join(', ')
    const points = pointsOf(await this.#influx.query(`SELECT ${select} ${from} GROUP BY time(${every.everyMs}ms) fill(none) ORDER BY time ASC LIMIT ${limit}`))
    for (const { values } of points) {
      for (const name of meaned) {
        const count = values[countAlias(name)]
        if (typeof count !== 'number') continue
        values[name] = (values[name] as number) / count
        delete values[countAlias(name)]
      }
    }
    return points
  }

  /** Each field of the measurement, and whether it is numeric (a float; docs/telemetry.md writes every number as one). */
  async #fieldTypes(): Promise<Map<string, boolean>> {
    const types = new Map<string, boolean>()
    for (const { values } of await this.#influx.query(`SHOW FIELD KEYS FROM ${identifier(TELEMETRY_MEASUREMENT)}`)) {
      for (const [key, type] of values) {
        // A field may have a type per shard; it is numeric when every shard holds numbers.
        const numeric = type === 'float' || type === 'integer'
        types.set(String(key), (types.get(String(key)) ?? true) && numeric)
      }
    }
    return types
  }
}
