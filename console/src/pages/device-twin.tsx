import type { TwinDocument } from '@fleetgate/device-sdk/wire'
import type { JSX } from 'preact'
import { useId, useState } from 'preact/hooks'
import type { TwinView } from '@fleetgate/device-sdk/wire'
import { ConsoleError, isHttpStatus } from '../lib/errors.js'
import { dateTime, jsonText } from '../lib/format.js'
import { checkTwinDocument, mergePatchBetween } from '../lib/merge-patch.js'
import { useSession } from '../ui/context.js'
import { useAbortableEffect, useBus, type EventBus } from '../ui/hooks.js'
import { ErrorNote, JsonBlock } from '../ui/widgets.js'

/** The twin (docs/twins.md): desired (editable for operators), reported, delta and versions. */
export function DeviceTwin(props: { id: string; bus: EventBus }): JSX.Element {
  const { api, abilities } = useSession()
  const [twin, setTwin] = useState<TwinView | undefined>(undefined)
  const [absent, setAbsent] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  // The edit keeps the desired state it started from: the patch is computed against that base and
  // sent with its version, so a change made meanwhile by someone else is never silently undone.
  const [draft, setDraft] = useState<{ text: string; base: TwinDocument; baseVersion: number } | undefined>(undefined)
  const [conflict, setConflict] = useState<{ message: string; lostEdit: string } | undefined>(undefined)
  const [saved, setSaved] = useState('')
  const [busy, setBusy] = useState(false)
  const [reload, setReload] = useState(0)
  const editorId = useId()
  const problemId = useId()

  useAbortableEffect(
    async (signal) => {
      setTwin(await api.twin(props.id, signal))
      setError(undefined)
    },
    // The device exists (its page loaded), so a 404 here means the hub has no twins.
    (err) => (isHttpStatus(err, 404) ? setAbsent(true) : setError(err)),
    [api, props.id, reload],
  )

  useBus(props.bus, (event) => {
    if (event.type === 'twin') setTwin(event.twin)
  })

  if (absent) {
    return (
      <section aria-labelledby="twin-title" class="card">
        <h2 id="twin-title">Twin</h2>
        <p class="muted" data-testid="twin-absent">
          This hub has no device twins (<code>GET /api/v1/devices/{'{id}'}/twin</code> answered 404).
        </p>
      </section>
    )
  }

  const editing = draft !== undefined
  const checked = draft === undefined ? undefined : checkTwinDocument(draft.text)
  const save = async (event: Event): Promise<void> => {
    event.preventDefault()
    if (draft === undefined || checked === undefined || !checked.ok) return
    const patch = mergePatchBetween(draft.base, checked.value)
    if (Object.keys(patch).length === 0) {
      setSaved('Nothing changed.')
      setDraft(undefined)
      return
    }
    setBusy(true)
    setConflict(undefined)
    setError(undefined)
    try {
      const next = await api.patchTwin(props.id, patch, draft.baseVersion)
      setTwin(next)
      setDraft(undefined)
      setSaved(`Saved as desired version ${next.desiredVersion}.`)
    } catch (err) {
      if (err instanceof ConsoleError && err.status === 409) {
        setConflict({
          message:
            `Not saved: the desired state changed after you opened version ${draft.baseVersion} (409 version_conflict). ` +
            'Load the current version, then make your change again; your edit is shown here to copy from.',
          lostEdit: draft.text,
        })
      } else setError(err)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section aria-labelledby="twin-title" class="card">
      <h2 id="twin-title">Twin</h2>
      <ErrorNote error={error} />
      {twin === undefined ? (
        error === undefined ? (
          <p class="loading">Loading…</p>
        ) : null
      ) : (
        <div class="twin">
          <div>
            <h3>
              Desired <span class="muted">version {twin.desiredVersion}</span>
            </h3>
            {twin.desiredAt === undefined ? null : <p class="muted">changed {dateTime(twin.desiredAt)}</p>}
            {editing ? (
              <form onSubmit={(e) => void save(e)}>
                <label for={editorId}>Desired state (JSON object; the console sends the merge patch)</label>
                <textarea
                  id={editorId}
                  class="mono"
                  rows={10}
                  spellcheck={false}
                  value={draft.text}
                  aria-invalid={checked?.ok === false}
                  aria-describedby={problemId}
                  onInput={(e) => setDraft({ ...draft, text: e.currentTarget.value })}
                />
                <p id={problemId} class={checked?.ok === false ? 'error' : 'muted'} role={checked?.ok === false ? 'alert' : undefined}>
                  {checked?.ok === false ? checked.message : 'Valid.'}
                </p>
                {conflict === undefined ? null : (
                  <div class="error" role="alert" data-testid="twin-conflict">
                    <p>{conflict.message}</p>
                    <pre class="json" aria-label="Your edit, not saved">
                      {conflict.lostEdit}
                    </pre>
                    <button type="button" onClick={() => (setConflict(undefined), setDraft(undefined), setReload((n) => n + 1))}>
                      Load current version
                    </button>
                  </div>
                )}
                <div class="buttons">
                  <button type="button" onClick={() => (setDraft(undefined), setConflict(undefined))}>
                    Cancel
                  </button>
                  <button type="submit" class="primary" disabled={busy || checked?.ok !== true}>
                    Save desired
                  </button>
                </div>
              </form>
            ) : (
              <>
                <JsonBlock value={twin.desired} label="Desired state" />
                {abilities.operate ? (
                  <button type="button" onClick={() => (setSaved(''), setDraft({ text: jsonText(twin.desired), base: twin.desired, baseVersion: twin.desiredVersion }))}>
                    Edit desired
                  </button>
                ) : null}
              </>
            )}
            {saved === '' ? null : <p role="status">{saved}</p>}
          </div>
          <div>
            <h3>
              Reported <span class="muted">version {twin.reportedVersion}</span>
            </h3>
            {twin.reportedAt === undefined ? null : <p class="muted">changed {dateTime(twin.reportedAt)}</p>}
            <JsonBlock value={twin.reported} label="Reported state" />
          </div>
          <div>
            <h3>Delta</h3>
            {Object.keys(twin.delta).length === 0 ? <p class="state on">In sync</p> : <JsonBlock value={twin.delta} label="Delta: desired not yet reported" />}
          </div>
        </div>
      )}
    </section>
  )
}
