import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import { isHttpStatus, describeError } from '../lib/errors.js'

/** The sign-in form: an operator token, kept for this tab only. */
export function SignIn(props: { onSignIn: (token: string) => Promise<void>; notice: string }): JSX.Element {
  const [token, setToken] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault()
    const trimmed = token.trim()
    if (trimmed === '') return setError('Enter an operator token.')
    setBusy(true)
    setError('')
    try {
      await props.onSignIn(trimmed)
    } catch (err) {
      setError(isHttpStatus(err, 401) ? 'The hub does not know this token.' : describeError(err))
      setBusy(false)
    }
  }
  return (
    <main class="signin" id="main">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">Fleetgate console</h1>
        {props.notice === '' ? null : <p role="status">{props.notice}</p>}
        <label for="token">Operator token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="muted">
          The admin token is logged once at the hub's first start (<code>generatedAdminToken</code>) and kept in{' '}
          <code>.fleetgate/admin-token</code>. It stays in this tab only and is forgotten when the tab closes or you sign out.
        </p>
        {error === '' ? null : (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  )
}
