// The child process of checkStore (store-check.ts): walks the store of the data dir given as its
// argument and writes one JSON line on stdout. lmdb may abort or crash this process on a damaged
// store; the parent reads that from how it ended.
import { HubError } from '../../errors.js'
import { walkStore } from './store-check.js'

const dataDir = process.argv[2] ?? ''
let answer: Record<string, unknown>
try {
  answer = { ok: true, ...walkStore(dataDir) }
} catch (err) {
  answer = err instanceof HubError ? { ok: false, code: err.code, message: err.message } : { ok: false, code: 'HUB_ERR_STORE', message: String(err) }
}
process.stdout.write(`${JSON.stringify(answer)}\n`)
