import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

/** A workspace's entry point as a source file: `index` for the package, or a subpath export's file. */
const src = (pkg: string, entry = 'index'): string => fileURLToPath(new URL(`./${pkg}/src/${entry}.ts`, import.meta.url))

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources of sibling workspaces, so a test never sees a stale build.
    // Exact matches: a bare package alias would also rewrite its subpaths (`@fleetgate/device-sdk/wire`).
    alias: [
      { find: /^@fleetgate\/device-sdk$/, replacement: src('device-sdk') },
      { find: /^@fleetgate\/device-sdk\/wire$/, replacement: src('device-sdk', 'wire') },
      { find: /^@fleetgate\/device-sdk\/node$/, replacement: src('device-sdk', 'node') },
      { find: /^@fleetgate\/bridge$/, replacement: src('bridge') },
      { find: /^@fleetgate\/hub$/, replacement: src('hub') },
      { find: /^@fleetgate\/firmware-sim$/, replacement: src('firmware-sim') },
    ],
  },
  test: {
    include: ['{device-sdk,hub,bridge,firmware-sim,console}/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/bench/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Browser tests wait on the page with expect.poll: a ceiling for a slow, shared machine, not an expected time.
    expect: { poll: { timeout: 10_000 } },
  },
})
