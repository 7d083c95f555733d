#!/usr/bin/env node
// fleetgate-sim: the command line of the simulator (see USAGE in cli-args.ts). Status goes to
// stderr (one live line on a terminal, a log line every 10 s otherwise), the summary table to
// stdout. Exit codes: 0 pass, 1 a check failed, 2 a bad option, 3 setup failed, 4 an internal error, 130 interrupted twice.
import { parseArgv, USAGE } from './cli-args.js'
import { FIRMWARE } from './device-commands.js'
import { SimError } from './errors.js'
import { logLine, statusLine, summaryTable, type Snapshot } from './report.js'
import { runFleet } from './run.js'

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const out = process.stdout
  const err = process.stderr
  let parsed
  try {
    parsed = parseArgv(argv)
  } catch (error) {
    if (error instanceof SimError) {
      err.write(`fleetgate-sim: ${error.message}\nfleetgate-sim --help shows every flag\n`)
      return 2
    }
    throw error
  }
  if (parsed.kind === 'help') {
    out.write(USAGE)
    return 0
  }
  if (parsed.kind === 'version') {
    out.write(`${FIRMWARE}\n`)
    return 0
  }
  const { options, quiet } = parsed
  const tty = err.isTTY === true
  let statusShown = false
  const clearStatus = (): void => {
    if (statusShown) err.write('\r\x1b[2K')
    statusShown = false
  }
  const onStatus = quiet
    ? undefined
    : tty
      ? (snapshot: Snapshot) => {
          // one line: a wrapped line could not be rewritten with \r
          err.write(`\r\x1b[2K${statusLine(snapshot).slice(0, Math.max(20, (err.columns ?? 200) - 1))}`)
          statusShown = true
        }
      : (snapshot: Snapshot) => err.write(`${logLine(snapshot)}\n`)
  const onLog = quiet
    ? undefined
    : (line: string) => {
        clearStatus()
        err.write(`fleetgate-sim: ${line}\n`)
      }

  const controller = new AbortController()
  let interrupts = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++interrupts > 1) process.exit(130)
    clearStatus()
    err.write(`fleetgate-sim: ${signal}: stopping, draining and reporting (again to quit at once)\n`)
    controller.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const summary = await runFleet(
      { ...options, statusEveryMs: options.statusEveryMs ?? (tty ? 1000 : 10_000) },
      { signal: controller.signal, ...(onStatus === undefined ? {} : { onStatus }), ...(onLog === undefined ? {} : { onLog }) },
    )
    clearStatus()
    out.write(summaryTable(summary))
    return summary.ok ? 0 : 1
  } catch (error) {
    clearStatus()
    if (!(error instanceof SimError)) throw error
    err.write(`fleetgate-sim: ${error.message}\n`)
    return error.code === 'SIM_ERR_OPTION' ? 2 : 3
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

const code = await main(process.argv.slice(2)).catch((error: unknown) => {
  // not a SimError: a bug of the simulator, with its stack
  process.stderr.write(`fleetgate-sim: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  return 4
})
// idle keep-alive sockets of fetch would hold the process a few seconds more: exit once output is out
process.stdout.write('', () => process.exit(code))
