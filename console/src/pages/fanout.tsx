import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import { DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import type { BatchStatus } from '../lib/api.js'
import { count } from '../lib/format.js'
import { CommandFields } from '../ui/command-form.js'
import { useSession } from '../ui/context.js'
import { usePoll } from '../ui/hooks.js'
import { ErrorNote, rowsToTags, TagEditor, type TagRow } from '../ui/widgets.js'

/** A batch's counts are read this often until every command ended, in ms; default 1,000. */
const POLL_MS = 1000
/** After a minute of polling, the interval grows to this, in ms (long TTLs); default 5,000. */
const SLOW_POLL_MS = 5000
const SLOW_AFTER_MS = 60_000

const ended = (b: BatchStatus): number => b.succeeded + b.failed + b.timeout + b.expired

/** Fan-out (operator): one command to every device with the given tags, then its counts, live. */
export function FanOutPage(): JSX.Element {
  const { api } = useSession()
  const [rows, setRows] = useState<TagRow[]>([])
  const [ids, setIds] = useState('')
  const [batches, setBatches] = useState<Array<{ name: string; startedAt: number; status: BatchStatus }>>([])

  const tags = rowsToTags(rows)
  const idList = ids.split(/[\s,]+/).filter((id) => id !== '')
  const badId = idList.find((id) => !DEVICE_ID_PATTERN.test(id))
  const targetProblem = !tags.ok
    ? tags.message
    : badId !== undefined
      ? `"${badId}" is not a device id`
      : Object.keys(tags.tags).length === 0 && idList.length === 0
        ? 'give at least one tag or device id'
        : undefined

  return (
    <section aria-labelledby="fanout-title">
      <h1 id="fanout-title" tabIndex={-1}>
        Fan-out
      </h1>
      <p class="muted">One command to every device that has all the tags (and to the ids listed). Offline devices get it when they connect if a TTL is given.</p>
      <CommandFields
        submitLabel="Send to all"
        extraProblem={targetProblem}
        onSubmit={async (request) => {
          if (!tags.ok) return
          const target = {
            ...(Object.keys(tags.tags).length === 0 ? {} : { tags: tags.tags }),
            ...(idList.length === 0 ? {} : { ids: idList }),
          }
          const started = await api.fanOut({ ...request, target })
          const status = await api.batch(started.batch)
          setBatches((list) => [{ name: request.name, startedAt: Date.now(), status }, ...list])
        }}
      >
        <>
          <TagEditor rows={rows} onChange={setRows} legend="Target tags (all must match)" />
          <label>
            Target device ids (optional, separated by spaces or commas)
            <textarea class="mono" rows={2} spellcheck={false} value={ids} onInput={(e) => setIds(e.currentTarget.value)} />
          </label>
        </>
      </CommandFields>
      {batches.map((b) => (
        <BatchCard
          key={b.status.batch}
          name={b.name}
          startedAt={b.startedAt}
          status={b.status}
          onStatus={(status) => setBatches((list) => list.map((x) => (x.status.batch === status.batch ? { ...x, status } : x)))}
        />
      ))}
    </section>
  )
}

function BatchCard(props: { name: string; startedAt: number; status: BatchStatus; onStatus: (status: BatchStatus) => void }): JSX.Element {
  const { api } = useSession()
  const [error, setError] = useState<unknown>(undefined)
  const s = props.status
  const done = ended(s) >= s.targeted
  const slow = Date.now() - props.startedAt > SLOW_AFTER_MS
  usePoll(!done, slow ? SLOW_POLL_MS : POLL_MS, async (signal) => {
    try {
      props.onStatus(await api.batch(s.batch, signal))
      setError(undefined)
    } catch (err) {
      if (!signal.aborted) setError(err)
    }
  })
  const cells: Array<[string, number]> = [
    ['targeted', s.targeted],
    ['queued', s.queued],
    ['sent', s.sent],
    ['succeeded', s.succeeded],
    ['failed', s.failed],
    ['timeout', s.timeout],
    ['expired', s.expired],
  ]
  return (
    <section class="card batch" aria-label={`Batch ${s.batch}`} data-batch={s.batch}>
      <h2>
        {props.name} <span class="muted mono small">{s.batch}</span>
      </h2>
      <progress max={Math.max(1, s.targeted)} value={ended(s)} aria-label="Commands ended" />
      <p role="status" data-testid="batch-state">
        {done ? 'Finished' : 'In progress'}: {count(ended(s))} of {count(s.targeted)} ended
      </p>
      <dl class="figures">
        {cells.map(([label, value]) => (
          <div key={label}>
            <dt>{label}</dt>
            <dd data-testid={`batch-${label}`}>{count(value)}</dd>
          </div>
        ))}
      </dl>
      <ErrorNote error={error} />
    </section>
  )
}
