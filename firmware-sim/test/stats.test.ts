// Stats, windows and percentiles; the verify comparison; the summary's checks; bad frames.
import { describe, expect, it } from 'vitest'
import { SdkError } from '@fleetgate/device-sdk'
import { decodeDeviceFrame } from '@fleetgate/device-sdk/wire'
import { BAD_FRAME_KINDS, badFrame, isBadFrameNak } from '../src/bad-frames.js'
import { resolveSimOptions } from '../src/options.js'
import { deviceIdOfToken } from '../src/socket.js'
import { Stats } from '../src/stats.js'
import { buildSummary } from '../src/summary.js'
import { compare } from '../src/verify.js'

const TIMING = { sendingMs: 10_000, drainMs: 500, drained: true, stopped: false, connectedAtEnd: 3 }

function summaryOf(stats: Stats, extra: Partial<Parameters<typeof buildSummary>[0]> = {}) {
  return buildSummary({
    options: resolveSimOptions({ hub: 'http://h:1', devices: 3, seed: 5 }),
    stats,
    timing: TIMING,
    verify: undefined,
    twins: { unconverged: 0, verify: undefined },
    verifyMs: 0,
    startedAt: 0,
    endedAt: 11_000,
    booted: 3,
    everConnected: 3,
    rssMaxBytes: 0,
    cpu: { user: 2000, system: 1000 },
    ...extra,
  })
}

describe('Stats', () => {
  it('counts readings per model and keeps sent = acked + naked + dropped + failed + unsettled', () => {
    const stats = new Stats()
    stats.sent('thermostat', 10)
    stats.sent('meter', 5)
    stats.acked('thermostat', 7, 2)
    stats.acked('meter', 5, 4)
    stats.nakedUnexpected('thermostat', 1, 'rate')
    stats.badFrameSent('meter')
    stats.badFrameNaked('meter')
    stats.dropped(1)
    expect(stats.readings).toStrictEqual({ sent: 16, acked: 12, nakedExpected: 1, nakedUnexpected: 1, dropped: 1, failed: 0 })
    expect(stats.unsettled).toBe(1)
    expect(stats.perModel).toStrictEqual({
      thermostat: { devices: 0, sent: 10, acked: 7, naked: 1, commandsHandled: 0 },
      meter: { devices: 0, sent: 6, acked: 5, naked: 1, commandsHandled: 0 },
      tracker: { devices: 0, sent: 0, acked: 0, naked: 0, commandsHandled: 0 },
    })
    expect(stats.naks).toStrictEqual({ expected: 1, unexpected: 1, byReason: { rate: 1, invalid: 1 } })
    expect(stats.badFrames).toStrictEqual({ sent: 1, naked: 1, resent: 0 })
  })

  it('gives HDR percentiles in ms, cumulative and per window', () => {
    const stats = new Stats()
    const window = stats.openWindow(0)
    for (let ms = 1; ms <= 100; ms++) stats.acked('tracker', 1, ms)
    // 3 significant digits: percentiles read back the top of their bucket, max the value itself
    expect(stats.ackLatency()).toStrictEqual({ count: 100, p50: 50.015, p95: 95.039, p99: 99.007, max: 100, mean: 50.504 })
    const first = window.read(2000)
    expect(first).toMatchObject({ ms: 2000, sent: 0, acked: 100, commands: 0 })
    expect(first.ack.p99).toBe(99.007)
    stats.acked('tracker', 2, 0.25)
    stats.command('ping', 'succeeded', 3)
    stats.command('ping', 'offline', undefined)
    const second = window.read(3000)
    expect(second).toMatchObject({ ms: 1000, acked: 2, commands: 2, ack: { count: 1, p50: 0.25, max: 0.25 }, commandRtt: { count: 1, p50: 3.001 } })
    expect(window.read(3000).ack).toStrictEqual({ count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 })
    expect(stats.ackLatency().count).toBe(101)
    expect(stats.commands).toMatchObject({ sent: 2, succeeded: 1, offline: 1, byName: { ping: { succeeded: 1, offline: 1, timeout: 0 } } })
  })

  it('says each warning once', () => {
    const stats = new Stats()
    stats.warn('a')
    stats.warn('b')
    stats.warn('a')
    expect(stats.warnings).toStrictEqual(['a', 'b'])
    stats.failedAttempt('sim-000001: no hello from the hub within 10000 ms')
    expect(stats.sessions).toMatchObject({ failedAttempts: 1, lastFailures: ['sim-000001: no hello from the hub within 10000 ms'] })
  })

  it('tracks connected devices and their maximum', () => {
    const stats = new Stats()
    stats.connectedNow(1)
    stats.connectedNow(1)
    stats.connectedNow(-1)
    stats.disconnected('storm', 1006)
    stats.disconnected('hub', 1001)
    expect([stats.connected, stats.maxConnected]).toStrictEqual([1, 2])
    expect(stats.sessions.disconnects).toStrictEqual({ churn: 0, storm: 1, reboot: 0, hub: 1, network: 0 })
    expect(stats.sessions.closeCodes).toStrictEqual({ '1006': 1, '1001': 1 })
  })
})

describe('summary checks', () => {
  it('passes when every reading was acked or deliberately naked', () => {
    const stats = new Stats()
    stats.sent('meter', 4)
    stats.acked('meter', 4, 1)
    stats.badFrameSent('meter')
    stats.badFrameNaked('meter')
    const summary = summaryOf(stats)
    expect([summary.ok, summary.reasons, summary.warnings]).toStrictEqual([true, [], []])
    expect(summary.readings).toStrictEqual({ sent: 5, acked: 4, naked: { expected: 1, unexpected: 0 }, dropped: 0, unacked: 0, failed: 0 })
    expect(summary.devices).toStrictEqual({ target: 3, booted: 3, everConnected: 3, neverConnected: 0, connectedAtEnd: 3, maxConnected: 0 })
    expect(summary.rates).toStrictEqual({ offeredPerSec: 3, sentPerSec: 0.4, ackedPerSec: 0.4 })
    expect(summary.schedule).toStrictEqual({ lagMs: { count: 0, p50: 0, p95: 0, p99: 0, max: 0, mean: 0 }, skippedFrames: 0, behind: false })
    expect(summary.process).toMatchObject({ cpuUserMs: 2, cpuSystemMs: 1 })
  })

  it('fails with one reason per problem', () => {
    const stats = new Stats()
    stats.sent('meter', 10)
    stats.acked('meter', 5, 1)
    stats.nakedUnexpected('meter', 1, 'too_many')
    stats.dropped(1)
    stats.error('SDK_ERR_UNAUTHORIZED', 'sim-000001: refused')
    stats.command('ping', 'unexpected', 2, 'sim-000001 answered failed "boom"')
    stats.command('ping', 'timeout', undefined, 'sim-000002: no result within 10000 ms')
    stats.twinChange('error', 'sim-000003: 404 not_found: no device "sim-000003"')
    const summary = summaryOf(stats, {
      everConnected: 2,
      timing: { ...TIMING, drained: false },
      twins: { unconverged: 2, verify: { devices: 4, inSync: 3, outOfSync: ['sim-000004: delta {"setpoint":21}'], outOfSyncCount: 1, waitedMs: 5 } },
      verify: { via: 'api', devices: 3, acked: 5, stored: 6, missing: 1, extra: 2, duplicates: 0, matchedDevices: 1, error: undefined, waitedMs: 3, polls: 1, worst: [] },
    })
    expect(summary.ok).toBe(false)
    expect(summary.reasons).toStrictEqual([
      '1 of 3 devices never connected (wrong keys, hub unreachable, or refused: see errors)',
      '1 readings naked unexpectedly (too_many 1)',
      '1 readings dropped by full device queues',
      '3 readings unacked at the end (drain timed out after 30000 ms)',
      '1 device errors (SDK_ERR_UNAUTHORIZED 1)',
      '1 commands answered wrongly (last: ping: sim-000001 answered failed "boom")',
      '1 commands timed out with no chaos to explain it (last: ping: sim-000002: no result within 10000 ms)',
      '1 desired changes failed (last: sim-000003: 404 not_found: no device "sim-000003")',
      '2 desired changes not converged at the end (drain timed out after 30000 ms)',
      'verify: 1 of 4 twins not in sync (first: sim-000004: delta {"setpoint":21})',
      'verify: 1 acked readings not stored',
      'verify: 2 stored points never acked',
    ])
  })
})

describe('compare (verify)', () => {
  it('counts missing, extra and duplicate points', () => {
    expect(compare('d', [3, 1, 2], [1, 2, 3])).toStrictEqual({ id: 'd', acked: 3, stored: 3, missing: 0, extra: 0, duplicates: 0 })
    expect(compare('d', [1, 2, 3, 4], [1, 3, 3, 5])).toStrictEqual({ id: 'd', acked: 4, stored: 4, missing: 2, extra: 1, duplicates: 1 })
    expect(compare('d', [], [7])).toStrictEqual({ id: 'd', acked: 0, stored: 1, missing: 0, extra: 1, duplicates: 0 })
    expect(compare('d', [7, 8], [])).toStrictEqual({ id: 'd', acked: 2, stored: 0, missing: 2, extra: 0, duplicates: 0 })
  })
})

describe('bad frames', () => {
  it.each(BAD_FRAME_KINDS)('%s decodes as invalid with seq 0, so the hub naks it', (kind) => {
    const decoded = decodeDeviceFrame(badFrame(kind, 1_700_000_000_000, { temperature: 21.5, heating: true }))
    expect(decoded).toMatchObject({ ok: false, code: 'invalid', s: 0 })
  })

  it('recognises the nak of a bad frame and nothing else', () => {
    const nak = (s: number, e: 'invalid' | 'rate'): SdkError => new SdkError('SDK_ERR_NAK', 'not in flight', { cause: { t: 'nak', s, e }, reason: e })
    expect(isBadFrameNak(nak(0, 'invalid'))).toBe(true)
    expect(isBadFrameNak(nak(5, 'invalid'))).toBe(false)
    expect(isBadFrameNak(nak(0, 'rate'))).toBe(false)
    expect(isBadFrameNak(new SdkError('SDK_ERR_HUB', 'x', { cause: { t: 'nak', s: 0 } }))).toBe(false)
  })

  it('finds the device id in the Authorization header', () => {
    expect(deviceIdOfToken('Bearer v1.sim-000001.1700000000.c2ln')).toBe('sim-000001')
    expect(deviceIdOfToken('Bearer v2.x.1.s')).toBeUndefined()
    expect(deviceIdOfToken(undefined)).toBeUndefined()
  })
})
