// The real DeviceClient's telemetry against the real hub and a real influxd (docs/protocol.md, docs/telemetry.md):
// exact point counts, acks and naks as promise outcomes, the offline queue, resends across a
// SIGKILL of the hub, and a FileQueueStore across a SIGKILL of the device process.
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { DeviceClient, type DeviceClientOptions, type SdkError } from '@fleetgate/device-sdk'
import { ADMIN_TOKEN, provision, startHubProcess, startTestHub, stopHubProcess, tempDir, testEnv, type HubProcess, type TestHub } from './support/hub.js'
import { track } from './support/outcome.js'
import { startInfluxd, type Influxd } from './support/influxd.js'
import { freePort } from './support/ports.js'
import { assertBuilt } from './support/build.js'
import { runDevice, SDK_IMPORTS, type DeviceProcess } from './support/device-process.js'
import { countPoints, eventually, rows, until } from './support/telemetry.js'

const DB = 'sdk_telemetry'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))


const points = (influx: Influxd, device: string): Promise<number> => countPoints(influx, DB, 'n', `"device" = '${device}'`)

/** The device's `n` values in time order: readings stamped in send order read back 0, 1, 2... only if none was lost, doubled or restamped. */
async function inTimeOrder(influx: Influxd, device: string): Promise<unknown[]> {
  return (await rows(influx, `SELECT "n" FROM "telemetry" WHERE "device" = '${device}' ORDER BY time ASC`, DB)).map((row) => row['n'])
}
const range = (count: number): number[] => Array.from({ length: count }, (_, i) => i)

describe('DeviceClient telemetry against the hub and InfluxDB', () => {
  let influx: Influxd
  const clients: DeviceClient[] = []
  const running: HubProcess[] = []
  const children: ChildProcess[] = []
  const dirs: Array<{ path: string; cleanup(): void }> = []
  const dir = (): string => {
    const made = tempDir('fleetgate-sdk-telemetry-')
    dirs.push(made)
    return made.path
  }
  const newClient = (options: DeviceClientOptions): DeviceClient => {
    const client = new DeviceClient(options)
    clients.push(client)
    return client
  }
  const start = async (env: Record<string, string>): Promise<HubProcess> => {
    const hub = await startHubProcess(env)
    running.push(hub)
    return hub
  }

  beforeAll(async () => {
    assertBuilt('device-sdk')
    influx = await startInfluxd()
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()))
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const hub of running.splice(0)) await stopHubProcess(hub)
    for (const made of dirs.splice(0)) made.cleanup()
  })
  afterAll(async () => {
    await influx?.destroy()
  })

  describe('one hub in-process', () => {
    let hub: TestHub
    beforeAll(async () => {
      hub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
    })
    afterAll(async () => {
      await hub?.stop()
    })

    it('stores N readings from send and sendBatch as exactly N points; flush() resolves after every ack', async () => {
      const device = await hub.provision('sdk-count', { tags: { site: 'lyon' } })
      const client = newClient({ url: hub.wsUrl, deviceId: device.deviceId, key: device.key })
      await client.connect()
      // device time, strictly increasing: 250 readings sent in one tick are 250 points
      const sent = Array.from({ length: 250 }, (_, n) => track(client.send({ n, temp: 20 + n / 10 })))
      const base = Date.now() - 3_600_000
      const batches = [0, 1, 2].map((b) =>
        track(client.sendBatch(Array.from({ length: 400 }, (_, i) => ({ metrics: { n: 1000 + b * 400 + i }, ts: base + b * 400 + i, tags: { src: 'batch' } })))),
      )
      expect(client.queued).toBe(1450)
      await client.flush()
      expect([...sent, ...batches].map((o) => o.state)).toStrictEqual(Array<string>(253).fill('resolved'))
      expect([client.queued, client.inflight]).toStrictEqual([0, 0])

      expect(await eventually(() => points(influx, 'sdk-count'), (count) => count === 1450)).toBe(1450)
      const [batched] = await rows(influx, `SELECT * FROM "telemetry" WHERE "device" = 'sdk-count' AND "src" = 'batch' ORDER BY time ASC LIMIT 1`, DB)
      expect(batched).toMatchObject({ time: base, device: 'sdk-count', site: 'lyon', src: 'batch', n: 1000 })
      const stamped = await rows(influx, `SELECT "n" FROM "telemetry" WHERE "device" = 'sdk-count' AND "src" = '' ORDER BY time ASC`, DB)
      expect(stamped.map((row) => row['n'])).toStrictEqual(range(250))
    })

    it('refuses an invalid reading locally: it is never sent, and a batch holding one is refused whole', async () => {
      const device = await hub.provision('sdk-invalid')
      const client = newClient({ url: hub.wsUrl, deviceId: device.deviceId, key: device.key })
      await client.connect()
      await expect(client.send({ 'bad key': 1 })).rejects.toMatchObject({ code: 'SDK_ERR_INVALID_READING', message: 'metrics: bad key "bad key", expected ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' })
      await expect(client.send({ n: 1 }, { tags: { device: 'spoof' } })).rejects.toMatchObject({ code: 'SDK_ERR_INVALID_READING' })
      await expect(client.sendBatch([{ metrics: { n: 2 } }, { metrics: { n: 'x'.repeat(300) } }])).rejects.toMatchObject({
        code: 'SDK_ERR_INVALID_READING',
        message: 'readings[1].metrics.n: text of 300 bytes, at most 256',
      })
      expect([client.queued, client.inflight]).toStrictEqual([0, 0])
      await client.send({ n: 3 })
      expect(await eventually(() => points(influx, 'sdk-invalid'), (count) => count === 1)).toBe(1)
      const only = await rows(influx, `SELECT "n" FROM "telemetry" WHERE "device" = 'sdk-invalid'`, DB)
      expect(only.map((row) => row['n'])).toStrictEqual([3])
    })

    it('with a FileQueueStore, a device process killed with SIGKILL resends its unacked readings after a restart', async () => {
      const rateHub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB, FLEETGATE_DEVICE_RATE: '5' })
      try {
        const device = await rateHub.provision('sdk-killed-device')
        const work = dir()
        const script = join(work, 'device.mjs')
        writeFileSync(script, deviceScript())
        const storePath = join(work, 'queue.jsonl')
        const run = (count: number): DeviceProcess => {
          const child = runDevice(script, [rateHub.wsUrl, device.deviceId, device.key, storePath, String(count)])
          children.push(child.child)
          return child
        }

        // 300 readings at 5 frames/s of 10: about 5 s to send; killed once some are acked
        const first = run(300)
        await until(() => first.reports.some((r) => r['queued'] === 300), 'the first run to queue its readings')
        await until(() => first.acked() >= 50, 'some acks')
        first.child.kill('SIGKILL')
        expect(await first.exited).toBe('SIGKILL')
        const ackedBeforeKill = first.acked()
        expect(ackedBeforeKill).toBeLessThan(300)

        const second = run(0)
        expect(await second.exited).toBe(0)
        const loaded = second.reports.find((r) => 'loaded' in r)?.['loaded'] as number
        expect(loaded).toBeGreaterThan(0)
        expect(loaded).toBeLessThanOrEqual(300 - ackedBeforeKill)
        expect(second.reports.at(-1)).toStrictEqual({ done: true, queued: 0, inflight: 0 })

        expect(await eventually(() => points(influx, 'sdk-killed-device'), (count) => count === 300, 30_000)).toBe(300)
        expect(await inTimeOrder(influx, 'sdk-killed-device')).toStrictEqual(range(300))
      } finally {
        await rateHub.stop()
      }
    }, 60_000)
  })

  describe('a hub with FLEETGATE_DEVICE_RATE=2', () => {
    let hub: TestHub
    beforeAll(async () => {
      hub = await startTestHub({ FLEETGATE_DEVICE_RATE: '2' })
    })
    afterAll(async () => {
      await hub?.stop()
    })
    const naks = async (): Promise<string[]> => {
      const text = await (await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()
      return text.split('\n').filter((line) => line.startsWith('fleetgate_naks_total{'))
    }

    it('is never naked: the client paces its frames to lim.rate', async () => {
      const device = await hub.provision('sdk-paced')
      const client = newClient({ url: hub.wsUrl, deviceId: device.deviceId, key: device.key, batchMaxReadings: 1 })
      expect((await client.connect()).lim.rate).toBe(2)
      const started = Date.now()
      await Promise.all(Array.from({ length: 6 }, (_, n) => client.send({ n })))
      // burst 3 (1.5 s of rate), then one frame every 500 ms
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
      expect(await naks()).toStrictEqual([])
    })

    it('rejects a reading the hub naks with SDK_ERR_NAK and the reason (pacing off: the 5th frame at once meets an empty bucket)', async () => {
      const device = await hub.provision('sdk-naked')
      const client = newClient({ url: hub.wsUrl, deviceId: device.deviceId, key: device.key, batchMaxReadings: 1, pacing: false })
      await client.connect()
      // the hub's bucket holds 2 x 2 tokens and refills 2 per second: frames 1 to 4 pass, frame 5 is naked `rate`
      const outcomes = await Promise.allSettled(Array.from({ length: 5 }, (_, n) => client.send({ n })))
      expect(outcomes.map((o) => o.status)).toStrictEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected'])
      const refused = outcomes[4] as PromiseRejectedResult
      expect(refused.reason).toMatchObject({ name: 'SdkError', code: 'SDK_ERR_NAK', reason: 'rate', message: 'the hub refused frame 5 (rate); its readings are not stored' })
      expect(await naks()).toStrictEqual(['fleetgate_naks_total{reason="rate"} 1'])
      expect([client.queued, client.inflight]).toStrictEqual([0, 0])
    })
  })

  describe('a hub process', () => {
    it('delivers readings sent while the hub was down once it is back', async () => {
      const env = testEnv(dir(), { FLEETGATE_PORT: String(await freePort()), FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
      const first = await start(env)
      const device = await provision(first.base, 'sdk-offline')
      const client = newClient({ url: first.wsUrl, deviceId: device.deviceId, key: device.key, backoff: { initialDelayMs: 100, maxDelayMs: 400 } })
      await client.connect()
      const disconnected = new Promise<{ code: number }>((resolve) => client.once('disconnected', resolve))
      await stopHubProcess(first, 'SIGTERM')
      expect((await disconnected).code).toBe(1001)

      const offline = [
        ...Array.from({ length: 100 }, (_, n) => track(client.send({ n }))),
        track(client.sendBatch(Array.from({ length: 200 }, (_, i) => ({ metrics: { n: 100 + i } })))),
      ]
      await sleep(300)
      expect([client.connected, client.queued, client.inflight]).toStrictEqual([false, 300, 0])
      expect(offline.every((o) => o.state === 'pending')).toBe(true)

      await start(env)
      await client.flush()
      expect(offline.map((o) => o.state)).toStrictEqual(Array<string>(101).fill('resolved'))
      expect(await eventually(() => points(influx, 'sdk-offline'), (count) => count === 300, 30_000)).toBe(300)
      expect(await inTimeOrder(influx, 'sdk-offline')).toStrictEqual(range(300))
    })

    it('loses nothing and duplicates nothing when the hub is killed with SIGKILL mid-stream', async () => {
      const env = testEnv(dir(), { FLEETGATE_PORT: String(await freePort()), FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
      let hub = await start(env)
      const device = await provision(hub.base, 'sdk-stream')
      const client = newClient({ url: hub.wsUrl, deviceId: device.deviceId, key: device.key, backoff: { initialDelayMs: 50, maxDelayMs: 200 } })
      let sessions = 0
      client.on('connected', () => sessions++)
      await client.connect()

      // about 8,000 readings a second, each stamped with device time, until 6,000 are sent
      const total = 6000
      let produced = 0
      let acked = 0
      const failures: SdkError[] = []
      const settled: Array<Promise<void>> = []
      const producer = (async () => {
        while (produced < total) {
          for (let k = 0; k < 20 && produced < total; k++) {
            settled.push(client.send({ n: produced++ }).then(() => void acked++, (error: SdkError) => void failures.push(error)))
          }
          await sleep(2)
        }
      })()

      // killed (synchronously after the check) while readings are on the wire and not yet acked
      await until(() => acked >= 1500 && client.inflight > 0, '1,500 acks and readings in flight')
      const inFlightAtKill = client.inflight
      await stopHubProcess(hub, 'SIGKILL')
      const ackedAtKill = acked
      await sleep(300)
      hub = await start(env)
      await producer
      await client.flush()
      await Promise.all(settled)
      expect({ failures, acked, sessions }).toStrictEqual({ failures: [], acked: total, sessions: 2 })
      expect(ackedAtKill).toBeLessThan(total)
      // those readings were resent with their seq and ts, and landed on their points once
      expect(inFlightAtKill).toBeGreaterThan(0)
      expect(await eventually(() => points(influx, 'sdk-stream'), (count) => count === total, 30_000)).toBe(total)
      expect(await inTimeOrder(influx, 'sdk-stream')).toStrictEqual(range(total))
    }, 60_000)
  })
})

/** A device process: queues `count` readings in a FileQueueStore, then sends everything the store holds. */
function deviceScript(): string {
  return `${SDK_IMPORTS}const [url, deviceId, key, storePath, countText] = process.argv.slice(2)
const client = new DeviceClient({ url, deviceId, key, store: new FileQueueStore(storePath), batchMaxReadings: 10 })
client.on('error', (error) => report({ error: error.code, message: error.message }))
report({ loaded: client.queued })
let acked = 0
const sends = []
for (let n = 0; n < Number(countText); n++) sends.push(client.send({ n }).then(() => report({ acked: ++acked })))
report({ queued: client.queued })
await client.connect()
await Promise.all(sends)
await client.flush()
report({ done: true, queued: client.queued, inflight: client.inflight })
await client.close()
`
}
