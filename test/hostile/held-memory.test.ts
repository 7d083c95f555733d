// While the hub holds its commits (here: the spool at its quota, InfluxDB away), what it keeps in
// memory for devices is bounded by the live sessions: a device that reconnects again and again,
// filling its window each time, does not pile up frames. (The device resends what was not acked.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hubMetric, Witness } from '../support/hostile.js'
import { startTestHub, type TestHub } from '../support/hub.js'
import { UNREACHABLE_URL } from '../support/ports.js'
import { eventually } from '../support/telemetry.js'
import { OpenDevices, type RawDevice } from '../support/ws.js'

/** The smallest quota the hub takes: 1 MiB. */
const QUOTA_BYTES = 1_048_576

describe('memory while commits are held', () => {
  let hub: TestHub
  let witness: Witness
  const devices = new OpenDevices()

  beforeAll(async () => {
    // An InfluxDB that is not there: nothing ships, so the spool fills and stays full.
    const nowhere = UNREACHABLE_URL
    hub = await startTestHub({ FLEETGATE_INFLUX_URL: nowhere, FLEETGATE_SPOOL_MAX_BYTES: String(QUOTA_BYTES) })
    witness = await Witness.connect(hub.wsUrl, await hub.provision('held-witness'))
  })
  afterAll(async () => {
    devices.closeAll()
    witness?.close()
    await hub?.stop()
  })

  it('holds at most a window of frames per live session, however often a device reconnects', async () => {
    // Fill the spool to its quota: frames of about 57 KB, each acked while the spool is below it.
    const filler = await devices.connect(hub.wsUrl, await hub.provision('filler'))
    const ts = 1_700_000_000_000
    for (let s = 1; (await hubMetric(hub.base, 'fleetgate_spool_bytes')) < QUOTA_BYTES; s++) {
      filler.send({ t: 'tb', s, r: Array.from({ length: 500 }, (_, i) => ({ ts: ts + s * 1000 + i, m: { pad: 'x'.repeat(90) } })) })
      await filler.untilAck(s)
    }
    // The witness's readings now wait too: its session stays, its acks do not come.
    witness.ws.send({ t: 'tm', s: 1_000_000, ts, m: { held: 1 } })
    await eventually(() => hubMetric(hub.base, 'fleetgate_ingest_pending_frames'), (frames) => frames === 1)

    const device = await hub.provision('churner')
    let ws: RawDevice | undefined
    for (let round = 1; round <= 6; round++) {
      // Half the reconnects replace a live session (closed 4001 by the hub), half follow a dropped connection.
      if (round % 2 === 0) ws?.close()
      const older = ws
      ws = await devices.connect(hub.wsUrl, device)
      if (older !== undefined && round % 2 === 1) expect((await older.closed).code).toBe(4001)
      // The device resends its whole window; one frame more is refused, which proves the hub has seen them all.
      for (let s = 1; s <= 64; s++) ws.send({ t: 'tm', s, ts: ts + s, m: { n: s } })
      ws.send({ t: 'tm', s: 65, ts: ts + 65, m: { n: 65 } })
      expect(await ws.next()).toStrictEqual({ t: 'nak', s: 65, e: 'too_many' })
      // One live window of the churner, the witness's reading: nothing of the sessions before.
      const pending = await eventually(() => hubMetric(hub.base, 'fleetgate_ingest_pending_frames'), (frames) => frames === 65, 5000).catch(() =>
        hubMetric(hub.base, 'fleetgate_ingest_pending_frames'),
      )
      expect(pending, `round ${round}`).toBe(65)
    }
    expect(filler.frames).toStrictEqual([])
    expect(witness.ws.ws.readyState).toBe(witness.ws.ws.OPEN)
  })
})
