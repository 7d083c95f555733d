#!/usr/bin/env node
import { loadConfig } from './config.js'
import { die } from './fatal.js'
import { startHub } from './hub.js'
import { createLogger } from './logger.js'
import { checkStore } from './store/index.js'

/** docs/configuration.md: after SIGTERM/SIGINT the process exits within 10 s. */
const STOP_DEADLINE_MS = 9_000

let config
try {
  config = loadConfig(process.env)
} catch (err) {
  die(err)
}
const log = createLogger(config.logLevel)
// Before the hub opens its store: lmdb may abort the process on a damaged one (see store-check.ts).
await checkStore(config.dataDir).catch(die)
const hub = await startHub({ config, log }).catch(die)

// The last resort, once the hub serves (a failure while starting still ends the process, loudly).
// Every uWS callback runs behind the guard of transport/uws-guard.ts; what still arrives here escaped from a
// timer, a stream or a promise outside it. Node's default, exiting, would drop every device
// session and turn one such input into a way to stop the hub at will, while what the hub
// acknowledged is committed to the store before it is acked and so survives either way. So the
// error is logged with its stack, counted (fleetgate_uncaught_errors_total{where="process"}),
// and the hub keeps serving.
process.on('uncaughtException', (err, origin) => hub.uncaught(err, origin))
process.on('unhandledRejection', (reason) => hub.uncaught(reason, 'unhandledRejection'))

const shutdown = (signal: NodeJS.Signals): void => {
  log.info({ signal }, 'shutting down')
  setTimeout(() => {
    log.error('shutdown took too long; exiting')
    process.exit(1)
  }, STOP_DEADLINE_MS).unref()
  hub.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'shutdown failed')
      process.exit(1)
    },
  )
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)
