import type { JSX } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { DeviceView } from '../lib/api.js'
import { isHttpStatus } from '../lib/errors.js'
import type { HubEvent } from '../lib/events.js'
import { ago, dateTime } from '../lib/format.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect, useHubEvents, useNow, type EventBus } from '../ui/hooks.js'
import type { StreamState } from '../lib/sse.js'
import { ErrorNote, LiveBadge, TagList } from '../ui/widgets.js'
import { DeviceAdmin, TagsEditor } from './device-admin.js'
import { DeviceCommands } from './device-commands.js'
import { DeviceTelemetry } from './device-telemetry.js'
import { DeviceTwin } from './device-twin.js'

/** Status changes kept in the history; default 50. */
const HISTORY_MAX = 50

/** One device: details, tags, history, telemetry, twin, commands and the admin actions. */
export function DevicePage(props: { id: string }): JSX.Element {
  const { api } = useSession()
  const now = useNow()
  const [device, setDevice] = useState<DeviceView | undefined>(undefined)
  const [missing, setMissing] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const [history, setHistory] = useState<Array<{ online: boolean; at: string }>>([])
  const [reload, setReload] = useState(0)
  const bus = useRef<EventBus>({ listeners: new Set() }).current

  useAbortableEffect(
    async (signal) => {
      setDevice(await api.getDevice(props.id, signal))
      setError(undefined)
    },
    (err) => (isHttpStatus(err, 404) ? setMissing(true) : setError(err)),
    [api, props.id, reload],
  )

  const live = useHubEvents(['status', 'telemetry', 'command', 'twin'], [props.id], (event) => {
    if (event.device !== props.id) return
    if (event.type === 'status') {
      setHistory((h) => [{ online: event.online, at: event.at }, ...h].slice(0, HISTORY_MAX))
      setDevice((d) => (d === undefined ? d : { ...d, online: event.online, ...(event.online ? { connectedAt: event.at } : { lastSeenAt: event.at }) }))
    }
    for (const listener of bus.listeners) listener(event)
  })

  /** Re-reads the device after an action whose effect (a closed session) follows the answer. */
  const changed = (next?: DeviceView): void => {
    if (next !== undefined) setDevice(next)
    setTimeout(() => setReload((n) => n + 1), 1000)
  }

  // One heading element whatever the state, so the focus the shell gives it survives the load.
  return (
    <article aria-labelledby="device-title" class="device">
      <p class="crumbs">
        <a href="#/fleet">Fleet</a> /
      </p>
      <div class="page-head">
        <h1 id="device-title" tabIndex={-1}>
          {missing ? `No device "${props.id}"` : props.id}
        </h1>
        {device === undefined ? null : (
          <span class={device.online ? 'state on' : 'state off'} data-testid="device-online">
            {device.online ? 'Online' : 'Offline'}
          </span>
        )}
        {device?.disabled === true ? (
          <span class="state warn" data-testid="device-disabled">
            Disabled
          </span>
        ) : null}
        <LiveBadge {...live} />
      </div>
      <ErrorNote error={error} />
      {missing ? (
        <p>
          The hub has no device with this id. <a href="#/fleet">Back to the fleet</a>.
        </p>
      ) : device === undefined ? (
        error === undefined ? (
          <p class="loading">Loading…</p>
        ) : null
      ) : (
        <DeviceSections device={device} live={live.state} history={history} bus={bus} now={now} changed={changed} />
      )}
    </article>
  )
}

/** Everything below the heading, once the device is loaded. */
function DeviceSections(props: {
  device: DeviceView
  live: StreamState
  history: ReadonlyArray<{ online: boolean; at: string }>
  bus: EventBus
  now: number
  changed: (next?: DeviceView) => void
}): JSX.Element {
  const { device, history, bus, now, changed } = props
  const streaming = props.live === 'live'
  return (
    <>
      <section aria-labelledby="details-title" class="card">
        <h2 id="details-title">Details</h2>
        <dl class="details">
          <dt>Key type</dt>
          <dd>{device.keyType}</dd>
          <dt>Created</dt>
          <dd>{dateTime(device.createdAt)}</dd>
          <dt>Connected</dt>
          <dd>{device.online && device.connectedAt !== undefined ? `${dateTime(device.connectedAt)} (${ago(Date.parse(device.connectedAt), now)})` : '—'}</dd>
          <dt>Last seen</dt>
          <dd>{device.online ? 'now' : device.lastSeenAt === undefined ? 'never' : `${dateTime(device.lastSeenAt)} (${ago(Date.parse(device.lastSeenAt), now)})`}</dd>
          {device.node === undefined ? null : (
            <>
              <dt>Node</dt>
              <dd>{device.node}</dd>
            </>
          )}
          <dt>Tags</dt>
          <dd>
            <TagList tags={device.tags} />
          </dd>
        </dl>
        <TagsEditor device={device} onSaved={changed} />
        <DeviceAdmin device={device} onChanged={changed} />
      </section>
      <section aria-labelledby="history-title" class="card">
        <h2 id="history-title">Connection history</h2>
        {history.length === 0 ? (
          <p class="muted">
            {streaming
              ? 'No connect or disconnect seen since this page opened.'
              : 'Connects and disconnects appear here as the live event stream reports them; it is not available now.'}
          </p>
        ) : (
          <ol class="history">
            {history.map((h, i) => (
              <li key={i}>
                <span class={h.online ? 'state on' : 'state off'}>{h.online ? 'Connected' : 'Disconnected'}</span> {dateTime(h.at)} ({ago(Date.parse(h.at), now)})
              </li>
            ))}
          </ol>
        )}
      </section>
      <DeviceTelemetry id={device.id} bus={bus} live={streaming} />
      <DeviceTwin id={device.id} bus={bus} />
      <DeviceCommands id={device.id} bus={bus} live={streaming} />
    </>
  )
}
