import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { isScope, SCOPES, type Scope } from '@fleetgate/bridge'
import { HubError } from '../errors.js'

/** An authenticated operator: the token's name (the audit's actor) and its scope. */
export interface Operator {
  readonly name: string
  readonly scope: Scope
}

interface TokenEntry extends Operator {
  readonly digest: Buffer
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * Operator tokens, kept only as SHA-256 digests. Every check compares against every digest with
 * `timingSafeEqual`, so neither the answer's timing nor its path depends on which token matched.
 */
export class OperatorAuthenticator {
  readonly #entries: readonly TokenEntry[]

  constructor(tokens: ReadonlyArray<Operator & { readonly sha256: string }>) {
    this.#entries = tokens.map((t) => ({ name: t.name, scope: t.scope, digest: Buffer.from(t.sha256, 'hex') }))
  }

  /** The operator holding `token`, or undefined. */
  authenticate(token: string): Operator | undefined {
    const digest = sha256(token)
    let found: TokenEntry | undefined
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry
    }
    return found === undefined ? undefined : { name: found.name, scope: found.scope }
  }
}

/** The admin token's origin: from the environment, read back from the data dir, or new (to log once). */
export interface AdminToken {
  readonly token: string
  readonly generated: boolean
  readonly path: string
}

/** Where a generated admin token is kept: `DATA_DIR/admin-token` (docs/configuration.md). */
export const adminTokenPath = (dataDir: string): string => join(dataDir, 'admin-token')

/**
 * docs/configuration.md: `FLEETGATE_ADMIN_TOKEN`, else the one kept in `DATA_DIR/admin-token`, else a new
 * one written there with mode 0600.
 */
export function resolveAdminToken(dataDir: string, fromEnv: string | undefined): AdminToken {
  const path = adminTokenPath(dataDir)
  if (fromEnv !== undefined) return { token: fromEnv, generated: false, path }
  try {
    const kept = readFileSync(path, 'utf8').trim()
    if (kept !== '') return { token: kept, generated: false, path }
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new HubError('HUB_ERR_STORE', `cannot read ${path}: ${(cause as Error).message}`, { cause })
    }
  }
  const token = `fga_${randomBytes(32).toString('base64url')}`
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  chmodSync(path, 0o600)
  return { token, generated: true, path }
}

/**
 * Reads `FLEETGATE_TOKENS_FILE`: a JSON list of `{name, scope, sha256}` (sha256: 64 hex digits of
 * the token's SHA-256).
 * @throws HubError `HUB_ERR_TOKENS_FILE` naming the variable and the bad entry.
 */
export function readTokensFile(path: string): Array<Operator & { sha256: string }> {
  const fail = (what: string, cause?: unknown): never => {
    throw new HubError(
      'HUB_ERR_TOKENS_FILE',
      `FLEETGATE_TOKENS_FILE=${path}: ${what}; it accepts a JSON list of {"name","scope","sha256"} with scope ` +
        `${SCOPES.join(', ')} and sha256 the token's SHA-256 as 64 hex digits`,
      cause === undefined ? undefined : { cause },
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (cause) {
    return fail(`cannot be read as JSON (${(cause as Error).message})`, cause)
  }
  if (!Array.isArray(parsed)) return fail('is not a JSON list')
  const names = new Set<string>()
  return parsed.map((entry: unknown, index) => {
    if (typeof entry !== 'object' || entry === null) return fail(`entry ${index} is not an object`)
    const { name, scope, sha256: digest } = entry as Record<string, unknown>
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) return fail(`entry ${index} has no valid name`)
    if (names.has(name) || name === 'admin') return fail(`entry ${index} repeats the name "${name}"`)
    names.add(name)
    if (!isScope(scope)) return fail(`entry ${index} ("${name}") has an unknown scope`)
    if (typeof digest !== 'string' || !/^[0-9a-fA-F]{64}$/.test(digest)) return fail(`entry ${index} ("${name}") has no valid sha256`)
    return { name, scope, sha256: digest.toLowerCase() }
  })
}

/** The SHA-256 hex digest of a token, as `FLEETGATE_TOKENS_FILE` wants it. */
export function tokenDigest(token: string): string {
  return sha256(token).toString('hex')
}
