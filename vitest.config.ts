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
    include: ['{device-sdk,hub,bridge,firmware-sim}/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/bench/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
