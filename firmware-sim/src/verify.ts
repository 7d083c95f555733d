// --verify: after draining, every device's stored points are read back (the hub's telemetry API,
// or InfluxDB itself) and compared with the readings the hub acknowledged.
//
// Each device stamps its readings with strictly increasing device time, so a reading is one
// InfluxDB point, identified by its ts. The window read is [first ts, last ts] of the device's
// readings in this run. Missing: acked and not stored. Extra: stored in the window but never acked
// (a naked or unacked reading that was stored anyway, or a point another writer put there).
// Duplicates: the same ts twice in the answer; InfluxDB folds a resent reading onto its point, so
// this is never expected. InfluxDB lags the acks (the hub ships from its spool), so devices that do
// not match yet are read again each second until they match, their counts stop changing for
// `settleMs`, or the deadline passes.
import type { Clock } from './clock.js'
import { sleep } from './clock.js'
import { SimError } from './errors.js'
import { asRecord, describeAnswer, rest } from './rest.js'

/** The telemetry query's largest page (docs/rest.md / decisions: limit 1 to 10,000). */
export const PAGE_POINTS = 10_000

/** One device to check. */
export interface VerifyTarget {
  readonly id: string
  /** A metric every reading of the device carries. */
  readonly metric: string
  /** The ts of every acked reading. */
  readonly ackedTs: readonly number[]
  /** The window to read, Unix ms inclusive. */
  readonly fromTs: number
  readonly toTs: number
}

/** Where stored points are read from. */
export interface PointSource {
  readonly via: 'api' | 'influx'
  /** The ts of every point of `id` carrying `metric` within [fromTs, toTs], oldest first. Throws a VerifyQueryError. */
  storedTs(id: string, metric: string, fromTs: number, toTs: number): Promise<number[]>
}

/** A failed read; `fatal` when asking again cannot help (InfluxDB off, a bad token). */
export class VerifyQueryError extends Error {
  override readonly name = 'VerifyQueryError'
  constructor(
    message: string,
    readonly fatal: boolean,
  ) {
    super(message)
  }
}

/** One device's comparison. */
export interface DeviceVerdict {
  readonly id: string
  readonly acked: number
  readonly stored: number
  readonly missing: number
  readonly extra: number
  readonly duplicates: number
}

/** The outcome of --verify. */
export interface VerifyResult {
  readonly via: 'api' | 'influx'
  readonly devices: number
  /** Readings acked, all devices. */
  readonly acked: number
  /** Points found in the devices' windows. */
  readonly stored: number
  readonly missing: number
  readonly extra: number
  readonly duplicates: number
  /** Devices whose points matched their acked readings exactly. */
  readonly matchedDevices: number
  /** Why some devices could not be read (the last error), or undefined. */
  readonly error: string | undefined
  readonly waitedMs: number
  readonly polls: number
  /** Up to 10 devices that did not match, worst first. */
  readonly worst: readonly DeviceVerdict[]
}

/** How verifyFleet waits. */
export interface VerifyOptions {
  readonly timeoutMs: number
  /** Stop early once the stored counts of unmatched devices have not changed for this long; default 10000. */
  readonly settleMs?: number
  readonly pollMs?: number
  readonly concurrency?: number
  readonly clock: Clock
}

/** Compares a device's acked ts (any order) with its stored ts (oldest first). */
export function compare(id: string, ackedTs: readonly number[], storedTs: readonly number[]): DeviceVerdict {
  const acked = Float64Array.from(ackedTs).sort()
  let duplicates = 0
  let missing = 0
  let extra = 0
  let i = 0
  let j = 0
  while (i < acked.length || j < storedTs.length) {
    const stored = storedTs[j]
    if (j > 0 && stored !== undefined && stored === storedTs[j - 1]) {
      duplicates++
      j++
      continue
    }
    const a = acked[i]
    if (stored === undefined || (a !== undefined && a < stored)) {
      missing++
      i++
    } else if (a === undefined || stored < a) {
      extra++
      j++
    } else {
      i++
      j++
    }
  }
  return { id, acked: acked.length, stored: storedTs.length, missing, extra, duplicates }
}

/** Reads every target's points until they match, settle or time out; see the module comment. */
export async function verifyFleet(targets: readonly VerifyTarget[], source: PointSource, options: VerifyOptions): Promise<VerifyResult> {
  const { clock, timeoutMs } = options
  const settleMs = options.settleMs ?? 10_000
  const pollMs = options.pollMs ?? 1000
  const concurrency = options.concurrency ?? 16
  const started = clock.now()
  const verdicts = new Map<string, DeviceVerdict>()
  let pending = [...targets]
  const order = new Map(targets.map((target, index) => [target, index]))
  let error: string | undefined
  let polls = 0
  let lastStored = -1
  let stableSince = started
  for (;;) {
    polls++
    let fatal = false
    let next = 0
    const still: VerifyTarget[] = []
    // the error of the first device in fleet order, so a report names the same device every time
    const failures = new Map<number, string>()
    const worker = async (): Promise<void> => {
      while (next < pending.length && !fatal) {
        const index = next++
        const target = pending[index] as VerifyTarget
        try {
          const stored = await source.storedTs(target.id, target.metric, target.fromTs, target.toTs)
          const verdict = compare(target.id, target.ackedTs, stored)
          verdicts.set(target.id, verdict)
          if (verdict.missing + verdict.extra + verdict.duplicates > 0) still.push(target)
        } catch (cause) {
          failures.set(index, cause instanceof Error ? cause.message : String(cause))
          fatal ||= cause instanceof VerifyQueryError && cause.fatal
          still.push(target)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, pending.length) }, worker))
    if (failures.size > 0) error = failures.get(Math.min(...failures.keys()))
    still.sort((a, b) => (order.get(a) as number) - (order.get(b) as number))
    pending = still
    if (pending.length === 0 || fatal) break
    const storedNow = pending.reduce((sum, target) => sum + (verdicts.get(target.id)?.stored ?? 0), 0)
    const now = clock.now()
    if (storedNow !== lastStored) {
      lastStored = storedNow
      stableSince = now
    }
    if (now - stableSince >= settleMs || now - started >= timeoutMs) break
    await sleep(clock, pollMs)
  }
  if (pending.length === 0) error = undefined
  let acked = 0
  let stored = 0
  let missing = 0
  let extra = 0
  let duplicates = 0
  for (const target of targets) {
    const verdict = verdicts.get(target.id) ?? { id: target.id, acked: target.ackedTs.length, stored: 0, missing: target.ackedTs.length, extra: 0, duplicates: 0 }
    verdicts.set(target.id, verdict)
    acked += verdict.acked
    stored += verdict.stored
    missing += verdict.missing
    extra += verdict.extra
    duplicates += verdict.duplicates
  }
  const bad = [...verdicts.values()].filter((v) => v.missing + v.extra + v.duplicates > 0)
  bad.sort((a, b) => b.missing + b.extra + b.duplicates - (a.missing + a.extra + a.duplicates))
  return {
    via: source.via,
    devices: targets.length,
    acked,
    stored,
    missing,
    extra,
    duplicates,
    matchedDevices: targets.length - bad.length,
    error,
    waitedMs: clock.now() - started,
    polls,
    worst: bad.slice(0, 10),
  }
}

/** Reads points through `GET /api/v1/devices/{id}/telemetry` (a reader token is enough). */
export function apiPointSource(hub: string, token: string | undefined): PointSource {
  return {
    via: 'api',
    async storedTs(id, metric, fromTs, toTs) {
      const out: number[] = []
      let from = fromTs
      for (;;) {
        const query = `from=${new Date(from).toISOString()}&to=${new Date(toTs).toISOString()}&metrics=${metric}&limit=${PAGE_POINTS}`
        let answer
        try {
          answer = await rest(hub, token, 'GET', `/api/v1/devices/${id}/telemetry?${query}`)
        } catch (cause) {
          throw new VerifyQueryError(cause instanceof SimError ? cause.message : String(cause), false)
        }
        if (answer.status !== 200) {
          const text = `GET /api/v1/devices/${id}/telemetry answered ${describeAnswer(answer)}`
          // 503 not_ready may be InfluxDB catching up; anything else, or shipping off, will not change
          const off = answer.status === 503 && JSON.stringify(answer.body ?? '').includes('off')
          throw new VerifyQueryError(text, answer.status !== 503 || off)
        }
        const points = asRecord(answer.body)?.['points']
        if (!Array.isArray(points)) throw new VerifyQueryError(`GET /api/v1/devices/${id}/telemetry: no points array`, true)
        for (const point of points) out.push(Date.parse(String(asRecord(point)?.['ts'])))
        if (points.length < PAGE_POINTS) return out
        from = (out.at(-1) as number) + 1
      }
    },
  }
}

/** Reads points from InfluxDB 1.x directly (`SELECT "metric" FROM "telemetry"`, docs/telemetry.md). */
export function influxPointSource(url: string, db: string): PointSource {
  return {
    via: 'influx',
    async storedTs(id, metric, fromTs, toTs) {
      const out: number[] = []
      let from = fromTs
      for (;;) {
        // ids and metric names are restricted to characters that need no escaping (docs/protocol.md)
        const q = `SELECT "${metric}" FROM "telemetry" WHERE "device" = '${id}' AND time >= ${from}ms AND time <= ${toTs}ms ORDER BY time ASC LIMIT ${PAGE_POINTS}`
        let answer: unknown
        try {
          const response = await fetch(`${url}/query`, { method: 'POST', body: new URLSearchParams({ q, db, epoch: 'ms' }), signal: AbortSignal.timeout(30_000) })
          if (response.status !== 200) throw new VerifyQueryError(`InfluxDB answered ${response.status}: ${(await response.text()).slice(0, 200)}`, response.status < 500)
          answer = await response.json()
        } catch (cause) {
          if (cause instanceof VerifyQueryError) throw cause
          throw new VerifyQueryError(`cannot query InfluxDB at ${url}: ${cause instanceof Error ? cause.message : String(cause)}`, false)
        }
        const result = (answer as { results?: Array<{ error?: string; series?: Array<{ values?: unknown[][] }> }> }).results?.[0]
        if (result?.error !== undefined) throw new VerifyQueryError(`InfluxDB: ${result.error}`, true)
        const values = result?.series?.[0]?.values ?? []
        for (const row of values) out.push(Number(row[0]))
        if (values.length < PAGE_POINTS) return out
        from = (out.at(-1) as number) + 1
      }
    },
  }
}
