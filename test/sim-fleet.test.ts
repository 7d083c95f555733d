// The firmware simulator in-process (runFleet) against a real hub and a real influxd: small fleets
// under churn, storms, reboots, clock skew and bad frames, with commands, checked by --verify.
// Counts are asserted exactly: what was sent is what was acked or deliberately naked, and what
// was acked is what InfluxDB holds.
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MODEL_NAMES, runFleet, stream, Stream, type Summary } from '@fleetgate/firmware-sim'
import { ADMIN_TOKEN, startTestHub, tempDir, type TestHub } from './support/hub.js'
import { startInfluxd, type Influxd } from './support/influxd.js'

const DB = 'sim_fleet'


/** Bad frames a fleet sends: one draw of each device's bad-frame stream per frame (the simulator's own rule). */
function plannedBadFrames(seed: number, devices: number, frames: number, percent: number): number {
  let count = 0
  for (let i = 0; i < devices; i++) {
    const random = stream(seed, Stream.badFrames, i)
    for (let f = 0; f < frames; f++) if (random() * 100 < percent) count++
  }
  return count
}

/** The hub's nak counter for `reason`, from /metrics. */
async function hubNaks(hub: TestHub, reason: string): Promise<number> {
  const text = await (await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()
  const line = text.split('\n').find((l) => l.startsWith(`fleetgate_naks_total{reason="${reason}"}`))
  return line === undefined ? 0 : Number(line.split(' ').at(-1))
}

/** Every session lost came back, and every device was online at the end. */
function expectSessionsWhole(summary: Summary, devices: number): void {
  const d = summary.sessions.disconnects
  expect(summary.devices).toStrictEqual({ target: devices, booted: devices, everConnected: devices, neverConnected: 0, connectedAtEnd: devices, maxConnected: devices })
  expect(summary.sessions.connects).toBe(devices + summary.sessions.reconnects)
  expect(summary.sessions.reconnects).toBe(d.churn + d.storm + d.reboot + d.hub + d.network)
}

describe('fleetgate-sim in-process against a hub and InfluxDB', () => {
  let influx: Influxd
  let hub: TestHub
  const dir = tempDir('fleetgate-sim-fleet-')

  beforeAll(async () => {
    influx = await startInfluxd()
    hub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: DB })
  })
  afterAll(async () => {
    await hub?.stop()
    await influx?.destroy()
    dir.cleanup()
  })

  it('50 mixed devices under churn, storms, reboots and bad frames: every reading acked or deliberately naked, and stored exactly once', async () => {
    const seed = 20_261_121
    const fleet = join(dir.path, 'fleet.json')
    const json = join(dir.path, 'summary.json')
    const jsonl = join(dir.path, 'soak.jsonl')
    const nakedBefore = await hubNaks(hub, 'invalid')
    const summary = await runFleet({
      hub: hub.base,
      token: ADMIN_TOKEN,
      devices: 50,
      prefix: 'fleet-',
      provision: true,
      fleet,
      model: 'mixed',
      rate: 10,
      readings: 40,
      connectRate: 500,
      churnPercentPerMin: 120,
      stormEveryMs: 1500,
      badFramesPercent: 10,
      commandRate: 25,
      commands: ['ping', 'get_config', 'set_setpoint', 'set_relay', 'set_interval', 'reboot', 'bogus'],
      commandTimeoutMs: 5000,
      rebootDelayMs: 300,
      verify: true,
      verifyTimeoutMs: 30_000,
      drainTimeoutMs: 20_000,
      json,
      jsonl,
      snapshotEveryMs: 1000,
      seed,
    })
    const bad = plannedBadFrames(seed, 50, 40, 10)
    expect(bad).toBeGreaterThan(100)
    expect({ ok: summary.ok, reasons: summary.reasons }).toStrictEqual({ ok: true, reasons: [] })
    expect(summary.readings).toStrictEqual({ sent: 2000 + bad, acked: 2000, naked: { expected: bad, unexpected: 0 }, dropped: 0, unacked: 0, failed: 0 })
    expect(summary.naks).toStrictEqual({ expected: bad, unexpected: 0, byReason: { invalid: bad } })
    expect(summary.badFrames.sent).toBe(bad)
    expect(summary.badFrames.naked).toBe(bad)
    // the hub naked each bad frame at least once; a resent one may have been naked before its session was cut
    const hubNaked = (await hubNaks(hub, 'invalid')) - nakedBefore
    expect(hubNaked).toBeGreaterThanOrEqual(bad)
    expect(hubNaked).toBeLessThanOrEqual(bad + summary.badFrames.resent)
    expect(summary.ackLatencyMs.count).toBe(2000)
    expect(summary.errors).toStrictEqual({ total: 0, byCode: {}, last: [] })

    // 17 thermostats, 17 meters, 16 trackers, each with its 40 readings acked
    const counts = MODEL_NAMES.map((name) => summary.perModel[name])
    expect(counts.map((c) => [c.devices, c.acked])).toStrictEqual([
      [17, 680],
      [17, 680],
      [16, 640],
    ])
    expect(counts.reduce((sum, c) => sum + c.sent - c.acked - c.naked, 0)).toBe(0)

    expectSessionsWhole(summary, 50)
    expect(summary.sessions.storms).toBeGreaterThanOrEqual(2)
    expect(summary.sessions.disconnects.storm).toBeGreaterThanOrEqual(50)
    expect(summary.sessions.disconnects.churn).toBeGreaterThan(0)

    const c = summary.commands
    expect(c.sent).toBeGreaterThan(40)
    expect([c.unexpected, c.errors]).toStrictEqual([0, 0])
    expect(c.succeeded + c.expectedFailures + c.timeout + c.offline).toBe(c.sent)
    expect(c.rttMs.count).toBe(c.succeeded + c.expectedFailures)
    expect(c.succeeded).toBeGreaterThan(0)
    // bogus everywhere, set_setpoint on meters and trackers, set_relay on thermostats and trackers
    expect(c.expectedFailures).toBeGreaterThan(0)
    // each reboot ends its session, unless a storm or churn cut it first, or a second reboot found it rebooting
    expect(summary.handled['reboot']).toBeGreaterThan(0)
    expect(summary.sessions.disconnects.reboot).toBeGreaterThan(0)
    expect(summary.sessions.disconnects.reboot).toBeLessThanOrEqual(summary.handled['reboot'] ?? 0)

    expect(summary.verify).toMatchObject({ via: 'api', devices: 50, acked: 2000, stored: 2000, missing: 0, extra: 0, duplicates: 0, matchedDevices: 50, worst: [] })
    expect(summary.verify?.error).toBeUndefined()

    expect(JSON.parse(readFileSync(json, 'utf8'))).toStrictEqual(JSON.parse(JSON.stringify(summary)))
    const snapshots = readFileSync(jsonl, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { readings: { sent: number }; target: number })
    expect(snapshots.length).toBeGreaterThanOrEqual(2)
    expect(snapshots.at(-1)).toMatchObject({ target: 50, readings: { sent: 2000 + bad, acked: 2000, unsettled: 0 } })
    expect(statSync(fleet).mode & 0o777).toBe(0o600)
    expect((JSON.parse(readFileSync(fleet, 'utf8')) as { devices: unknown[] }).devices).toHaveLength(50)
  }, 90_000)

  it('30 mixed devices under churn and storms with desired changes at 20/s: every change converges and every twin is in sync', async () => {
    const summary = await runFleet({
      hub: hub.base,
      token: ADMIN_TOKEN,
      devices: 30,
      prefix: 'twin-',
      provision: true,
      fleet: join(dir.path, 'twins.json'),
      model: 'mixed',
      rate: 5,
      readings: 30,
      churnPercentPerMin: 300,
      stormEveryMs: 2500,
      twinRate: 20,
      verify: true,
      verifyTimeoutMs: 30_000,
      drainTimeoutMs: 20_000,
      seed: 13,
    })
    expect({ ok: summary.ok, reasons: summary.reasons }).toStrictEqual({ ok: true, reasons: [] })
    expect(summary.readings).toMatchObject({ sent: 900, acked: 900, unacked: 0 })
    expectSessionsWhole(summary, 30)
    expect(summary.sessions.disconnects.churn + summary.sessions.disconnects.storm).toBeGreaterThan(30)
    const t = summary.twins
    expect(t.changed).toBeGreaterThan(60)
    expect([t.errors, t.skipped, t.unconverged]).toStrictEqual([0, 0, 0])
    // a change overtaken by a later one of the same device converges with it, uncounted
    expect(t.converged).toBeLessThanOrEqual(t.changed)
    expect(t.convergenceMs.count).toBe(t.converged)
    expect(t.verify).toMatchObject({ inSync: t.verify?.devices, outOfSync: [], outOfSyncCount: 0 })
    expect(t.verify?.devices).toBeGreaterThan(20)
    // what the hub holds: each changed device reports the settings its desired state asks for
    for (const id of ['twin-000001', 'twin-000002', 'twin-000003']) {
      const twin = (await hub.api('GET', `/api/v1/devices/${id}/twin`)).body
      expect(twin.delta).toStrictEqual({})
      for (const [key, value] of Object.entries(twin.desired as Record<string, unknown>)) expect(twin.reported[key]).toStrictEqual(value)
    }
  }, 90_000)

  it('ed25519 devices sending batches of 10 with clocks off by up to 20 s: stored under device time, exactly once (read from InfluxDB)', async () => {
    const summary = await runFleet({
      hub: hub.base,
      token: ADMIN_TOKEN,
      devices: 12,
      prefix: 'skew-',
      provision: true,
      fleet: join(dir.path, 'skew.json'),
      keyType: 'ed25519',
      model: 'meter',
      rate: 20,
      batch: 10,
      readings: 60,
      clockSkewMs: 20_000,
      stormEveryMs: 1000,
      verify: true,
      // straight from InfluxDB this time, not through the hub's telemetry API
      influxUrl: influx.url,
      influxDb: DB,
      verifyTimeoutMs: 30_000,
      seed: 7,
    })
    expect({ ok: summary.ok, reasons: summary.reasons }).toStrictEqual({ ok: true, reasons: [] })
    expect(summary.readings).toStrictEqual({ sent: 720, acked: 720, naked: { expected: 0, unexpected: 0 }, dropped: 0, unacked: 0, failed: 0 })
    // one send call per frame of 10
    expect(summary.ackLatencyMs.count).toBe(72)
    expect(summary.perModel.meter).toStrictEqual({ devices: 12, sent: 720, acked: 720, naked: 0, commandsHandled: 0 })
    expectSessionsWhole(summary, 12)
    expect(summary.verify).toMatchObject({ via: 'influx', devices: 12, acked: 720, stored: 720, missing: 0, extra: 0, duplicates: 0 })

    // the points carry each device's own wrong time: its last point is its skew away from the hub's clock
    const ended = Date.parse(summary.endedAt)
    const slack = summary.timing.drainMs + summary.timing.verifyMs + 1000
    const offsets: Array<[number, number]> = []
    for (let i = 0; i < 12; i++) {
      const skewMs = Math.round((2 * stream(7, Stream.skew, i)() - 1) * 20_000)
      const range = `from=${new Date(ended - 120_000).toISOString()}&to=${new Date(ended + 120_000).toISOString()}`
      const { body } = await hub.api('GET', `/api/v1/devices/skew-${String(i + 1).padStart(6, '0')}/telemetry?${range}&metrics=power&limit=100`)
      expect(body.points).toHaveLength(60)
      const offset = Date.parse(body.points.at(-1).ts) - ended
      expect(offset).toBeGreaterThan(skewMs - slack)
      expect(offset).toBeLessThanOrEqual(skewMs)
      offsets.push([skewMs, offset])
    }
    expect(Math.max(...offsets.map(([skew]) => skew)) - Math.min(...offsets.map(([skew]) => skew))).toBeGreaterThan(10_000)
  }, 60_000)
})
