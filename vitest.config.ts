import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (pkg: string): string => fileURLToPath(new URL(`./${pkg}/src/index.ts`, import.meta.url))

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources of sibling workspaces, so a test never sees a stale build.
    alias: {
      '@fleetgate/device-sdk': src('device-sdk'),
      '@fleetgate/bridge': src('bridge'),
      '@fleetgate/hub': src('hub'),
      '@fleetgate/firmware-sim': src('firmware-sim'),
    },
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
