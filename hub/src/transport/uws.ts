import { createRequire } from 'node:module'
import type * as Uws from 'uWebSockets.js'
import { HubError } from '../errors.js'

/** The uWebSockets.js module type. */
export type UwsModule = typeof Uws

/**
 * Loads uWebSockets.js and proves it is the native build.
 *
 * The package we depend on (an alias of @trufflesuite/uws-js-unofficial) silently returns a slow
 * `ws`-based emulation when its binary does not load; that emulation lacks `SSLApp` and `getParts`,
 * which every native build has. The hub refuses to run on it.
 * @throws HubError `HUB_ERR_UWS_FALLBACK`
 */
export function loadNativeUws(): UwsModule {
  const require = createRequire(import.meta.url)
  // The package logs its own fallback warning through console.warn; we say it in our words instead.
  const warn = console.warn
  const log = console.log
  console.warn = () => undefined
  console.log = () => undefined
  let uws: UwsModule
  try {
    uws = require('uWebSockets.js') as UwsModule
  } catch (cause) {
    throw new HubError('HUB_ERR_UWS_FALLBACK', 'uWebSockets.js is not installed: run `npm ci` at the repository root', {
      cause,
    })
  } finally {
    console.warn = warn
    console.log = log
  }
  const native = uws as Partial<UwsModule>
  if (typeof native.SSLApp !== 'function' || typeof native.getParts !== 'function') {
    throw new HubError(
      'HUB_ERR_UWS_FALLBACK',
      `uWebSockets.js native binary did not load for Node ${process.version} (${process.platform}-${process.arch}, ` +
        `ABI ${process.versions.modules}); the package fell back to its slow ws emulation, which Fleetgate refuses to run on. ` +
        'Use Node 20 on glibc >= 2.27 with uWebSockets.js@npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0, ' +
        'or install the official uNetworking/uWebSockets.js build for your Node version (and unset UWS_USE_FALLBACK).',
    )
  }
  return uws
}
