import type { ComponentChildren, JSX } from 'preact'
import { useEffect, useId, useRef, useState } from 'preact/hooks'
import { checkTags } from '@fleetgate/device-sdk/wire'
import type { IssuedSecret } from '../lib/api.js'
import { jsonText } from '../lib/format.js'
import { describeError } from '../lib/errors.js'
import type { StreamState } from '../lib/sse.js'

const LIVE_TEXT: Record<StreamState, string> = {
  connecting: 'Connecting to live updates…',
  live: 'Live',
  retrying: 'Live updates lost, reconnecting',
  unavailable: 'Live updates unavailable',
  forbidden: 'Live updates not allowed for this token',
  closed: 'Live updates stopped',
}

/** The event stream's state, always visible where a page depends on it. */
export function LiveBadge(props: { state: StreamState; detail: string }): JSX.Element {
  return (
    <p class={`live live-${props.state}`} role="status" data-testid="live-state" data-state={props.state}>
      <span class="live-dot" aria-hidden="true" />
      {LIVE_TEXT[props.state]}
      {props.detail === '' ? null : <span class="live-detail">({props.detail})</span>}
    </p>
  )
}

/** An error sentence, announced to screen readers. */
export function ErrorNote(props: { error: unknown }): JSX.Element | null {
  if (props.error === undefined || props.error === null) return null
  return (
    <p class="error" role="alert">
      {describeError(props.error)}
    </p>
  )
}

/** What a confirmation asks. */
export interface ConfirmProps {
  readonly title: string
  readonly confirmLabel: string
  readonly danger?: boolean
  /** Text the operator must type to enable the button (the device id, for deletion). */
  readonly requireText?: string
  /** Why the action cannot run yet (an invalid field); shown, and the button stays disabled. */
  readonly problem?: string | undefined
  readonly children?: ComponentChildren
  /** Runs the action; an error is shown in the dialog, which then stays open. */
  readonly onConfirm: () => Promise<void>
  readonly onClose: () => void
}

/** A modal confirmation (`<dialog>`: focus is trapped, Esc cancels) that names what it acts on. */
export function ConfirmDialog(props: ConfirmProps): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null)
  const [typed, setTyped] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const titleId = useId()
  const typedId = useId()
  useEffect(() => {
    ref.current?.showModal()
  }, [])
  const allowed = (props.requireText === undefined || typed === props.requireText) && props.problem === undefined
  const confirm = async (event: Event): Promise<void> => {
    event.preventDefault()
    if (!allowed || busy) return
    setBusy(true)
    setError(undefined)
    try {
      await props.onConfirm()
      ref.current?.close()
    } catch (err) {
      setError(err)
      setBusy(false)
    }
  }
  return (
    <dialog ref={ref} class="dialog" aria-labelledby={titleId} onClose={props.onClose}>
      <form method="dialog" onSubmit={(e) => void confirm(e)}>
        <h2 id={titleId}>{props.title}</h2>
        {props.children}
        {props.requireText === undefined ? null : (
          <p>
            <label for={typedId}>
              Type <code>{props.requireText}</code> to confirm
            </label>
            <input id={typedId} value={typed} autocomplete="off" spellcheck={false} onInput={(e) => setTyped(e.currentTarget.value)} />
          </p>
        )}
        {props.problem === undefined ? null : (
          <p class="error" role="alert">
            {props.problem}
          </p>
        )}
        <ErrorNote error={error} />
        <div class="buttons">
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
          <button type="submit" class={props.danger === true ? 'danger' : 'primary'} disabled={!allowed || busy}>
            {busy ? 'Working…' : props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  )
}

/** Copies text: the Clipboard API where the page may use it, else the selection and `copy`. */
async function copyText(text: string, fallback: HTMLTextAreaElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    fallback?.select()
    return document.execCommand('copy')
  }
}

/** A key the hub shows once: the value, a copy button and the warning; "Done" forgets it. */
export function SecretOnce(props: { deviceId: string; secret: IssuedSecret; onDone: () => void }): JSX.Element {
  const area = useRef<HTMLTextAreaElement>(null)
  const [copied, setCopied] = useState<'' | 'yes' | 'no'>('')
  const labelId = useId()
  const kind = props.secret.kind === 'key' ? 'HMAC key (base64url)' : 'Ed25519 private key (PKCS#8 DER, base64url)'
  return (
    <section class="secret" aria-labelledby={labelId} data-testid="secret">
      <h3 id={labelId}>New key for {props.deviceId}</h3>
      <p class="warning" role="alert">
        Shown only this once: copy it now and store it with the device. The hub keeps no copy it can show again; a lost key
        needs a rotation.
      </p>
      <label>
        {kind}
        <textarea ref={area} class="mono" readOnly rows={2} value={props.secret.value} data-testid="secret-value" />
      </label>
      <div class="buttons">
        <button
          type="button"
          onClick={() => void copyText(props.secret.value, area.current).then((ok) => setCopied(ok ? 'yes' : 'no'))}
        >
          Copy key
        </button>
        <button type="button" class="primary" onClick={props.onDone}>
          Done, I stored it
        </button>
        <span role="status">{copied === 'yes' ? 'Copied to the clipboard' : copied === 'no' ? 'Select the key and copy it (Ctrl+C)' : ''}</span>
      </div>
    </section>
  )
}

/** Tags as chips; device-provided text, so rendered as text only. */
export function TagList(props: { tags: Readonly<Record<string, string>> }): JSX.Element {
  const entries = Object.entries(props.tags)
  if (entries.length === 0) return <span class="muted">none</span>
  return (
    <ul class="tags">
      {entries.map(([name, value]) => (
        <li key={name} class="tag">
          {name}={value}
        </li>
      ))}
    </ul>
  )
}

/** One editable tag row. */
export interface TagRow {
  readonly name: string
  readonly value: string
}

/** Rows from a tag map. */
export const tagRows = (tags: Readonly<Record<string, string>>): TagRow[] => Object.entries(tags).map(([name, value]) => ({ name, value }))

/** The tag map of rows (empty rows dropped), or why it is invalid: the SDK's own check (docs/protocol.md). */
export function rowsToTags(rows: readonly TagRow[]): { ok: true; tags: Record<string, string> } | { ok: false; message: string } {
  const filled = rows.filter((row) => row.name !== '' || row.value !== '')
  const names = new Set<string>()
  for (const row of filled) {
    if (names.has(row.name)) return { ok: false, message: `tag "${row.name}" is listed twice` }
    names.add(row.name)
  }
  const checked = checkTags(new Map(filled.map((row) => [row.name, row.value])))
  return typeof checked === 'string' ? { ok: false, message: `tags${checked}` } : { ok: true, tags: { ...checked } }
}

/** Editable name=value rows with add and remove buttons; every input is labelled. */
export function TagEditor(props: { rows: readonly TagRow[]; onChange: (rows: TagRow[]) => void; legend?: string }): JSX.Element {
  const rows = props.rows.length === 0 ? [{ name: '', value: '' }] : props.rows
  const set = (index: number, change: Partial<TagRow>): void => props.onChange(rows.map((row, i) => (i === index ? { ...row, ...change } : row)))
  return (
    <fieldset class="tag-editor">
      <legend>{props.legend ?? 'Tags'}</legend>
      {rows.map((row, index) => (
        <div class="tag-row" key={index}>
          <input aria-label={`Tag ${index + 1} name`} placeholder="name" value={row.name} onInput={(e) => set(index, { name: e.currentTarget.value })} />
          <span aria-hidden="true">=</span>
          <input aria-label={`Tag ${index + 1} value`} placeholder="value" value={row.value} onInput={(e) => set(index, { value: e.currentTarget.value })} />
          <button type="button" aria-label={`Remove tag ${index + 1}`} onClick={() => props.onChange(rows.filter((_, i) => i !== index))}>
            ×
          </button>
        </div>
      ))}
      <button type="button" onClick={() => props.onChange([...rows, { name: '', value: '' }])}>
        Add tag
      </button>
    </fieldset>
  )
}

/** JSON as indented text in a `<pre>`: never parsed as HTML. */
export function JsonBlock(props: { value: unknown; label: string }): JSX.Element {
  return (
    <pre class="json" aria-label={props.label}>
      {jsonText(props.value)}
    </pre>
  )
}

/** A table in a scrolling, keyboard-reachable region (wide tables scroll there on a phone). */
export function DataTable(props: {
  label: string
  /** Column headings; `null` leaves a column out. */
  columns: ReadonlyArray<string | null>
  class?: string
  testId?: string
  busy?: boolean
  children: ComponentChildren
  /** Shown below the table, inside the region (an empty-state line). */
  after?: ComponentChildren
}): JSX.Element {
  return (
    <div class="table-wrap" role="region" aria-label={props.label} tabIndex={0}>
      <table class={props.class} data-testid={props.testId} aria-busy={props.busy}>
        <thead>
          <tr>
            {props.columns.map((column) =>
              column === null ? null : (
                <th key={column} scope="col">
                  {column}
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
      {props.after}
    </div>
  )
}
