import type { Metrics } from '@fleetgate/device-sdk'
import { TELEMETRY_MEASUREMENT } from './influx-shipper.js'
import type { InfluxWriter, QuerySeries } from './influx-writer.js'
import type { TelemetryPoint, TelemetryQuery, TelemetryRequest } from './telemetry-query.js'

/** An InfluxQL identifier, double-quoted; the key pattern admits no quote or backslash, escaping is belt and braces. */
const identifier = (name: string): string => `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`
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
 * The telemetry query on InfluxDB (CONTRACT §4, §5): raw points with `SELECT`, intervals with
 * `GROUP BY time(every) fill(none)`, each numeric field reduced by `fn` and every other field by
 * `last` (InfluxDB refuses `mean` of a string). Field types come from `SHOW FIELD KEYS`. Every
 * query is built from validated parts only: nothing a caller sends is spliced in unchecked.
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
    const select = names.map((name) => `${types.get(name) === true ? every.fn : 'last'}(${identifier(name)}) AS ${identifier(name)}`).join(', ')
    return pointsOf(await this.#influx.query(`SELECT ${select} ${from} GROUP BY time(${every.everyMs}ms) fill(none) ORDER BY time ASC LIMIT ${limit}`))
  }

  /** Each field of the measurement, and whether it is numeric (a float; CONTRACT §5 writes every number as one). */
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
