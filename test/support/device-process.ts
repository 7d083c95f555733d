// A device program as its own process (node on a script that imports the built SDK), for tests
// that kill the device with SIGKILL: each stdout line of the script is one JSON report.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const SDK_DIST = fileURLToPath(new URL('../../device-sdk/dist/', import.meta.url))

/** The `import` lines a device script starts with: DeviceClient and FileQueueStore from the built SDK. */
export const SDK_IMPORTS = `import { DeviceClient } from ${JSON.stringify(pathToFileURL(join(SDK_DIST, 'index.js')).href)}
import { FileQueueStore } from ${JSON.stringify(pathToFileURL(join(SDK_DIST, 'node.js')).href)}
const report = (value) => process.stdout.write(JSON.stringify(value) + '\\n')
`

/** A running device script. */
export interface DeviceProcess {
  readonly child: ChildProcess
  /** Every JSON line the script wrote so far (and its stderr, as `{stderr}`, once it exited). */
  readonly reports: Array<Record<string, unknown>>
  /** Resolves with the exit code, or the signal that ended it. */
  readonly exited: Promise<number | string | null>
  /** The highest `acked` any report gave. */
  acked(): number
}

/** Runs `script` with `args`; killed with SIGKILL after `limitMs` (default 40 s) at the latest. */
export function runDevice(script: string, args: readonly string[], limitMs = 40_000): DeviceProcess {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const reports: Array<Record<string, unknown>> = []
  let buffered = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      reports.push(JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>)
      buffered = buffered.slice(newline + 1)
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | string | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (stderr !== '') reports.push({ stderr })
      resolve(signal ?? code)
    })
  })
  const acked = (): number => Math.max(0, ...reports.map((r) => (typeof r['acked'] === 'number' ? r['acked'] : 0)))
  return { child, reports, exited, acked }
}
