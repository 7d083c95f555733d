import { HubError } from './errors.js'

/**
 * Ends the process with exit code 1 and one line that says why, on stdout as a JSON log line
 * (docs/configuration.md: the hub logs JSON lines) and on stderr for whoever started it by hand.
 */
export function die(err: unknown): never {
  const message = err instanceof HubError ? `${err.code}: ${err.message}` : `fatal: ${(err as Error).stack ?? String(err)}`
  process.stdout.write(`${JSON.stringify({ level: 'fatal', time: new Date().toISOString(), msg: message })}\n`)
  process.stderr.write(`fleetgate: ${message}\n`)
  process.exit(1)
}
