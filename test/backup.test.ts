// `fleetgate-hub backup DIR` while the hub runs under load, then the documented restore: stop,
// move the backup into place, start (docs/security.md, "Commands, storage and recovery").
import { spawn } from 'node:child_process'
import { readFileSync, renameSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CommandFrame } from '@fleetgate/device-sdk'
import { UNREACHABLE_URL } from './support/ports.js'
import { api, HubProcesses, stopHubProcess, testEnv, type HubProcess } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { eventually, rows } from './support/telemetry.js'
import { connectDevice, type Credentials, type RawDevice } from './support/ws.js'

/** The committed bin, as an operator runs it. */
const HUB_BIN = fileURLToPath(new URL('../hub/bin/fleetgate-hub.js', import.meta.url))
const DB = 'restored'
const SENDERS = 8
const READINGS_PER_FRAME = 20

/** Runs `fleetgate-hub backup DIR` for a data dir, without blocking the event loop (the load goes on meanwhile). */
function runBackup(dataDir: string, target: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [HUB_BIN, 'backup', target], {
    env: { PATH: process.env['PATH'] ?? '', FLEETGATE_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

/** A device sending a batch every few ms, up to 8 unacked, keeping the `ts` of every acked reading. */
class Sender {
  readonly acked: number[] = []
  #stopped = false
  readonly done: Promise<void>

  constructor(readonly ws: RawDevice, firstTs: number) {
    this.done = this.#run(firstTs)
  }

  stop(): Promise<void> {
    this.#stopped = true
    return this.done
  }

  async #run(firstTs: number): Promise<void> {
    const pending = new Map<number, number[]>()
    let s = 0
    let ts = firstTs
    for (;;) {
      if (!this.#stopped && pending.size < 8) {
        s++
        const stamps = Array.from({ length: READINGS_PER_FRAME }, () => ++ts)
        pending.set(s, stamps)
        this.ws.send({ t: 'tb', s, r: stamps.map((at, k) => ({ ts: at, m: { v: k } })) })
      }
      if (pending.size === 0) return
      // Paced below the hub's rate (FLEETGATE_DEVICE_RATE in the test's env): a steady load, no naks.
      await new Promise((resolve) => setTimeout(resolve, 5))
      if (this.ws.frames.length === 0 && pending.size < 8 && !this.#stopped) continue
      const frame = await this.ws.next(10_000)
      if (frame.t !== 'ack') throw new Error(`sender: expected an ack, got ${JSON.stringify(frame)}`)
      for (const [seq, stamps] of pending) {
        if (seq > frame.s) break
        this.acked.push(...stamps)
        pending.delete(seq)
      }
    }
  }
}

describe('backup while the hub runs, and restore (issue 10)', () => {
  const hubs = new HubProcesses()
  let influx: Influxd

  beforeAll(async () => {
    influx = await startInfluxd()
  })
  afterAll(async () => {
    await hubs.cleanup()
    await influx?.destroy()
  })

  it('restores every reading acked before the backup began, every device with its key, and every queued command', async () => {
    const dataDir = hubs.dir()
    // Nothing listens on this port: the spool keeps every reading (nothing is trimmed), as in an outage.
    const { FLEETGATE_ADMIN_TOKEN: _fixed, ...env } = testEnv(dataDir, {
      FLEETGATE_INFLUX_URL: UNREACHABLE_URL,
      FLEETGATE_DEVICE_RATE: '1000',
    })
    const hub: HubProcess = await hubs.start(env)
    const token = hub.logs.find((entry) => typeof entry['generatedAdminToken'] === 'string')?.['generatedAdminToken'] as string
    expect(token).toMatch(/^fga_/)

    const devices: Credentials[] = []
    for (let i = 0; i < 20; i++) devices.push(await provisionWith(hub.base, token, `dev-${i}`, i % 4 === 0 ? 'ed25519' : 'hmac'))
    const offline = devices.slice(SENDERS, SENDERS + 6)
    const queue = async (device: Credentials, n: number): Promise<string> => {
      const queued = await api(hub.base, 'POST', `/api/v1/devices/${device.deviceId}/commands`, { name: `job-${n}`, ttlMs: 86_400_000, params: { n } }, token)
      expect(queued.status).toBe(202)
      return queued.body.id as string
    }
    const queuedBefore = new Map<string, string[]>(offline.map((device) => [device.deviceId, []]))
    for (const device of offline) for (let n = 0; n < 3; n++) queuedBefore.get(device.deviceId)?.push(await queue(device, n))

    const senders: Sender[] = []
    for (const [i, device] of devices.slice(0, SENDERS).entries()) {
      const ws = await connectDevice(hub.wsUrl, device)
      await ws.opening()
      senders.push(new Sender(ws, 1_700_000_000_000 + i * 1_000_000_000))
    }
    await eventually(() => senders.every((sender) => sender.acked.length >= 500), (all) => all)

    // The backup begins: what was acked so far must come back. Load and new commands go on meanwhile.
    const ackedBefore = senders.map((sender) => [...sender.acked])
    const target = join(hubs.dir(), 'backup')
    const backup = runBackup(dataDir, target)
    let backingUp = true
    const queueing = (async () => {
      for (let n = 3; backingUp && n < 60; n++) await queue(offline[n % offline.length] as Credentials, n)
    })()
    const done = await backup
    backingUp = false
    await queueing
    await Promise.all(senders.map((sender) => sender.stop()))
    expect(done.stderr).toBe('')
    expect(done.code).toBe(0)
    expect(done.stdout).toMatch(new RegExp(`^fleetgate: backed up ${dataDir} into ${target}: store [0-9.]+ MiB \\(\\d+ entries, checked\\) and admin-token\\n$`))
    expect(statSync(join(target, 'admin-token')).mode & 0o777).toBe(0o600)
    expect(senders.every((sender, i) => sender.acked.length > (ackedBefore[i]?.length ?? 0))).toBe(true)
    for (const sender of senders) sender.ws.close()

    // Restore: stop the hub, move the backup into place of a data dir, start on it (InfluxDB back).
    await stopHubProcess(hub, 'SIGTERM')
    const restoredDir = join(hubs.dir(), 'data')
    renameSync(target, restoredDir)
    const { FLEETGATE_ADMIN_TOKEN: _none, ...restoredEnv } = testEnv(restoredDir, { FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
    const restored = await hubs.start(restoredEnv)
    expect(restored.logs.some((entry) => 'generatedAdminToken' in entry)).toBe(false)
    expect(readFileSync(join(restoredDir, 'admin-token'), 'utf8').trim()).toBe(token)

    // Every device, and its key opens a session (hmac and ed25519).
    const listed = await api(restored.base, 'GET', '/api/v1/devices?limit=1000', undefined, token)
    expect(listed.status).toBe(200)
    expect(listed.body.items.map((item: { id: string }) => item.id).sort()).toEqual(devices.map((device) => device.deviceId).sort())
    for (const device of devices.filter((d) => !offline.includes(d))) {
      const ws = await connectDevice(restored.wsUrl, device)
      expect(await ws.next()).toMatchObject({ t: 'hello', dev: device.deviceId })
      ws.close()
    }
    // Every command queued before the backup began is queued, and goes out in order on connect.
    for (const device of offline) {
      const before = queuedBefore.get(device.deviceId) ?? []
      const queued = await api(restored.base, 'GET', `/api/v1/devices/${device.deviceId}/commands?status=queued`, undefined, token)
      const ids = (queued.body.items as Array<{ id: string }>).map((item) => item.id)
      expect(ids.slice(-before.length).reverse()).toEqual(before)
      const ws = await connectDevice(restored.wsUrl, device)
      await ws.opening()
      const delivered: string[] = []
      while (delivered.length < ids.length) delivered.push(((await ws.next()) as CommandFrame).id)
      expect(delivered.slice(0, before.length)).toEqual(before)
      ws.close()
    }
    // Every reading acked before the backup began lands in InfluxDB, once. The spool ships several
    // batches at once, so later readings (acked while the backup ran) may land before earlier ones:
    // wait for the readings themselves, not for a count.
    for (const [i, device] of devices.slice(0, SENDERS).entries()) {
      const expected = ackedBefore[i] ?? []
      const landed = async (): Promise<{ points: number; distinct: number; missing: number[] }> => {
        const times = (await rows(influx, `SELECT "v" FROM "telemetry" WHERE "device" = '${device.deviceId}'`, DB)).map((row) => row['time'] as number)
        const distinct = new Set(times)
        return { points: times.length, distinct: distinct.size, missing: expected.filter((ts) => !distinct.has(ts)).slice(0, 20) }
      }
      const found = await eventually(landed, (state) => state.missing.length === 0, 60_000).catch(() => landed())
      expect(found.missing, `${device.deviceId}: acked before the backup, not in InfluxDB (the first 20)`).toEqual([])
      expect(found.points).toBe(found.distinct)
    }
  }, 180_000)
})

/** Provisions a device with a given admin token (the generated one). */
async function provisionWith(base: string, token: string, id: string, keyType: 'hmac' | 'ed25519'): Promise<Credentials> {
  const created = await api(base, 'POST', '/api/v1/devices', { id, keyType }, token)
  if (created.status !== 201) throw new Error(`creating ${id}: ${created.status} ${JSON.stringify(created.body)}`)
  return { deviceId: id, keyType, key: (created.body.key ?? created.body.privateKey) as string }
}
