// Prints the console's size as the hub serves it (each file gzipped at level 9) and fails over budget.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { constants, gzipSync } from 'node:zlib'

/** The budget for the whole console, gzipped: 150 KB. */
const CONSOLE_BUDGET_BYTES = 150 * 1024

const dist = fileURLToPath(new URL('../dist/', import.meta.url))
let names: string[]
try {
  names = readdirSync(dist).sort()
} catch {
  console.error('console/dist is missing: run `npm run build` first')
  process.exit(1)
}
let total = 0
for (const name of names) {
  const raw = readFileSync(join(dist, name))
  const gzipped = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION }).length
  total += gzipped
  console.log(`${name.padEnd(28)} ${String(raw.length).padStart(8)} B raw ${String(gzipped).padStart(8)} B gzip`)
}
console.log(`total ${total} bytes gzipped (${(total / 1024).toFixed(1)} KiB), budget ${CONSOLE_BUDGET_BYTES} bytes`)
if (total > CONSOLE_BUDGET_BYTES) {
  console.error('the console is over its budget')
  process.exit(1)
}
