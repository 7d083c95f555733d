import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Fails unless `tsc -b` built `workspace` after its sources last changed: a test that runs the
 * build in a child process would otherwise test old code. (`npm test` builds first.)
 */
export function assertBuilt(workspace: 'device-sdk' | 'firmware-sim' | 'hub'): void {
  const root = new URL(`../../${workspace}/`, import.meta.url)
  const src = fileURLToPath(new URL('src/', root))
  const dist = fileURLToPath(new URL('dist/', root))
  // tsc -b rewrites its build info whenever it looks at changed sources, and skips outputs whose text is unchanged.
  const checked = statSync(fileURLToPath(new URL('tsconfig.tsbuildinfo', root)), { throwIfNoEntry: false })?.mtimeMs ?? 0
  for (const file of readdirSync(src).filter((name) => name.endsWith('.ts'))) {
    const output = statSync(join(dist, file.replace(/\.ts$/, '.js')), { throwIfNoEntry: false })
    if (output === undefined || statSync(join(src, file)).mtimeMs > Math.max(output.mtimeMs, checked)) {
      throw new Error(`${workspace}/dist is older than src/${file}: run \`npx tsc -b\` first`)
    }
  }
}
