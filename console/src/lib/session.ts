import { Api } from './api.js'
import { ConsoleError, isHttpStatus } from './errors.js'

/** docs/rest.md scopes, weakest first. */
export type Scope = 'reader' | 'operator' | 'admin'

/** The `sessionStorage` key of the token: this tab only, gone when it closes (docs/console.md). */
export const TOKEN_KEY = 'fleetgate.operatorToken'

/** What a scope may do, as the UI offers it. */
export interface Abilities {
  readonly scope: Scope
  /** Commands, fan-out, twin `desired` changes. */
  readonly operate: boolean
  /** Devices, keys, audit. */
  readonly administer: boolean
}

/** The abilities of `scope`. */
export function abilitiesOf(scope: Scope): Abilities {
  return { scope, operate: scope !== 'reader', administer: scope === 'admin' }
}

/** The token kept for this tab, if any. */
export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined
}

/** Keeps the token for this tab only; never a cookie, never localStorage. */
export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token)
}

/** Forgets the token (sign-out). */
export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY)
}

/**
 * The token's scope, found by probing, since the API has no "who am I" call:
 * - `GET /devices?limit=1` (reader): 401 means the hub does not know the token.
 * - `GET /audit?limit=1` (admin only, a read): 200 means admin.
 * - `POST /commands` with a body that is not JSON (operator): the hub checks the scope before it
 *   reads a body, so a reader gets 403 and an operator 400 `malformed_json`, and nothing is ever
 *   created, queued or audited: no JSON body can be acted on.
 * @throws ConsoleError with status 401 for an unknown token, or the network error.
 */
export async function probeScope(api: Api): Promise<Scope> {
  await api.json('GET', '/devices?limit=1')
  try {
    await api.json('GET', '/audit?limit=1')
    return 'admin'
  } catch (err) {
    if (!isHttpStatus(err, 403)) throw err
  }
  try {
    await api.rawPost('/commands', '{')
  } catch (err) {
    if (isHttpStatus(err, 403)) return 'reader'
    if (err instanceof ConsoleError && err.code === 'CONSOLE_ERR_HTTP' && err.status === 400) return 'operator'
    throw err
  }
  throw new ConsoleError('CONSOLE_ERR_RESPONSE', 'the hub accepted a body that is not JSON; cannot tell the token\'s scope')
}
