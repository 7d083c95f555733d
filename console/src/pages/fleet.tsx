import type { JSX } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { Api, DeviceView } from '../lib/api.js'
import { cursorBefore, isIdPrefix } from '../lib/cursor.js'
import { isHttpStatus } from '../lib/errors.js'
import { ago, count, dateTime } from '../lib/format.js'
import { parsePrometheus, promSum } from '../lib/prom.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect, useHubEvents, useNow } from '../ui/hooks.js'
import { deviceHref } from '../ui/route.js'
import { DataTable, ErrorNote, LiveBadge, TagList } from '../ui/widgets.js'
import { ProvisionPanel } from './provision.js'

/** Page sizes offered; default 50. */
const PAGE_SIZES = [25, 50, 100, 200] as const
/** Devices the total count pages through before it says "N+", 1,000 per request; default 10,000. */
export const COUNT_SCAN_MAX = 10_000
/** Status events refresh the counts at most this often, in ms; default 5,000. */
const COUNT_REFRESH_MS = 5000
/** Typing pauses this long before the search runs, in ms. */
const SEARCH_DEBOUNCE_MS = 250

interface Filters {
  readonly prefix: string
  readonly tags: string
  readonly online: 'all' | 'true' | 'false'
  readonly limit: number
}

/** Parses the tag filter box: `name:value` terms separated by spaces or commas. */
function parseTagFilter(text: string): string[] | string {
  const terms = text.split(/[\s,]+/).filter((t) => t !== '')
  const bad = terms.find((t) => t.indexOf(':') < 1 || t.endsWith(':'))
  return bad === undefined ? terms : `"${bad}" is not name:value`
}

/** Fleet counts: online from `/nodes` (cluster) or `/metrics`, total from `fleetgate_devices` or a bounded scan. */
async function fleetCounts(api: Api, signal: AbortSignal): Promise<{ total: string; online: string }> {
  let metrics
  try {
    metrics = parsePrometheus(await api.metrics(signal))
  } catch {
    metrics = parsePrometheus('')
  }
  let online = promSum(metrics, 'fleetgate_sessions')
  try {
    online = (await api.nodes(signal)).reduce((sum, node) => sum + node.sessions, 0)
  } catch (err) {
    if (!isHttpStatus(err, 404)) throw err
  }
  const registered = promSum(metrics, 'fleetgate_devices')
  let total: string
  if (registered !== undefined) total = count(registered)
  else {
    let seen = 0
    let after: string | undefined
    for (;;) {
      const page = await api.listDevices({ limit: 1000, ...(after === undefined ? {} : { after }) }, signal)
      seen += page.items.length
      if (page.next === null) {
        total = count(seen)
        break
      }
      if (seen >= COUNT_SCAN_MAX) {
        total = `${count(seen)}+`
        break
      }
      after = page.next
    }
  }
  return { total, online: online === undefined ? 'unknown' : count(online) }
}

/** The fleet: counts, filters, a cursor-paged table with live rows, provisioning. */
export function FleetPage(): JSX.Element {
  const { api, abilities } = useSession()
  const now = useNow()
  const [search, setSearch] = useState('')
  // The cursor lives with the filters: a filter change starts again from the first page in one render.
  const [view, setView] = useState<{ filters: Filters; after: string | undefined; trail: Array<string | undefined> }>({
    filters: { prefix: '', tags: '', online: 'all', limit: 50 },
    after: undefined,
    trail: [],
  })
  const { filters, after, trail } = view
  const setFilters = (change: Partial<Filters>): void => setView((v) => ({ filters: { ...v.filters, ...change }, after: undefined, trail: [] }))
  const [page, setPage] = useState<{ items: DeviceView[]; next: string | null } | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [counts, setCounts] = useState<{ total: string; online: string } | undefined>(undefined)
  const [countsWanted, setCountsWanted] = useState(0)
  const [reload, setReload] = useState(0)
  const lastCountAt = useRef(0)

  useEffect(() => {
    const timer = setTimeout(() => {
      setView((v) => (v.filters.prefix === search.trim() ? v : { filters: { ...v.filters, prefix: search.trim() }, after: undefined, trail: [] }))
    }, SEARCH_DEBOUNCE_MS)
    return () => clearTimeout(timer)
  }, [search])

  const tagTerms = parseTagFilter(filters.tags)
  const prefixProblem = filters.prefix !== '' && !isIdPrefix(filters.prefix) ? 'ids hold only A-Z a-z 0-9 _ -' : undefined

  useAbortableEffect(
    async (signal) => {
      if (typeof tagTerms === 'string' || prefixProblem !== undefined) return
      const start = after ?? (filters.prefix === '' ? undefined : cursorBefore(filters.prefix))
      const result = await api.listDevices(
        {
          tags: tagTerms,
          limit: filters.limit,
          ...(filters.online === 'all' ? {} : { online: filters.online === 'true' }),
          ...(start === undefined ? {} : { after: start }),
        },
        signal,
      )
      setError(undefined)
      if (filters.prefix === '') return setPage(result)
      // Ids come in order: the first one without the prefix ends the search.
      const matching = result.items.filter((d) => d.id.startsWith(filters.prefix))
      setPage({ items: matching, next: matching.length === result.items.length ? result.next : null })
    },
    setError,
    [api, view, reload],
  )

  useAbortableEffect(
    async (signal) => {
      lastCountAt.current = Date.now()
      setCounts(await fleetCounts(api, signal))
    },
    // Counts are a convenience: the table says what failed.
    () => undefined,
    [api, countsWanted],
  )

  const live = useHubEvents(['status'], [], (event) => {
    if (event.type !== 'status') return
    setPage((current) =>
      current === undefined
        ? current
        : {
            ...current,
            items: current.items.map((d) =>
              d.id !== event.device ? d : { ...d, online: event.online, ...(event.online ? { connectedAt: event.at } : { lastSeenAt: event.at }) },
            ),
          },
    )
    if (Date.now() - lastCountAt.current >= COUNT_REFRESH_MS) setCountsWanted((n) => n + 1)
  })

  const items = page?.items ?? []
  const showNode = items.some((d) => d.node !== undefined)
  const pageNumber = trail.length + 1

  return (
    <section aria-labelledby="fleet-title">
      <div class="page-head">
        <h1 id="fleet-title" tabIndex={-1}>
          Fleet
        </h1>
        <dl class="figures" aria-label="Fleet counts">
          <div>
            <dt>Devices</dt>
            <dd data-testid="count-total">{counts?.total ?? '…'}</dd>
          </div>
          <div>
            <dt>Online</dt>
            <dd data-testid="count-online">{counts?.online ?? '…'}</dd>
          </div>
        </dl>
        <LiveBadge {...live} />
      </div>
      {abilities.administer ? (
        <ProvisionPanel
          onCreated={() => {
            setReload((n) => n + 1)
            setCountsWanted((n) => n + 1)
          }}
        />
      ) : null}
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search by id
          <input type="search" value={search} placeholder="id prefix" spellcheck={false} onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <label>
          Tags
          <input
            value={filters.tags}
            placeholder="site:berlin model:x2"
            spellcheck={false}
            onChange={(e) => setFilters({ tags: e.currentTarget.value })}
          />
        </label>
        <label>
          State
          <select value={filters.online} onChange={(e) => setFilters({ online: e.currentTarget.value as Filters['online'] })}>
            <option value="all">All</option>
            <option value="true">Online</option>
            <option value="false">Offline</option>
          </select>
        </label>
        <label>
          Per page
          <select value={filters.limit} onChange={(e) => setFilters({ limit: Number(e.currentTarget.value) })}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => (setReload((n) => n + 1), setCountsWanted((n) => n + 1))}>
          Refresh
        </button>
      </form>
      {typeof tagTerms === 'string' ? <p class="error" role="alert">Tags filter: {tagTerms}</p> : null}
      {prefixProblem === undefined ? null : <p class="error" role="alert">Search: {prefixProblem}</p>}
      <ErrorNote error={error} />
      <DataTable label="Devices" columns={['Device', 'Online', 'Last seen', showNode ? 'Node' : null, 'Tags', 'Key', 'Disabled']} class="devices" testId="fleet-table" busy={page === undefined} after={page !== undefined && items.length === 0 ? <p class="empty">No device matches.</p> : null}>
        {items.map((d) => (
          <tr key={d.id} data-device={d.id}>
            <th scope="row">
              <a href={deviceHref(d.id)}>{d.id}</a>
            </th>
            <td data-testid="online">
              <span class={d.online ? 'state on' : 'state off'}>{d.online ? 'Online' : 'Offline'}</span>
            </td>
            <td title={d.lastSeenAt === undefined ? '' : dateTime(d.lastSeenAt)}>
              {d.online ? 'now' : d.lastSeenAt === undefined ? 'never' : ago(Date.parse(d.lastSeenAt), now)}
            </td>
            {showNode ? <td>{d.node ?? ''}</td> : null}
            <td>
              <TagList tags={d.tags} />
            </td>
            <td>{d.keyType}</td>
            <td>{d.disabled ? <span class="state warn">Disabled</span> : 'No'}</td>
          </tr>
        ))}
      </DataTable>
      <nav class="pager" aria-label="Device pages">
        <button
          type="button"
          disabled={trail.length === 0}
          onClick={() => setView({ filters, after: trail[trail.length - 1], trail: trail.slice(0, -1) })}
        >
          Previous
        </button>
        <span>Page {pageNumber}</span>
        <button
          type="button"
          disabled={page?.next === null || page === undefined}
          onClick={() => {
            if (page?.next === null || page === undefined) return
            setView({ filters, after: page.next, trail: [...trail, after] })
          }}
        >
          Next
        </button>
      </nav>
    </section>
  )
}
