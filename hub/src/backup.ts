import { constants, copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { open } from 'lmdb'
import { adminTokenPath } from './auth/index.js'
import { HubError } from './errors.js'
import { checkStore, ENVIRONMENT_OPTIONS, storeDir, type StoreCheck } from './store/index.js'

/** What a backup wrote. */
export interface Backup {
  /** The new data dir. */
  readonly dir: string
  /** The copy's check: its entries and size. */
  readonly store: StoreCheck
  /** Whether `admin-token` was copied (it exists only when the hub generated the admin token). */
  readonly adminToken: boolean
}

/**
 * Copies the data dir `dataDir` into `targetDir`, a new directory that becomes a data dir a hub can
 * start on: `store/data.mdb` and, when present, `admin-token`. The hub may run meanwhile: lmdb copies
 * one committed snapshot (every write acknowledged before the copy began, none half-done) through
 * a read-only transaction of this process, compacted (free pages left out, so the copy is often
 * smaller; it walks every tree, so a damaged source fails here instead of being copied). The copy
 * is then checked as a start would check it (checkStore). While the copy runs, the hub cannot
 * reuse pages freed after the snapshot, so its store may grow by what it writes meanwhile.
 * @throws HubError HUB_ERR_BACKUP (no store, target not empty, copy failed) or HUB_ERR_STORE_DAMAGED (the copy fails its check).
 */
export async function backupDataDir(dataDir: string, targetDir: string): Promise<Backup> {
  const source = storeDir(dataDir)
  if (!existsSync(`${source}/data.mdb`)) {
    throw new HubError('HUB_ERR_BACKUP', `no store in ${source}: FLEETGATE_DATA_DIR must name the data dir of a hub that has started once`)
  }
  if (existsSync(targetDir) && readdirSync(targetDir).length > 0) {
    throw new HubError('HUB_ERR_BACKUP', `${targetDir} is not empty: a backup goes into a new or empty directory`)
  }
  const target = storeDir(targetDir)
  mkdirSync(target, { recursive: true, mode: 0o700 })
  const root = open({ path: source, ...ENVIRONMENT_OPTIONS, readOnly: true })
  try {
    await root.backup(target, true)
  } catch (cause) {
    throw new HubError('HUB_ERR_BACKUP', `copying ${source} to ${target} failed: ${(cause as Error).message}`, { cause })
  } finally {
    await root.close()
  }
  let adminToken = true
  try {
    // COPYFILE_EXCL: the target was empty, so nothing is overwritten; the copy keeps mode 0600.
    copyFileSync(adminTokenPath(dataDir), adminTokenPath(targetDir), constants.COPYFILE_EXCL)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new HubError('HUB_ERR_BACKUP', `copying ${adminTokenPath(dataDir)} failed: ${(cause as Error).message}`, { cause })
    }
    adminToken = false
  }
  const store = await checkStore(targetDir)
  if (store === undefined) throw new HubError('HUB_ERR_BACKUP', `lmdb wrote no data.mdb into ${target}`)
  return { dir: targetDir, store, adminToken }
}
