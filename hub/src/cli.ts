// The `fleetgate-hub` command: with no argument it starts the hub (main.ts); `backup DIR` copies
// the data dir of a hub, running or not, into DIR (backup.ts).
import { backupDataDir } from './backup.js'
import { loadConfig } from './config.js'
import { die } from './fatal.js'

const USAGE = 'usage: fleetgate-hub            start the hub (configured by FLEETGATE_* variables)\n' +
  '       fleetgate-hub backup DIR copy the data dir (FLEETGATE_DATA_DIR) into DIR, a new directory, while the hub runs\n'

const [command, ...args] = process.argv.slice(2)
if (command === undefined) {
  await import('./main.js')
} else if (command === 'backup' && args.length === 1 && args[0] !== undefined) {
  const target = args[0]
  try {
    // The data dir as the hub reads it, default included; the rest of the configuration is checked too.
    const { dataDir } = loadConfig(process.env)
    const done = await backupDataDir(dataDir, target)
    const mib = (done.store.bytes / (1024 * 1024)).toFixed(1)
    const token = done.adminToken ? ' and admin-token' : ''
    process.stdout.write(`fleetgate: backed up ${dataDir} into ${done.dir}: store ${mib} MiB (${done.store.entries} entries, checked)${token}\n`)
  } catch (err) {
    die(err)
  }
} else {
  process.stderr.write(USAGE)
  process.exit(2)
}
