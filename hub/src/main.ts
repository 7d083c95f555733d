#!/usr/bin/env node
import { loadConfig } from './config.js'
import { die } from './fatal.js'
import { startHub } from './hub.js'
import { createLogger } from './logger.js'
import { checkStore } from './store-check.js'

/** CONTRACT §1: after SIGTERM/SIGINT the process exits within 10 s. */
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
