import type { JSX } from 'preact'
import { useMemo, useState } from 'preact/hooks'
import type { Api, TelemetryPoint } from '../lib/api.js'
import { ago, count, dateTime, metricText } from '../lib/format.js'
import {
  isStale,
  latestValues,
  looksAggregated,
  LIVE_TAIL_MS,
  MAX_CHART_POINTS,
  resolveRange,
  TELEMETRY_LIMIT,
  toSeries,
  type Latest,
  type RangeKind,
  type ResolvedRange,
} from '../lib/telemetry.js'
import { MetricChart } from '../ui/chart.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect, useBus, useNow, type EventBus } from '../ui/hooks.js'
import { DataTable, ErrorNote } from '../ui/widgets.js'

const HOUR_MS = 3_600_000
/** Pages of raw readings read forward for the latest values; default 5 (50,000 readings). */
const LATEST_PAGES = 5

const RANGES: ReadonlyArray<readonly [RangeKind, string]> = [
  ['live', 'Live tail'],
  ['1h', '1 h'],
  ['24h', '24 h'],
  ['7d', '7 d'],
  ['custom', 'Custom'],
]

/**
 * The latest value of every metric: the last hour read raw (paged forward while pages come back
 * full), then the last week per hour (`fn=last`) for metrics quiet for over an hour.
 */
async function loadLatest(api: Api, id: string, now: number, signal: AbortSignal): Promise<Map<string, Latest>> {
  const recent: TelemetryPoint[] = []
  let from = now - HOUR_MS
  for (let page = 0; page < LATEST_PAGES; page++) {
    const points = await api.telemetry(id, { from, to: now, limit: TELEMETRY_LIMIT }, signal)
    recent.push(...points)
    const last = points[points.length - 1]
    if (points.length < TELEMETRY_LIMIT || last === undefined) break
    from = last.ts + 1
  }
  const latest = latestValues(recent)
  const older = await api.telemetry(id, { from: now - 7 * 24 * HOUR_MS, to: now - HOUR_MS, limit: TELEMETRY_LIMIT, every: '1h', fn: 'last' }, signal)
  for (const [name, value] of latestValues(older)) if (!latest.has(name)) latest.set(name, { ...value, intervalMs: undefined })
  return latest
}

const toLocalInput = (ms: number): string => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000)
  return d.toISOString().slice(0, 16)
}

/** Latest values (age, stale marked) and a chart per numeric metric over a chosen range. */
export function DeviceTelemetry(props: { id: string; bus: EventBus; live: boolean }): JSX.Element {
  const { api } = useSession()
  const now = useNow()
  const [kind, setKind] = useState<RangeKind>('1h')
  const [custom, setCustom] = useState(() => ({ from: toLocalInput(Date.now() - HOUR_MS), to: toLocalInput(Date.now()) }))
  const [applied, setApplied] = useState<{ from: number; to: number } | undefined>(undefined)
  const [range, setRange] = useState<ResolvedRange | undefined>(undefined)
  const [points, setPoints] = useState<TelemetryPoint[]>([])
  const [livePoints, setLivePoints] = useState<TelemetryPoint[]>([])
  const [latest, setLatest] = useState<Map<string, Latest>>(new Map())
  const [error, setError] = useState<unknown>(undefined)
  const [loading, setLoading] = useState(true)

  useAbortableEffect(
    async (signal) => {
      if (kind === 'custom' && applied === undefined) return
      const resolved = resolveRange(kind, Date.now(), applied)
      setRange(resolved)
      setLoading(true)
      setLivePoints([])
      try {
        setPoints(await api.telemetry(props.id, resolved.query, signal))
        setError(undefined)
      } finally {
        setLoading(false)
      }
    },
    setError,
    [api, props.id, kind, applied],
  )

  // The chart's query reports its own errors; latest values are shown when they can be read.
  useAbortableEffect(async (signal) => setLatest(await loadLatest(api, props.id, Date.now(), signal)), () => undefined, [api, props.id])

  useBus(props.bus, (event) => {
    if (event.type !== 'telemetry') return
    setLatest((current) => {
      const next = new Map(current)
      for (const [name, value] of latestValues(event.points)) {
        const before = current.get(name)
        next.set(name, { ...value, intervalMs: before === undefined ? undefined : value.ts - before.ts > 0 ? value.ts - before.ts : before.intervalMs })
      }
      return next
    })
    if (range?.follows === true) {
      const floor = kind === 'live' ? Date.now() - LIVE_TAIL_MS : 0
      setLivePoints((current) => [...current, ...event.points].filter((p) => p.ts >= floor).slice(-MAX_CHART_POINTS))
    }
  })

  const series = useMemo(() => {
    const floor = kind === 'live' ? Date.now() - LIVE_TAIL_MS : 0
    return toSeries([...points.filter((p) => p.ts >= floor), ...livePoints])
  }, [points, livePoints, kind])

  // The x axis spans the chosen range (up to now for a following range), not just the data in it.
  const span: [number, number] | undefined =
    range === undefined ? undefined : [range.query.from / 1000, (range.follows ? Math.max(range.query.to, now) : range.query.to) / 1000]
  const truncated = points.length >= TELEMETRY_LIMIT
  const every = range?.query.every
  return (
    <section aria-labelledby="telemetry-title" class="card">
      <h2 id="telemetry-title">Telemetry</h2>
      <h3>Latest values</h3>
      {latest.size === 0 ? (
        <p class="muted">No reading in the last 7 days.</p>
      ) : (
        <DataTable label="Latest values" columns={['Metric', 'Value', 'Age', 'State']} class="latest" testId="latest">
          {[...latest].map(([name, value]) => {
            const stale = isStale(value, now)
            return (
              <tr key={name} data-metric={name} class={stale ? 'stale' : ''}>
                <th scope="row">{name}</th>
                <td class="value">{metricText(value.value)}</td>
                <td title={dateTime(value.ts)}>{ago(value.ts, now)}</td>
                <td>{stale ? <span class="state warn">Stale</span> : <span class="state on">Fresh</span>}</td>
              </tr>
            )
          })}
        </DataTable>
      )}
      <h3>Charts</h3>
      <div class="range" role="group" aria-label="Time range">
        {RANGES.map(([value, label]) => (
          <button key={value} type="button" aria-pressed={kind === value} onClick={() => setKind(value)}>
            {label}
          </button>
        ))}
      </div>
      {kind === 'custom' ? (
        <form
          class="custom-range"
          onSubmit={(e) => {
            e.preventDefault()
            const from = new Date(custom.from).getTime()
            const to = new Date(custom.to).getTime()
            if (Number.isFinite(from) && Number.isFinite(to) && from < to) setApplied({ from, to })
            else setError('Custom range: "from" must be a time before "to"')
          }}
        >
          <label>
            From
            <input type="datetime-local" value={custom.from} onInput={(e) => setCustom({ ...custom, from: e.currentTarget.value })} />
          </label>
          <label>
            To
            <input type="datetime-local" value={custom.to} onInput={(e) => setCustom({ ...custom, to: e.currentTarget.value })} />
          </label>
          <button type="submit">Show</button>
        </form>
      ) : null}
      <p class="muted" data-testid="range-note">
        {loading
          ? 'Loading…'
          : `${count(points.length)} points${
              every === undefined ? ', raw' : looksAggregated(points, every) ? `, mean per ${every}` : `, raw: this hub does not aggregate (every=${every})`
            }`}
        {truncated ? `; the API's limit of ${count(TELEMETRY_LIMIT)} points cut this range: pick a shorter one` : ''}
        {range?.follows === true ? (props.live ? '; live readings are appended' : '; live readings need the event stream, not available now') : ''}
      </p>
      <ErrorNote error={error} />
      {series.columns.size === 0 && !loading ? <p class="muted">No numeric metric in this range.</p> : null}
      <div class="charts">
        {[...series.columns].map(([name, values]) => (
          <MetricChart key={name} metric={name} times={series.times} values={values} span={span} />
        ))}
      </div>
    </section>
  )
}
