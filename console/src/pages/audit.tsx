import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import type { AuditEntry } from '../lib/api.js'
import { findLastSeq } from '../lib/cursor.js'
import { dateTime } from '../lib/format.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect } from '../ui/hooks.js'
import { DataTable, ErrorNote } from '../ui/widgets.js'

/** Entries per page; default 100. */
const PAGE = 100

interface Filters {
  readonly actor: string
  readonly action: string
  readonly target: string
  readonly outcome: string
}

const matches = (entry: AuditEntry, f: Filters): boolean =>
  (f.actor === '' || entry.actor === f.actor) &&
  (f.action === '' || entry.action === f.action) &&
  entry.target.toLowerCase().includes(f.target.toLowerCase()) &&
  entry.outcome.toLowerCase().includes(f.outcome.toLowerCase())

/**
 * The audit log (admin), newest page first. The API pages oldest first with `after`; the newest
 * page is found with a few one-entry reads (`findLastSeq`), then pages step back by seq.
 * Filters apply to the page shown.
 */
export function AuditPage(): JSX.Element {
  const { api } = useSession()
  // The page shown: entries after `after`, and below `before` when stepping back (seqs may have gaps).
  const [view, setView] = useState<{ after: number; before?: number } | undefined>(undefined)
  const [lastSeq, setLastSeq] = useState<number | undefined>(undefined)
  const [entries, setEntries] = useState<AuditEntry[] | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [filters, setFilters] = useState<Filters>({ actor: '', action: '', target: '', outcome: '' })
  const [reload, setReload] = useState(0)

  useAbortableEffect(
    async (signal) => {
      const last = await findLastSeq(async (seq) => (await api.audit(seq, 1, signal)).length > 0)
      setLastSeq(last)
      setView({ after: Math.max(0, last - PAGE) })
    },
    setError,
    [api, reload],
  )

  useAbortableEffect(
    async (signal) => {
      if (view === undefined) return
      const page = await api.audit(view.after, PAGE, signal)
      setEntries(page.filter((e) => view.before === undefined || e.seq < view.before))
      setError(undefined)
    },
    setError,
    [api, view],
  )

  const shown = (entries ?? []).filter((e) => matches(e, filters)).reverse()
  const actors = [...new Set((entries ?? []).map((e) => e.actor))].sort()
  const actions = [...new Set((entries ?? []).map((e) => e.action))].sort()
  const first = entries?.[0]?.seq
  const latest = entries?.[entries.length - 1]?.seq
  const newest = latest === undefined || lastSeq === undefined || latest >= lastSeq

  return (
    <section aria-labelledby="audit-title">
      <div class="page-head">
        <h1 id="audit-title" tabIndex={-1}>
          Audit log
        </h1>
        <button type="button" onClick={() => setReload((n) => n + 1)}>
          Newest
        </button>
      </div>
      <form class="filters" role="search" aria-label="Filter this page" onSubmit={(e) => e.preventDefault()}>
        <label>
          Actor
          <select value={filters.actor} onChange={(e) => setFilters({ ...filters, actor: e.currentTarget.value })}>
            <option value="">All</option>
            {actors.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Action
          <select value={filters.action} onChange={(e) => setFilters({ ...filters, action: e.currentTarget.value })}>
            <option value="">All</option>
            {actions.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Target contains
          <input value={filters.target} spellcheck={false} onInput={(e) => setFilters({ ...filters, target: e.currentTarget.value })} />
        </label>
        <label>
          Outcome contains
          <input value={filters.outcome} spellcheck={false} onInput={(e) => setFilters({ ...filters, outcome: e.currentTarget.value })} />
        </label>
      </form>
      <ErrorNote error={error} />
      <p class="muted" role="status">
        {entries === undefined ? 'Loading…' : `${shown.length} of ${entries.length} entries on this page match${lastSeq === 0 ? '; the log is empty' : ''}.`}
      </p>
      <DataTable label="Audit entries" columns={['Seq', 'Time', 'Actor', 'Action', 'Target', 'Outcome']} testId="audit-table">
        {shown.map((e) => (
          <tr key={e.seq}>
            <td>{e.seq}</td>
            <td>{dateTime(e.at)}</td>
            <td>{e.actor}</td>
            <td>{e.action}</td>
            <td class="mono">{e.target}</td>
            <td>{e.outcome}</td>
          </tr>
        ))}
      </DataTable>
      <nav class="pager" aria-label="Audit pages">
        <button type="button" disabled={newest || entries === undefined} onClick={() => latest !== undefined && setView({ after: latest })}>
          Newer
        </button>
        <button type="button" disabled={first === undefined || first <= 1} onClick={() => first !== undefined && setView({ after: Math.max(0, first - 1 - PAGE), before: first })}>
          Older
        </button>
      </nav>
    </section>
  )
}
