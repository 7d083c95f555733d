import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { constants, gzipSync } from 'node:zlib'
import type { HttpRequest } from 'uWebSockets.js'
import type { Logger } from '../logger.js'
import type { Exchange, GuardedApp } from '../transport/index.js'

/**
 * docs/console.md: the console's Content-Security-Policy. Nothing inline, nothing from another origin:
 * even if device-provided text ever reached the page as markup, it could not run.
 */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/** Where the console is served (docs/console.md). */
export const CONSOLE_PATH = '/console/'

/** Cache-Control of a file whose name carries its content hash: the name changes with the content. */
const IMMUTABLE = 'public, max-age=31536000, immutable'
/** esbuild's `[name]-[hash]`: eight base32 characters before the extension. */
const HASHED_NAME = /-[A-Z2-7]{8}\.[a-z0-9]+$/

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
}
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.json', '.map', '.svg', '.txt'])

/** One file of the console, held in memory with its gzip form and validators. */
export interface ConsoleAsset {
  readonly body: Buffer
  /** The gzip form, when it is smaller. */
  readonly gzip: Buffer | undefined
  readonly contentType: string
  readonly cacheControl: string
  readonly etag: string
}

/** The console's files by name, or why there are none. */
export type ConsoleFiles = { readonly ok: true; readonly assets: ReadonlyMap<string, ConsoleAsset> } | { readonly ok: false; readonly reason: string }

const NOT_BUILT = 'the console is not built: run `npm run build` at the repository root, then restart the hub'

/** `console/dist` of the `@fleetgate/console` package, or undefined when the package is not installed. */
export function consoleDistDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('@fleetgate/console/package.json')), 'dist')
  } catch {
    return undefined
  }
}

/**
 * Reads every file of a built console once, at start: requests are answered from memory.
 * `index.html` and any unhashed name are revalidated on each load (`no-cache`); hashed files are
 * immutable.
 */
export function loadConsoleFiles(dir: string | undefined): ConsoleFiles {
  if (dir === undefined) return { ok: false, reason: `${NOT_BUILT} (the @fleetgate/console package is not installed)` }
  let names: string[]
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name)
  } catch {
    return { ok: false, reason: NOT_BUILT }
  }
  if (!names.includes('index.html')) return { ok: false, reason: NOT_BUILT }
  const assets = new Map<string, ConsoleAsset>()
  for (const name of names) {
    const body = readFileSync(join(dir, name))
    const extension = extname(name)
    const gzip = COMPRESSIBLE.has(extension) ? gzipSync(body, { level: constants.Z_BEST_COMPRESSION }) : undefined
    assets.set(name, {
      body,
      gzip: gzip !== undefined && gzip.length < body.length ? gzip : undefined,
      contentType: CONTENT_TYPES[extension] ?? 'application/octet-stream',
      cacheControl: HASHED_NAME.test(name) ? IMMUTABLE : 'no-cache',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    })
  }
  return { ok: true, assets }
}

/** Headers of every console answer: the CSP, no MIME sniffing, no referrer. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
})

function plainAnswer(exchange: Exchange, status: string, error: string, message: string): void {
  exchange.reply(status, { contentType: 'application/json', text: JSON.stringify({ error, message }) }, { headers: { ...SECURITY_HEADERS, 'cache-control': 'no-store' } })
}

function redirect(exchange: Exchange, status: string): void {
  exchange.reply(status, undefined, { headers: { ...SECURITY_HEADERS, location: CONSOLE_PATH } })
}

/**
 * Serves the console at `/console/` and redirects `/` and `/console` there (docs/console.md). Its own
 * routes on the guarded app, since the REST router answers JSON only: register before the
 * router's fallback. `dir` defaults to the installed console's `dist`.
 */
export function registerConsoleRoutes(app: GuardedApp, log: Logger, dir: string | undefined = consoleDistDir()): void {
  const files = loadConsoleFiles(dir)
  if (files.ok) log.info({ files: files.assets.size, dir }, 'console served at /console/')
  else log.warn({ dir }, files.reason)

  const serve = (exchange: Exchange, req: HttpRequest): void => {
    if (!files.ok) return plainAnswer(exchange, '503 Service Unavailable', 'not_ready', files.reason)
    const name = req.getUrl().slice(CONSOLE_PATH.length) || 'index.html'
    const asset = files.assets.get(name)
    if (asset === undefined) return plainAnswer(exchange, '404 Not Found', 'not_found', `no console file "${name}"`)
    const useGzip = asset.gzip !== undefined && /\bgzip\b/i.test(req.getHeader('accept-encoding'))
    const headers = { ...SECURITY_HEADERS, 'cache-control': asset.cacheControl, etag: asset.etag, vary: 'Accept-Encoding' }
    if (req.getHeader('if-none-match') === asset.etag) {
      exchange.reply('304 Not Modified', undefined, { headers })
      return
    }
    const body = useGzip ? (asset.gzip as Buffer) : asset.body
    exchange.reply('200 OK', { contentType: asset.contentType, text: body }, { headers: useGzip ? { ...headers, 'content-encoding': 'gzip' } : headers })
  }

  app.http('get', '/', (exchange) => redirect(exchange, '302 Found'))
  app.http('get', '/console', (exchange) => redirect(exchange, '301 Moved Permanently'))
  app.http('get', `${CONSOLE_PATH}*`, serve)
}
