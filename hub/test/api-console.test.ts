import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import type { us_listen_socket, us_socket } from 'uWebSockets.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONSOLE_CSP, registerConsoleRoutes } from '../src/api/console.js'
import { createLogger } from '../src/logger.js'
import { GuardedApp, loadNativeUws } from '../src/transport/index.js'

const uws = loadNativeUws()
const servers: Array<{ socket: us_listen_socket; dir: string }> = []
/** What the guard caught: nothing, in every test. */
const uncaught: Array<{ where: string; err: unknown }> = []

/** A uWS app serving a console from `files` (none: a dir that does not exist); its base URL. */
async function serve(files: Record<string, string> | undefined): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-console-'))
  for (const [name, text] of Object.entries(files ?? {})) writeFileSync(join(dir, name), text)
  const app = uws.App()
  const guarded = new GuardedApp(app, (where, err) => uncaught.push({ where, err }))
  registerConsoleRoutes(guarded, createLogger('silent'), files === undefined ? join(dir, 'missing') : dir)
  app.any('/*', (res) => void res.writeStatus('404 Not Found').end('fallback'))
  const socket = await new Promise<us_listen_socket>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (s) => (s === false ? reject(new Error('listen failed')) : resolve(s))),
  )
  servers.push({ socket, dir })
  return `http://127.0.0.1:${uws.us_socket_local_port(socket as unknown as us_socket)}`
}

const SCRIPT = `console.log(${JSON.stringify('x'.repeat(2000))})`
let base: string

beforeAll(async () => {
  base = await serve({ 'index.html': '<!doctype html><p>console</p>', 'main-ABCDEFGH.js': SCRIPT, 'notes.txt': 'plain' })
})

afterAll(() => {
  expect(uncaught).toEqual([])
  for (const { socket, dir } of servers) {
    uws.us_listen_socket_close(socket)
    rmSync(dir, { recursive: true, force: true })
  }
})

describe('console files served by the hub (docs/console.md)', () => {
  it('redirects / and /console to /console/', async () => {
    const root = await fetch(`${base}/`, { redirect: 'manual' })
    expect([root.status, root.headers.get('location')]).toEqual([302, '/console/'])
    const bare = await fetch(`${base}/console`, { redirect: 'manual' })
    expect([bare.status, bare.headers.get('location')]).toEqual([301, '/console/'])
  })

  it('serves index.html at /console/ with no-cache, the CSP and nosniff', async () => {
    const page = await fetch(`${base}/console/`, { headers: { 'accept-encoding': 'identity' } })
    expect(page.status).toBe(200)
    expect(await page.text()).toBe('<!doctype html><p>console</p>')
    expect(Object.fromEntries(['content-type', 'cache-control', 'content-security-policy', 'x-content-type-options', 'content-encoding'].map((h) => [h, page.headers.get(h)]))).toEqual({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-cache',
      'content-security-policy': CONSOLE_CSP,
      'x-content-type-options': 'nosniff',
      'content-encoding': null,
    })
    expect(CONSOLE_CSP).not.toContain('unsafe-inline')
  })

  it('serves a hashed file as immutable, gzipped only to a client that accepts gzip', async () => {
    const plain = await fetch(`${base}/console/main-ABCDEFGH.js`, { headers: { 'accept-encoding': 'identity' } })
    expect(plain.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(plain.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    expect(plain.headers.get('content-encoding')).toBeNull()
    expect(await plain.text()).toBe(SCRIPT)
    // node:http, so the body arrives as sent (fetch would decode it).
    const { request } = await import('node:http')
    const zipped = await new Promise<{ encoding: string | undefined; vary: string | undefined; body: Buffer }>((resolve, reject) => {
      request(`${base}/console/main-ABCDEFGH.js`, { headers: { 'accept-encoding': 'gzip, deflate' } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'], vary: res.headers['vary'], body: Buffer.concat(chunks) }))
      })
        .on('error', reject)
        .end()
    })
    expect(zipped.encoding).toBe('gzip')
    expect(zipped.vary).toBe('Accept-Encoding')
    expect(zipped.body.length).toBeLessThan(SCRIPT.length)
    expect(gunzipSync(zipped.body).toString()).toBe(SCRIPT)
  })

  it('answers a matching If-None-Match with 304, and serves an unhashed file with no-cache', async () => {
    const first = await fetch(`${base}/console/`)
    const etag = first.headers.get('etag') ?? ''
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/)
    const again = await fetch(`${base}/console/`, { headers: { 'if-none-match': etag } })
    expect(again.status).toBe(304)
    const notes = await fetch(`${base}/console/notes.txt`)
    expect([notes.headers.get('content-type'), notes.headers.get('cache-control')]).toEqual(['text/plain; charset=utf-8', 'no-cache'])
  })

  it('answers 404 for a file it does not have', async () => {
    const missing = await fetch(`${base}/console/nope.js`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({ error: 'not_found', message: 'no console file "nope.js"' })
    expect(missing.headers.get('content-security-policy')).toBe(CONSOLE_CSP)
  })

  it('answers 503 saying to build when the console is not built; / still redirects', async () => {
    const unbuilt = await serve(undefined)
    const page = await fetch(`${unbuilt}/console/`)
    expect(page.status).toBe(503)
    expect(await page.json()).toEqual({
      error: 'not_ready',
      message: 'the console is not built: run `npm run build` at the repository root, then restart the hub',
    })
    expect((await fetch(`${unbuilt}/`, { redirect: 'manual' })).status).toBe(302)
  })
})
