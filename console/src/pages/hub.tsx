import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import type { NodeInfo, Readiness } from '../lib/api.js'
import { isHttpStatus } from '../lib/errors.js'
import { ago, bytes, count, dateTime } from '../lib/format.js'
import { parsePrometheus, promRate, promSum, type PromMetrics } from '../lib/prom.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect, useNow, usePoll } from '../ui/hooks.js'
import { DataTable, ErrorNote } from '../ui/widgets.js'

/** The hub page re-reads readiness, nodes and metrics this often, in ms; default 5,000. */
const REFRESH_MS = 5000

/** A metric whose name says it is InfluxDB's lag, if this hub exposes one. */
function influxLag(metrics: PromMetrics): { name: string; value: number } | undefined {
  for (const name of metrics.keys()) {
    if (/^fleetgate_.*influx.*lag/.test(name)) {
      const value = promSum(metrics, name)
      if (value !== undefined) return { name, value }
    }
  }
  return undefined
}

/** Readiness, cluster nodes and key figures from `/metrics` (readings/s from two scrapes). */
export function HubPage(): JSX.Element {
  const { api } = useSession()
  const now = useNow()
  const [ready, setReady] = useState<Readiness | undefined>(undefined)
  const [nodes, setNodes] = useState<NodeInfo[] | 'absent' | undefined>(undefined)
  // The last two scrapes: a counter's rate is their difference over the time between them.
  const [samples, setSamples] = useState<Array<{ at: number; metrics: PromMetrics }>>([])
  const [error, setError] = useState<unknown>(undefined)

  const refresh = async (signal: AbortSignal): Promise<void> => {
    const [readiness, text, cluster] = await Promise.all([
      api.readiness(signal),
      api.metrics(signal),
      nodes === 'absent' ? Promise.resolve('absent' as const) : api.nodes(signal).catch((err: unknown) => (isHttpStatus(err, 404) ? ('absent' as const) : Promise.reject(err))),
    ])
    setReady(readiness)
    setNodes(cluster)
    setSamples((current) => [...current.slice(-1), { at: Date.now(), metrics: parsePrometheus(text) }])
    setError(undefined)
  }
  useAbortableEffect(refresh, setError, [api])
  usePoll(true, REFRESH_MS, (signal) =>
    refresh(signal).catch((err: unknown) => {
      if (!signal.aborted) setError(err)
    }),
  )

  const sample = samples[samples.length - 1]
  const before = samples.length > 1 ? samples[0] : undefined
  const m = sample?.metrics
  const rate = (name: string): string => {
    if (m === undefined || before === undefined || sample === undefined) return 'measuring…'
    const value = promRate(promSum(before.metrics, name), promSum(m, name), sample.at - before.at)
    return value === undefined ? 'unknown' : `${value.toFixed(1)} /s`
  }
  const figure = (name: string, format: (n: number) => string = count): string => {
    const value = m === undefined ? undefined : promSum(m, name)
    return value === undefined ? 'not exposed' : format(value)
  }
  const lag = m === undefined ? undefined : influxLag(m)
  const figures: Array<[string, string]> = [
    ['Device sessions', figure('fleetgate_sessions')],
    ['Readings per second', rate('fleetgate_readings_total')],
    ['Readings accepted', figure('fleetgate_readings_total')],
    ['Spool', figure('fleetgate_spool_bytes', bytes)],
    ['InfluxDB lag', lag === undefined ? 'not exposed by this hub' : `${count(lag.value)} (${lag.name})`],
    ['Points to InfluxDB per second', rate('fleetgate_influx_points_total')],
    ['InfluxDB write errors', figure('fleetgate_influx_write_errors_total')],
    ['Dead-lettered points', figure('fleetgate_influx_dead_letters_total')],
    ['Naks', figure('fleetgate_naks_total')],
    ['Commands ended', figure('fleetgate_commands_total')],
    ['Resident memory', figure('fleetgate_process_resident_memory_bytes', bytes)],
  ]

  return (
    <section aria-labelledby="hub-title">
      <h1 id="hub-title" tabIndex={-1}>
        Hub
      </h1>
      <ErrorNote error={error} />
      <section class="card" aria-labelledby="ready-title">
        <h2 id="ready-title">Readiness</h2>
        {ready === undefined ? (
          <p class="loading">Loading…</p>
        ) : (
          <>
            <p class={ready.ready ? 'state on' : 'state warn'} data-testid="readiness">
              {ready.ready ? 'Ready' : `Not ready: ${ready.message}`}
            </p>
            <dl class="details">
              {Object.entries(ready.checks).map(([name, value]) => (
                <div key={name}>
                  <dt>{name}</dt>
                  <dd>{value}</dd>
                </div>
              ))}
            </dl>
          </>
        )}
      </section>
      <section class="card" aria-labelledby="figures-title">
        <h2 id="figures-title">Figures</h2>
        <dl class="figures wide" data-testid="hub-figures">
          {figures.map(([label, value]) => (
            <div key={label}>
              <dt>{label}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
        <p class="muted">From /metrics every {REFRESH_MS / 1000} s; rates over the last two reads.</p>
      </section>
      {nodes === undefined || nodes === 'absent' ? null : (
        <section class="card" aria-labelledby="nodes-title" data-testid="nodes">
          <h2 id="nodes-title">Nodes</h2>
          <DataTable label="Nodes" columns={['Node', 'State', 'Sessions', 'Started', 'Last seen', 'Version']}>
            {nodes.map((n) => (
              <tr key={n.id}>
                <th scope="row">{n.id}</th>
                <td data-testid="node-state">{n.alive ? 'Alive' : 'Stopped beating'}</td>
                <td>{count(n.sessions)}</td>
                <td>{dateTime(n.startedAt)}</td>
                <td>{ago(Date.parse(n.lastSeenAt), now)}</td>
                <td>{n.version}</td>
              </tr>
            ))}
          </DataTable>
        </section>
      )}
    </section>
  )
}
