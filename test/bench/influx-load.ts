// Worker handlers for the raw InfluxDB ceiling: line-protocol batches POSTed straight to influxd by
// a few writers in parallel, with the points Fleetgate's shipper would write for the same readings.
import { request, Agent } from 'node:http'
import { COUNT_FIELD, metricsFor, readingTime } from './load.js'
import type { Handlers } from './procs.js'

/** Parameters of `influx.start`. */
export interface InfluxWriteParams {
  /** influxd's base URL. */
  readonly url: string
  readonly db: string
  /** Writers in parallel, each with one request in flight. */
  readonly writers: number
  /** Points per request (5,000, as Fleetgate's shipper and node-influx code use). */
  readonly batchPoints: number
  /** Devices the points are spread over (the `device` tag). */
  readonly devices: number
  readonly t0: number
}

/** What `influx.sample` and `influx.stop` answer. */
export interface InfluxWriteSample {
  readonly at: number
  /** Points in requests influxd answered 204 (written: InfluxDB 1.x answers after its WAL). */
  readonly points: number
  readonly requests: number
  readonly errors: number
  readonly firstError: string | undefined
}

let state: { running: boolean; points: number; requests: number; errors: number; firstError: string | undefined; writers: Promise<void>[] } | undefined

/** `telemetry,device=raw-7 t=21.3,h=45.5,v=3.3 <ms>`: the line Fleetgate writes for a reading. */
function line(device: number, seq: number, t0: number): string {
  const m = metricsFor(seq)
  return `telemetry,device=raw-${device} ${COUNT_FIELD}=${String(m[COUNT_FIELD])},h=${String(m['h'])},v=${String(m['v'])} ${readingTime(t0, seq, 1, 0)}`
}

function post(agent: Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body)
  })
}

export const influxHandlers: Handlers = {
  /** Starts the writers; they write until `influx.stop`. */
  'influx.start'(raw) {
    const params = raw as InfluxWriteParams
    const url = new URL(`${params.url}/write?db=${encodeURIComponent(params.db)}&precision=ms`)
    const agent = new Agent({ keepAlive: true, maxSockets: params.writers })
    const s = { running: true, points: 0, requests: 0, errors: 0, firstError: undefined as string | undefined, writers: [] as Promise<void>[] }
    // Each device's seq advances by one per point: writer w takes devices w, w + writers, ...
    const seqs = new Array<number>(params.devices).fill(0)
    for (let w = 0; w < params.writers; w++) {
      s.writers.push(
        (async () => {
          let device = w
          while (s.running) {
            const lines: string[] = []
            for (let i = 0; i < params.batchPoints; i++) {
              const seq = (seqs[device] ?? 0) + 1
              seqs[device] = seq
              lines.push(line(device, seq, params.t0))
              device += params.writers
              if (device >= params.devices) device = w
            }
            try {
              const status = await post(agent, url, lines.join('\n'))
              s.requests++
              if (status === 204) s.points += params.batchPoints
              else {
                s.errors++
                s.firstError ??= `HTTP ${status}`
              }
            } catch (err) {
              s.errors++
              s.firstError ??= err instanceof Error ? err.message : String(err)
            }
          }
        })(),
      )
    }
    state = s
    return true
  },

  'influx.sample'(): InfluxWriteSample {
    if (state === undefined) throw new Error('no writers')
    return { at: Date.now(), points: state.points, requests: state.requests, errors: state.errors, firstError: state.firstError }
  },

  /** Stops the writers after their request in flight. */
  async 'influx.stop'(): Promise<InfluxWriteSample> {
    if (state === undefined) throw new Error('no writers')
    state.running = false
    await Promise.all(state.writers)
    const { points, requests, errors, firstError } = state
    state = undefined
    return { at: Date.now(), points, requests, errors, firstError }
  },
}
