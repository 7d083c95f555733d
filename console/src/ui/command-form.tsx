import type { JSX } from 'preact'
import { useState } from 'preact/hooks'
import type { CommandRequest } from '../lib/api.js'
import { ErrorNote } from './widgets.js'

/** docs/rest.md: a command name. */
const COMMAND_NAME = /^[A-Za-z0-9_.-]{1,64}$/
/** docs/rest.md: params up to 64 KiB of JSON. */
const MAX_PARAMS_BYTES = 64 * 1024
/** Largest timeout or TTL the form takes, in ms: one day. */
const MAX_MS = 86_400_000

/** The fields shared by a device's command form and fan-out, checked before sending. */
export function CommandFields(props: {
  onSubmit: (request: CommandRequest) => Promise<void>
  submitLabel: string
  children?: JSX.Element | null
  /** Checked by the caller (fan-out targets); a message blocks sending. */
  extraProblem?: string | undefined
}): JSX.Element {
  const [name, setName] = useState('')
  const [params, setParams] = useState('')
  const [timeoutMs, setTimeoutMs] = useState('10000')
  const [ttlMs, setTtlMs] = useState('0')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)

  let parsed: unknown
  let paramsProblem: string | undefined
  if (params.trim() !== '') {
    try {
      parsed = JSON.parse(params)
      if (new TextEncoder().encode(params).length > MAX_PARAMS_BYTES) paramsProblem = `params: at most ${MAX_PARAMS_BYTES} bytes`
    } catch (err) {
      paramsProblem = `params: not valid JSON (${(err as Error).message})`
    }
  }
  const whole = (text: string, field: string): string | undefined =>
    /^\d+$/.test(text) && Number(text) <= MAX_MS ? undefined : `${field}: whole milliseconds from 0 to ${MAX_MS}`
  const problem =
    (name !== '' && !COMMAND_NAME.test(name) ? 'name: 1 to 64 of A-Z a-z 0-9 _ . -' : undefined) ??
    paramsProblem ??
    whole(timeoutMs, 'timeout') ??
    whole(ttlMs, 'TTL') ??
    props.extraProblem

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault()
    if (problem !== undefined || name === '') return
    setBusy(true)
    setError(undefined)
    try {
      await props.onSubmit({
        name,
        ...(params.trim() === '' ? {} : { params: parsed }),
        timeoutMs: Number(timeoutMs),
        ttlMs: Number(ttlMs),
      })
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form class="panel command-form" onSubmit={(e) => void submit(e)}>
      {props.children}
      <div class="grid">
        <label>
          Command name
          <input value={name} required spellcheck={false} autocomplete="off" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Timeout, ms
          <input inputMode="numeric" value={timeoutMs} onInput={(e) => setTimeoutMs(e.currentTarget.value)} />
        </label>
        <label>
          TTL while offline, ms (0: refuse when offline)
          <input inputMode="numeric" value={ttlMs} onInput={(e) => setTtlMs(e.currentTarget.value)} />
        </label>
      </div>
      <label>
        Params (JSON, optional)
        <textarea class="mono" rows={3} spellcheck={false} value={params} aria-invalid={paramsProblem !== undefined} onInput={(e) => setParams(e.currentTarget.value)} />
      </label>
      {problem === undefined ? null : (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorNote error={error} />
      <button type="submit" class="primary" disabled={busy || problem !== undefined || name === ''}>
        {busy ? 'Sending…' : props.submitLabel}
      </button>
    </form>
  )
}
