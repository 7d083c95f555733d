// Hostile device frames against a running hub: every bad frame gets one of the contract's answers
// (docs/protocol.md: a nak with its reason, or close 1003/1007/1008/1009), a witness device on the same
// hub keeps its session and its acks, and every reading it had acked lands in InfluxDB.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { realClock, type CommandFrame } from '@fleetgate/device-sdk'
import { encodeFrame, MAX_TS_MS, type HubFrame } from '@fleetgate/device-sdk/wire'
import { FrameFuzzer } from '../support/cbor-fuzz.js'
import { answeredOrClosed, assertHubServes, fuzzSeed, hubMetric, seededRandom, Witness } from '../support/hostile.js'
import { ADMIN_TOKEN, startTestHub, type TestHub } from '../support/hub.js'
import { startInfluxd, type Influxd } from '../support/influxd.js'
import { countPoints, eventually, rows, until } from '../support/telemetry.js'
import { OpenDevices } from '../support/ws.js'

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'))

/** docs/protocol.md, docs/twins.md: the answers a device may get to a frame, and the codes a hub closes a bad session with. */
const NAK_REASONS = new Set(['invalid', 'rate', 'seq', 'too_many'])
const TWIN_REFUSALS = new Set(['invalid', 'too_large', 'rate'])
const ERR_CODES = new Set(['text', 'not_cbor', 'not_map', 'unknown_type', 'invalid', 'too_big'])
const CLOSE_CODES = new Set([1003, 1007, 1008, 1009])

/** Why `frame` is not an answer the contract allows a device to get to a frame it sent, or undefined. */
function unexpected(frame: HubFrame): string | undefined {
  switch (frame.t) {
    case 'ack':
      return undefined
    case 'nak':
      return NAK_REASONS.has(frame.e) ? undefined : `nak ${frame.e}`
    case 'err':
      return ERR_CODES.has(frame.e) ? undefined : `err ${frame.e}`
    case 'twa':
      return frame.e === undefined || TWIN_REFUSALS.has(frame.e) ? undefined : `twa ${frame.e}`
    default:
      return `a ${frame.t} frame`
  }
}

/** The dead-letter entries of `device` in the hub's file. */
function deadLetters(hub: TestHub, device: string): Array<{ device: string; reason: string; line?: string }> {
  let text: string
  try {
    text = readFileSync(join(hub.dataDir, 'influx-dead-letter.jsonl'), 'utf8')
  } catch {
    return []
  }
  // the last line may still be being written: only whole lines count
  return text
    .split('\n')
    .slice(0, -1)
    .map((line) => JSON.parse(line) as { device: string; reason: string; line?: string })
    .filter((entry) => entry.device === device)
}

describe('hostile device frames against a hub with InfluxDB', () => {
  let influx: Influxd
  let hub: TestHub
  let witness: Witness
  const db = 'fleetgate_hostile'
  const devices = new OpenDevices()

  beforeAll(async () => {
    influx = await startInfluxd()
    // A rate the fuzzer does not exhaust at once: it is after the parsing paths, not the bucket.
    hub = await startTestHub({ FLEETGATE_INFLUX_URL: influx.url, FLEETGATE_INFLUX_DB: db, FLEETGATE_DEVICE_RATE: '1000' })
    witness = await Witness.connect(hub.wsUrl, await hub.provision('witness'))
  })
  afterEach(async () => {
    devices.closeAll()
    await assertHubServes(hub.base, witness)
    await witness.assertLanded(influx, db)
  })
  afterAll(async () => {
    witness?.close()
    await hub?.stop()
    await influx?.destroy()
  })

  // First, so that its devices' dead-letter budget window starts with it (other tests refuse points too).
  it('keeps one device\'s refused points within its dead-letter budget, so another\'s stay visible', async () => {
    const noisy = await devices.connect(hub.wsUrl, await hub.provision('dl-noisy'))
    const quiet = await devices.connect(hub.wsUrl, await hub.provision('dl-quiet'))
    const ts = 1_700_000_000_000
    noisy.send({ t: 'tm', s: 1, ts, m: { dlkind: 1.5 } })
    await noisy.untilAck(1)
    await eventually(() => countPoints(influx, db, 'dlkind'), (n) => n === 1)
    // 150 readings InfluxDB refuses for good (a field type conflict), then one of another device
    noisy.send({ t: 'tb', s: 2, r: Array.from({ length: 150 }, (_, i) => ({ ts: ts + 1 + i, m: { dlkind: `text ${i}` } })) })
    await noisy.untilAck(2)
    await until(() => deadLetters(hub, 'dl-noisy').length === 100, '100 dead letters of dl-noisy')
    quiet.send({ t: 'tm', s: 1, ts: ts + 500, m: { dlkind: 'text' } })
    await quiet.untilAck(1)
    await until(() => deadLetters(hub, 'dl-quiet').length === 1, 'the dead letter of dl-quiet')
    expect(deadLetters(hub, 'dl-quiet')).toMatchObject([{ device: 'dl-quiet', reason: 'influx_refused', line: `telemetry,device=dl-quiet dlkind="text" ${ts + 500}` }])
    expect(deadLetters(hub, 'dl-noisy')).toHaveLength(100)
    expect(await hubMetric(hub.base, 'fleetgate_influx_dead_letters_lost_total{cause="device_budget"}')).toBe(50)
    expect(await hubMetric(hub.base, 'fleetgate_influx_dead_letters_total{reason="influx_refused"}')).toBe(151)
  })

  it('answers mutated and random frames only as the contract says, session after session', async () => {
    const seed = fuzzSeed('hub fuzz', 0x0f1e_e7ed)
    const random = seededRandom(seed)
    const fuzzer = new FrameFuzzer(random)
    const attacker = await hub.provision('fuzz-attacker')
    const tally = new Map<string, number>()
    const count = (what: string): void => void tally.set(what, (tally.get(what) ?? 0) + 1)
    const wrong: string[] = []
    let ws = await devices.connect(hub.wsUrl, attacker)
    const text = (): string => '{"t":"tm"}'
    const oversize = (): Uint8Array => Uint8Array.from({ length: 65_537 + Math.floor(random() * 60_000) }, () => 0xa1)
    const garbage = (): Uint8Array => Uint8Array.from([0xff])
    const invalid = (seq: number): Uint8Array => encodeFrame({ t: 'tm', s: seq, m: {} })
    const invalidReport = (): Uint8Array => encodeFrame({ t: 'twr', id: 'tour', p: { $set: 1 } })
    const open = (): boolean => ws.ws.readyState === ws.ws.OPEN
    let s = 0
    let sent = 0
    let round = 0
    const stopAt = Date.now() + 6000
    while (sent < 2000 && Date.now() < stopAt) {
      // A few frames, then the probe: most hostile frames end the session, and the probe must get through now and then.
      // The first rounds tour each kind of answer, so that a short run (a slow machine) still sees them all.
      const tour = [text, oversize, garbage, invalid, invalidReport][round++]
      for (let i = tour === undefined ? 1 + Math.floor(random() * 3) : 1; i > 0 && open(); i--, sent++) {
        const roll = random()
        if (tour !== undefined) ws.sendRaw(tour(++s))
        else if (roll < 0.01) ws.sendRaw(text())
        else if (roll < 0.02) ws.sendRaw(oversize())
        else ws.sendRaw(fuzzer.next(++s))
      }
      // A valid probe last: once it is answered (or the session closed), every frame before it was.
      const probe = ++s
      if (open()) ws.send({ t: 'tm', s: probe, ts: 1_700_000_000_000 + probe, m: { probe } })
      await answeredOrClosed(ws, () => ws.frames.some((f) => (f.t === 'ack' && f.s >= probe) || (f.t === 'nak' && f.s === probe)))
      let seqNaked = false
      for (const frame of ws.frames.splice(0)) {
        const problem = unexpected(frame)
        if (problem !== undefined) wrong.push(`${problem} (seed ${seed}, frame ${sent})`)
        count(frame.t === 'nak' ? `nak ${frame.e}` : frame.t === 'err' ? `err ${frame.e}` : frame.t === 'twa' ? `twa ${frame.e ?? 'v'}` : frame.t)
        seqNaked ||= frame.t === 'nak' && frame.s === probe && frame.e === 'seq'
      }
      const closed = ws.ws.readyState === ws.ws.CLOSED ? (await ws.closed).code : undefined
      if (closed !== undefined) {
        count(`close ${closed}`)
        if (!CLOSE_CODES.has(closed)) wrong.push(`close ${closed} (seed ${seed}, frame ${sent})`)
      }
      // A mutated seq may have gone past the probe's: a new session starts the seqs again, so the fuzz keeps reaching ingest.
      if (closed !== undefined || seqNaked) {
        ws.close()
        ws = await devices.connect(hub.wsUrl, attacker)
        s = 0
      }
      // The witness is served all along, not only at the end (afterEach checks again).
      if (round % 5 === 0) await witness.ping()
    }
    console.log(`hub fuzz: ${sent} frames, answers ${JSON.stringify(Object.fromEntries([...tally].sort()))}`)
    expect(wrong).toStrictEqual([])
    // The run reached each kind of answer: acks, naks for bad fields, and closes for garbage.
    for (const answer of ['ack', 'nak invalid', 'err not_cbor', 'err text', 'err too_big', 'close 1007', 'close 1003', 'close 1009', 'twa invalid']) {
      expect(tally.get(answer) ?? 0, answer).toBeGreaterThan(0)
    }
  })

  it('stamps 20 readings without ts sent in one burst apart: 20 acks, 20 InfluxDB points', async () => {
    const device = await hub.provision('no-ts-burst')
    const ws = await devices.connect(hub.wsUrl, device)
    for (let s = 1; s <= 20; s++) ws.send({ t: 'tm', s, m: { n: s } })
    const answers = await ws.untilAck(20)
    expect(answers.filter((frame) => frame.t !== 'ack')).toStrictEqual([])
    const points = await eventually(
      () => rows(influx, `SELECT "n" FROM "telemetry" WHERE "device" = 'no-ts-burst' ORDER BY time ASC`, db),
      (found) => found.length >= 20,
      5000,
    ).catch(() => rows(influx, `SELECT "n" FROM "telemetry" WHERE "device" = 'no-ts-burst' ORDER BY time ASC`, db))
    expect(points.map((point) => point['n'])).toStrictEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    const times = points.map((point) => point['time'] as number)
    expect(times.every((time, i) => i === 0 || time > (times[i - 1] as number))).toBe(true)

    // a new session of the same device goes on after its last stamp, however soon it comes
    ws.close()
    const again = await devices.connect(hub.wsUrl, device)
    again.send({ t: 'tm', s: 1, m: { n: 21 } })
    await again.untilAck(1)
    expect(await eventually(() => countPoints(influx, db, 'n', `"device" = 'no-ts-burst'`), (n) => n === 21)).toBe(21)
  })

  it('naks a ts InfluxDB cannot store as invalid before any ack, and lands the latest one it can', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('far-future'))
    ws.send({ t: 'tm', s: 1, ts: MAX_TS_MS + 1, m: { edge: 1 } })
    expect(await ws.next()).toStrictEqual({ t: 'nak', s: 1, e: 'invalid' })
    ws.send({ t: 'tb', s: 2, r: [{ ts: 1_700_000_000_000, m: { edge: 2 } }, { ts: 2 ** 53 - 1, m: { edge: 2 } }] })
    expect(await ws.next()).toStrictEqual({ t: 'nak', s: 2, e: 'invalid' })
    ws.send({ t: 'tm', s: 3, ts: MAX_TS_MS, m: { edge: 3 } })
    expect(await ws.next()).toStrictEqual({ t: 'ack', s: 3 })
    const landed = await eventually(
      () => rows(influx, `SELECT "edge" FROM "telemetry" WHERE "device" = 'far-future'`, db),
      (found) => found.length === 1,
    )
    expect(landed).toStrictEqual([{ time: MAX_TS_MS, edge: 3 }])
    expect(deadLetters(hub, 'far-future')).toStrictEqual([])
  })

  it('takes indefinite-length text (RFC 8949 §3.2.3) like any text', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('chunked'))
    // {_ (_ "t"): (_ "t", "m"), "s": 1, "ts": 1700000000000, "m": {(_ "te", "mp"): 21.5}}
    ws.sendRaw(hex('bf 7f 6174 ff 7f 6174 616d ff 6173 01 627473 1b0000018bcfe56800 616d a1 7f 627465 626d70 ff f94d60 ff'))
    expect(await ws.next()).toStrictEqual({ t: 'ack', s: 1 })
    expect(await eventually(() => rows(influx, `SELECT "temp" FROM "telemetry" WHERE "device" = 'chunked'`, db), (found) => found.length === 1)).toStrictEqual([
      { time: 1_700_000_000_000, temp: 21.5 },
    ])
  })

  it('counts device-chosen close codes under a fixed set of labels', async () => {
    const device = await hub.provision('closer')
    const before = await hubMetric(hub.base, 'fleetgate_session_closes_total{code="other_4xxx"}')
    // uWS itself reports a code outside 1000..1011 and 4000..4999 as 1006
    for (const code of [3000, 3999, 4100, 4101, 4102, 4999, 4003]) {
      const ws = await devices.connect(hub.wsUrl, device)
      ws.ws.close(code)
      await ws.closed
    }
    const text = await (await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()
    const labels = [...text.matchAll(/^fleetgate_session_closes_total\{code="([^"]+)"\}/gm)].map((match) => match[1])
    const allowed = /^(1000|1001|1003|1005|1006|1007|1008|1009|1011|4001|4003|other_[1-4]xxx|other)$/
    expect(labels.filter((label) => !allowed.test(label ?? ''))).toStrictEqual([])
    expect(await hubMetric(hub.base, 'fleetgate_session_closes_total{code="other_4xxx"}')).toBe(before + 4)
  })
})

describe('a flood of command results', () => {
  let hub: TestHub
  let witness: Witness
  const devices = new OpenDevices()
  // A clock that stands still: no token comes back during the test, so every count is exact.
  const frozenMs = Date.now()

  beforeAll(async () => {
    hub = await startTestHub({}, undefined, { clock: { ...realClock, now: () => frozenMs } })
    witness = await Witness.connect(hub.wsUrl, await hub.provision('res-witness'))
  })
  afterAll(async () => {
    devices.closeAll()
    witness?.close()
    await hub?.stop()
  })

  it('drops results over the session\'s budget (the command times out), and closes a sustained flood with 1008', async () => {
    const ws = await devices.connect(hub.wsUrl, await hub.provision('res-flood'))
    const created = await hub.api('POST', '/api/v1/devices/res-flood/commands', { name: 'reboot', wait: false, timeoutMs: 1000 })
    expect(created.status).toBe(202)
    const cmd = (await ws.next()) as CommandFrame
    expect(cmd).toMatchObject({ t: 'cmd', n: 'reboot' })
    const stray = (i: number): void => ws.send({ t: 'res', id: `stray-${i}`, ok: true, r: { pad: 'x'.repeat(1000) } })
    // FLEETGATE_DEVICE_RATE 100: a burst of 200 results is taken (and ignored: no such command), 100 more are dropped
    for (let i = 0; i < 300; i++) stray(i)
    // the real result comes too late: the budget is spent, so it is dropped and the command times out
    ws.send({ t: 'res', id: cmd.id, ok: true })
    const record = await eventually(
      async () => (await hub.api('GET', `/api/v1/devices/res-flood/commands/${cmd.id}`)).body as { status: string },
      (body) => body.status !== 'sent',
      5000,
    )
    expect(record.status).toBe('timeout')
    expect(await hubMetric(hub.base, 'fleetgate_command_results_ignored_total')).toBe(200)
    expect(await hubMetric(hub.base, 'fleetgate_command_results_dropped_total')).toBe(101)
    // 500 refusals (5 s worth at 100/s) are a burst; the 501st is abuse
    for (let i = 300; i < 699; i++) stray(i)
    await eventually(() => hubMetric(hub.base, 'fleetgate_command_results_dropped_total'), (dropped) => dropped === 500)
    expect(ws.ws.readyState).toBe(ws.ws.OPEN)
    stray(699)
    expect((await ws.closed).code).toBe(1008)
    expect(await hubMetric(hub.base, 'fleetgate_command_results_dropped_total')).toBe(501)
    expect(ws.frames.filter((frame) => frame.t !== 'cmd')).toStrictEqual([])
    await assertHubServes(hub.base, witness)
  })
})
