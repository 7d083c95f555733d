import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import type { DeviceView, IssuedSecret } from '../lib/api.js'
import { useSession } from '../ui/context.js'
import { ConfirmDialog, ErrorNote, rowsToTags, SecretOnce, TagEditor, tagRows, type TagRow } from '../ui/widgets.js'

/** Longest grace the hub accepts for a rotated key, in seconds (30 days). */
const MAX_GRACE_SEC = 30 * 24 * 3600

/** Editing a device's registry tags (admin: `PATCH /devices/{id}`). */
export function TagsEditor(props: { device: DeviceView; onSaved: (device: DeviceView) => void }): JSX.Element | null {
  const { api, abilities } = useSession()
  const [rows, setRows] = useState<TagRow[] | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [busy, setBusy] = useState(false)
  if (!abilities.administer) return null
  if (rows === undefined) {
    return (
      <button type="button" onClick={() => setRows(tagRows(props.device.tags))}>
        Edit tags
      </button>
    )
  }
  const save = async (event: Event): Promise<void> => {
    event.preventDefault()
    const tags = rowsToTags(rows)
    if (!tags.ok) return setError(tags.message)
    setBusy(true)
    try {
      props.onSaved(await api.patchDevice(props.device.id, { tags: tags.tags }))
      setRows(undefined)
      setError(undefined)
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <form class="panel" onSubmit={(e) => void save(e)} aria-label={`Tags of ${props.device.id}`}>
      <TagEditor rows={rows} onChange={setRows} legend={`Tags of ${props.device.id}`} />
      <ErrorNote error={error} />
      <div class="buttons">
        <button type="button" onClick={() => setRows(undefined)}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy}>
          Save tags
        </button>
      </div>
    </form>
  )
}

type Action = 'rotate' | 'disable' | 'enable' | 'delete'

/** Key rotation, disable/enable and delete (admin), each behind a confirmation that names the device. */
export function DeviceAdmin(props: { device: DeviceView; onChanged: (device?: DeviceView) => void }): JSX.Element | null {
  const { api, abilities } = useSession()
  const [action, setAction] = useState<Action | undefined>(undefined)
  const [graceSec, setGraceSec] = useState('0')
  const [disconnect, setDisconnect] = useState(true)
  const [secret, setSecret] = useState<IssuedSecret | undefined>(undefined)
  if (!abilities.administer) return null
  const { id } = props.device
  const close = (): void => setAction(undefined)

  const dialog = (): JSX.Element | null => {
    switch (action) {
      case undefined:
        return null
      case 'rotate':
        return (
          <ConfirmDialog
            title={`Rotate the key of "${id}"?`}
            confirmLabel="Rotate key"
            danger
            problem={/^\d+$/.test(graceSec) && Number(graceSec) <= MAX_GRACE_SEC ? undefined : `Grace: whole seconds from 0 to ${MAX_GRACE_SEC}`}
            onClose={close}
            onConfirm={async () => {
              setSecret(await api.rotateKey(id, { graceSec: Number(graceSec), disconnect }))
              props.onChanged()
            }}
          >
            <p>The hub issues a new key for {id}, shown once. The old key keeps opening sessions for the grace period, then never again.</p>
            <label>
              Grace period, seconds
              <input inputMode="numeric" value={graceSec} onInput={(e) => setGraceSec(e.currentTarget.value)} />
            </label>
            <label class="check">
              <input type="checkbox" checked={disconnect} onChange={(e) => setDisconnect(e.currentTarget.checked)} />
              Disconnect its live session now (close 4003)
            </label>
          </ConfirmDialog>
        )
      case 'disable':
      case 'enable': {
        const disabling = action === 'disable'
        return (
          <ConfirmDialog
            title={`${disabling ? 'Disable' : 'Enable'} "${id}"?`}
            confirmLabel={disabling ? 'Disable device' : 'Enable device'}
            danger={disabling}
            onClose={close}
            onConfirm={async () => props.onChanged(await api.patchDevice(id, { disabled: disabling }))}
          >
            <p>
              {disabling
                ? `${id} is refused at its next connect, and its live session closes now (4003).`
                : `${id} may connect again with its key.`}
            </p>
          </ConfirmDialog>
        )
      }
      case 'delete':
        return (
          <ConfirmDialog
            title={`Delete "${id}"?`}
            confirmLabel="Delete device"
            danger
            requireText={id}
            onClose={close}
            onConfirm={async () => {
              await api.deleteDevice(id)
              location.hash = '#/fleet'
            }}
          >
            <p>
              {id} is removed from the registry, its live session closes (4003) and its queued commands end expired. This cannot be
              undone.
            </p>
          </ConfirmDialog>
        )
    }
  }

  return (
    <div class="admin-actions">
      {secret === undefined ? null : <SecretOnce deviceId={id} secret={secret} onDone={() => setSecret(undefined)} />}
      <div class="buttons">
        <button type="button" onClick={() => setAction('rotate')}>
          Rotate key…
        </button>
        <button type="button" onClick={() => setAction(props.device.disabled ? 'enable' : 'disable')}>
          {props.device.disabled ? 'Enable…' : 'Disable…'}
        </button>
        <button type="button" class="danger" onClick={() => setAction('delete')}>
          Delete…
        </button>
      </div>
      {dialog()}
    </div>
  )
}
