import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import { DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import type { DeviceView, IssuedSecret } from '../lib/api.js'
import { useSession } from '../ui/context.js'
import { ErrorNote, rowsToTags, SecretOnce, TagEditor, type TagRow } from '../ui/widgets.js'

/** Provisioning one device (admin): the key is shown once, with a copy button and a warning. */
export function ProvisionPanel(props: { onCreated: (device: DeviceView) => void }): JSX.Element {
  const { api } = useSession()
  const [open, setOpen] = useState(false)
  const [id, setId] = useState('')
  const [keyType, setKeyType] = useState<'hmac' | 'ed25519'>('hmac')
  const [publicKey, setPublicKey] = useState('')
  const [rows, setRows] = useState<TagRow[]>([])
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const [issued, setIssued] = useState<{ id: string; secret: IssuedSecret } | undefined>(undefined)

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault()
    if (!DEVICE_ID_PATTERN.test(id)) return setError('Device id: 1 to 64 of A-Z a-z 0-9 _ -')
    const tags = rowsToTags(rows)
    if (!tags.ok) return setError(tags.message)
    setBusy(true)
    setError(undefined)
    try {
      const created = await api.createDevice({
        id,
        keyType,
        tags: tags.tags,
        ...(keyType === 'ed25519' && publicKey.trim() !== '' ? { publicKey: publicKey.trim() } : {}),
      })
      if (created.secret !== undefined) setIssued({ id, secret: created.secret })
      setId('')
      setPublicKey('')
      setRows([])
      props.onCreated(created.device)
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }

  if (issued !== undefined) return <SecretOnce deviceId={issued.id} secret={issued.secret} onDone={() => setIssued(undefined)} />
  if (!open) {
    return (
      <button type="button" class="primary" onClick={() => setOpen(true)}>
        Provision device
      </button>
    )
  }
  return (
    <form class="panel" onSubmit={(e) => void submit(e)} aria-labelledby="provision-title">
      <h2 id="provision-title">Provision a device</h2>
      <div class="grid">
        <label>
          Device id
          <input value={id} required maxLength={64} autocomplete="off" spellcheck={false} onInput={(e) => setId(e.currentTarget.value)} />
        </label>
        <label>
          Key type
          <select value={keyType} onChange={(e) => setKeyType(e.currentTarget.value === 'ed25519' ? 'ed25519' : 'hmac')}>
            <option value="hmac">HMAC-SHA256 (hub generates the key)</option>
            <option value="ed25519">Ed25519</option>
          </select>
        </label>
        {keyType === 'ed25519' ? (
          <label>
            Public key (optional; without it the hub generates the pair)
            <input class="mono" value={publicKey} autocomplete="off" spellcheck={false} onInput={(e) => setPublicKey(e.currentTarget.value)} />
          </label>
        ) : null}
      </div>
      <TagEditor rows={rows} onChange={setRows} />
      <ErrorNote error={error} />
      <div class="buttons">
        <button type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create device'}
        </button>
      </div>
    </form>
  )
}
