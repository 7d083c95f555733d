import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assertConsoleBuilt } from '../support/console.js'
import { startTestHub, type TestHub } from '../support/hub.js'

/** The budget for the whole console, gzipped: 150 KB. */
const BUDGET_BYTES = 150 * 1024

let hub: TestHub

beforeAll(async () => {
  assertConsoleBuilt()
  hub = await startTestHub()
})

afterAll(async () => {
  await hub?.stop()
})

/** The console's files as the page loads them: index.html and what it references. */
async function consoleFiles(): Promise<Array<{ name: string; body: Buffer }>> {
  const html = await (await fetch(`${hub.base}/console/`)).text()
  const names = [...html.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map((m) => m[1] as string)
  const files = [{ name: 'index.html', body: Buffer.from(html) }]
  for (const name of names) files.push({ name, body: Buffer.from(await (await fetch(`${hub.base}/console/${name}`)).arrayBuffer()) })
  return files
}

describe('the built console, served by the hub', () => {
  it('is one hashed script and one hashed style sheet, loaded from the hub only, nothing inline', async () => {
    const files = await consoleFiles()
    expect(files.map((f) => f.name.replace(/-[A-Z2-7]{8}\./, '-HASH.'))).toEqual(['index.html', 'main-HASH.css', 'main-HASH.js'])
    const html = files[0]?.body.toString() ?? ''
    expect(html).not.toMatch(/https?:\/\//)
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/)
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i)
    for (const file of files.slice(1)) {
      const answer = await fetch(`${hub.base}/console/${file.name}`)
      expect(answer.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    }
  })

  it('fits the budget: at most 150 KB gzipped in all', async () => {
    const total = (await consoleFiles()).reduce((sum, f) => sum + gzipSync(f.body, { level: 9 }).length, 0)
    expect(total).toBeLessThanOrEqual(BUDGET_BYTES)
  })

  it('does not let a HEAD or POST to the console hurt the hub', async () => {
    expect((await fetch(`${hub.base}/console/`, { method: 'HEAD' })).status).toBe(404)
    expect((await fetch(`${hub.base}/console/`, { method: 'POST', body: 'x' })).status).toBe(404)
    expect((await fetch(`${hub.base}/healthz`)).status).toBe(200)
  })
})
