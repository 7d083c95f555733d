import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import { FINAL_COMMAND_STATUSES, type CommandRecord } from '../lib/api.js'
import { ConsoleError } from '../lib/errors.js'
import { dateTime } from '../lib/format.js'
import { CommandFields } from '../ui/command-form.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect, useBus, usePoll, type EventBus } from '../ui/hooks.js'
import { DataTable, ErrorNote, JsonBlock } from '../ui/widgets.js'

/** Commands listed; default 20, newest first. */
const LIST_LIMIT = 20
/** Without the event stream, the list is re-read this often while a command sent here is unfinished, in ms. */
const POLL_MS = 1000

/** The command form and the device's recent commands, each status change shown as it happens. */
export function DeviceCommands(props: { id: string; bus: EventBus; live: boolean }): JSX.Element {
  const { api, abilities } = useSession()
  const [items, setItems] = useState<CommandRecord[]>([])
  const [error, setError] = useState<unknown>(undefined)
  const [watching, setWatching] = useState<ReadonlySet<string>>(new Set())

  const merge = (record: CommandRecord): void =>
    setItems((current) => {
      const index = current.findIndex((c) => c.id === record.id)
      if (index === -1) return [record, ...current].slice(0, LIST_LIMIT)
      return current.map((c, i) => (i === index ? record : c))
    })

  useAbortableEffect(async (signal) => setItems(await api.listCommands(props.id, LIST_LIMIT, signal)), setError, [api, props.id])

  useBus(props.bus, (event) => {
    if (event.type === 'command') merge(event.command)
  })

  // Only commands sent from this page are followed by polling, one list read per second at most,
  // and only while the live stream is not there to report them.
  usePoll(!props.live && watching.size > 0, POLL_MS, async (signal) => {
    const fresh = await api.listCommands(props.id, LIST_LIMIT, signal)
    setItems(fresh)
    const open = new Set([...watching].filter((id) => fresh.some((c) => c.id === id && !FINAL_COMMAND_STATUSES.has(c.status))))
    if (open.size !== watching.size) setWatching(open)
  })

  return (
    <section aria-labelledby="commands-title" class="card">
      <h2 id="commands-title">Commands</h2>
      {abilities.operate ? (
        <CommandFields
          submitLabel="Send command"
          onSubmit={async (request) => {
            try {
              const record = await api.sendCommand(props.id, request)
              merge(record)
              if (!FINAL_COMMAND_STATUSES.has(record.status)) setWatching((w) => new Set([...w, record.id]))
            } catch (err) {
              if (err instanceof ConsoleError && err.apiCode === 'device_offline') {
                throw new ConsoleError(err.code, `${props.id} is offline. Give a TTL to queue the command until it connects.`, err.status, err.apiCode)
              }
              throw err
            }
          }}
        />
      ) : null}
      <ErrorNote error={error} />
      {items.length === 0 ? (
        <p class="muted">No command yet.</p>
      ) : (
        <DataTable label="Recent commands" columns={['Command', 'Status', 'Times', 'Result']} class="commands" testId="commands">
          {items.map((c) => (
            <tr key={c.id} data-command={c.id}>
              <th scope="row">
                {c.name}
                <div class="muted mono small">{c.id}</div>
              </th>
              <td>
                <span class={`status status-${c.status}`} data-testid="command-status">
                  {c.status}
                </span>
              </td>
              <td class="small">
                <div>created {dateTime(c.createdAt)}</div>
                {c.sentAt === undefined ? null : <div>sent {dateTime(c.sentAt)}</div>}
                {c.completedAt === undefined ? null : <div>ended {dateTime(c.completedAt)}</div>}
                {c.expiresAt === undefined || c.status !== 'queued' ? null : <div>expires {dateTime(c.expiresAt)}</div>}
              </td>
              <td data-testid="command-result">
                {c.error === undefined ? null : <p class="error">{c.error}</p>}
                {c.result === undefined ? null : <JsonBlock value={c.result} label={`Result of ${c.name}`} />}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  )
}
