import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generate, type Packet, type QoS } from 'mqtt-packet'
import { pick, type Random } from '@fleetgate/firmware-sim'
import { assertHubServes, fuzzSeed, hubMetrics, seededRandom, Witness } from '../support/hostile.js'
import { startTestHub, tempDir, writeTokensFile, type TestHub } from '../support/hub.js'
import { connectMqtt, type TestClient } from '../support/mqtt-client.js'
import { RawMqtt } from '../support/mqtt-raw.js'
import { eventually } from '../support/telemetry.js'

/** The run's seed: `FLEETGATE_FUZZ_SEED` replays a failure or explores; printed either way. */
const SEED = fuzzSeed('mqtt fuzz', 0x6d717474)
const RUN_MS = 4000
const WORKERS = 6
const READER_TOKEN = 'fuzz-reader-token-0123456789'
const OPERATOR_TOKEN = 'fuzz-operator-token-0123456789'

const pickOf = <T>(random: Random, items: readonly T[]): T => items[pick(random, items.length)] as T
const bytes = (random: Random, max: number): Buffer => Buffer.from(Array.from({ length: 1 + pick(random, max) }, () => pick(random, 256)))
const text = (random: Random, max: number): string => bytes(random, max).toString('latin1')

/** Topics and filters a client might try: allowed, refused, malformed, deep, odd. */
function topic(random: Random, filter: boolean): string {
  const device = pickOf(random, ['fz-1', 'fz-2', 'nobody', 'a/b', '#', '+', ''])
  return pickOf(random, [
    `fleetgate/devices/${device}/commands`,
    `fleetgate/devices/${device}/telemetry`,
    `fleetgate/devices/${device}/status`,
    `fleetgate/devices/${device}/commands/c-1`,
    filter ? 'fleetgate/#' : 'fleetgate/x',
    filter ? '#' : 'x',
    filter ? '+/+/+' : 'a/b/c',
    '$SYS/broker/clients',
    'a/'.repeat(1 + pick(random, 150)),
    text(random, 40),
  ])
}

/** A command payload: valid JSON commands, broken JSON, or bytes. */
function payload(random: Random): Buffer {
  return pickOf(random, [
    () => Buffer.from(JSON.stringify({ name: 'reboot', params: { n: pick(random, 100) }, ttlMs: pick(random, 2) * 1000 })),
    () => Buffer.from(JSON.stringify({ name: text(random, 80), params: text(random, 200) })),
    () => Buffer.from('{"name": "reboot"'),
    () => Buffer.from('['.repeat(1 + pick(random, 200))),
    () => bytes(random, 300),
  ])()
}

/** One well-formed packet of any type a client may send (and a few it may not). */
function packet(random: Random): Packet {
  const messageId = 1 + pick(random, 65_535)
  const qos = pick(random, 3) as QoS
  switch (pick(random, 9)) {
    case 0:
      return {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: pickOf(random, [3, 4, 4, 4]),
        clean: pick(random, 2) === 0,
        clientId: text(random, 30),
        keepalive: pick(random, 3),
        username: 'fuzz',
        password: Buffer.from(pickOf(random, [READER_TOKEN, OPERATOR_TOKEN, text(random, 40)])),
        ...(pick(random, 3) === 0 ? { will: { topic: topic(random, false), payload: payload(random), qos, retain: pick(random, 2) === 0 } } : {}),
      }
    case 1:
      return { cmd: 'subscribe', messageId, subscriptions: Array.from({ length: 1 + pick(random, 4) }, () => ({ topic: topic(random, true), qos })) }
    case 2:
      return { cmd: 'unsubscribe', messageId, unsubscriptions: [topic(random, true)] }
    case 3:
    case 4:
      return { cmd: 'publish', topic: topic(random, false), payload: payload(random), qos, messageId, retain: pick(random, 4) === 0, dup: pick(random, 2) === 0 }
    case 5:
      return { cmd: pickOf(random, ['puback', 'pubrec', 'pubcomp'] as const), messageId }
    case 6:
      return { cmd: 'pubrel', messageId }
    case 7:
      return { cmd: 'pingreq' }
    default:
      return { cmd: 'disconnect' }
  }
}

/** A packet's bytes, as they are or mutated: bytes flipped, cut, repeated, spliced, or its length rewritten. */
function mutate(random: Random, good: Buffer): Buffer {
  const out = Buffer.from(good)
  switch (pick(random, 6)) {
    case 0:
      return out
    case 1:
      for (let n = 1 + pick(random, 4); n > 0; n--) out[pick(random, out.length)] = pick(random, 256)
      return out
    case 2:
      return out.subarray(0, pick(random, out.length))
    case 3:
      return Buffer.concat([out, out.subarray(pick(random, out.length))])
    case 4: {
      const at = pick(random, out.length)
      return Buffer.concat([out.subarray(0, at), bytes(random, 16), out.subarray(at)])
    }
    default:
      // The remaining length, whatever it was, replaced by 1 to 4 random bytes.
      return Buffer.concat([out.subarray(0, 1), bytes(random, 4), out.subarray(2)])
  }
}

/** What the run did, printed with the seed. */
interface Tally {
  connections: number
  authenticated: number
  packets: number
  closedByHub: number
}

/** One fuzz connection: a valid session (reader or operator) or none, then a few packets, random or mutated. */
async function fuzzConnection(port: number, random: Random, tally: Tally): Promise<void> {
  const session = pick(random, 3)
  let raw: RawMqtt
  if (session === 0) {
    raw = await RawMqtt.open(port)
  } else {
    raw = await RawMqtt.session(port, session === 1 ? READER_TOKEN : OPERATOR_TOKEN, `fuzz-${tally.connections}`)
    tally.authenticated++
  }
  tally.connections++
  for (let n = 1 + pick(random, 8); n > 0 && !raw.isClosed; n--) {
    raw.sendRaw(pick(random, 5) === 0 ? bytes(random, 64) : mutate(random, generate(packet(random))))
    tally.packets++
    if (pick(random, 3) === 0) await new Promise((resolve) => setTimeout(resolve, pick(random, 20)))
  }
  await Promise.race([raw.closed, new Promise((resolve) => setTimeout(resolve, pick(random, 100)))])
  if (raw.isClosed) tally.closedByHub++
  raw.destroy()
}

const FIGURES = [
  'fleetgate_mqtt_clients',
  'fleetgate_mqtt_unauthenticated_connections',
  'fleetgate_mqtt_pending_publishes',
  'fleetgate_mqtt_backlog_bytes',
] as const

/** Issue 10: random and mutated MQTT packets, before and after CONNECT, never cost the hub or anyone else. */
describe('MQTT packet fuzzing', () => {
  let hub: TestHub
  let witness: Witness
  let good: TestClient
  const dir = tempDir()

  beforeAll(async () => {
    const tokens = writeTokensFile(dir.path, {
      fuzzReader: { scope: 'reader', token: READER_TOKEN },
      fuzzOperator: { scope: 'operator', token: OPERATOR_TOKEN },
    })
    // A short CONNECT deadline, so the junk connections of the run end soon after it.
    hub = await startTestHub({ FLEETGATE_MQTT_PORT: '0', FLEETGATE_TOKENS_FILE: tokens, FLEETGATE_MQTT_CONNECT_SEC: '1' })
    witness = await Witness.connect(hub.wsUrl, await hub.provision('witness'))
    good = await connectMqtt(`mqtt://127.0.0.1:${hub.hub.ports.mqtt}`, { username: 'good', password: READER_TOKEN })
    await good.subscribe('fleetgate/devices/witness/telemetry', { qos: 1 })
  })
  afterAll(async () => {
    witness?.close()
    await good?.stop()
    await hub?.stop()
    dir.cleanup()
  })

  it(`leaves the hub serving, the witness acked and the subscriber fed (seed ${SEED})`, async () => {
    const port = hub.hub.ports.mqtt as number
    const baseline = await hubMetrics(hub.base, FIGURES)
    expect(baseline).toEqual({
      'fleetgate_mqtt_clients': 1,
      'fleetgate_mqtt_unauthenticated_connections': 0,
      'fleetgate_mqtt_pending_publishes': 0,
      'fleetgate_mqtt_backlog_bytes': 0,
    })

    const tally: Tally = { connections: 0, authenticated: 0, packets: 0, closedByHub: 0 }
    const deadline = Date.now() + RUN_MS
    const fuzzers = Array.from({ length: WORKERS }, async (_, worker) => {
      // Each worker its own stream, so one worker's draws never shift another's.
      const random = seededRandom((SEED ^ Math.imul(worker + 1, 0x9e3779b9)) >>> 0)
      while (Date.now() < deadline) await fuzzConnection(port, random, tally)
    })
    // The witness is served all along, not only once the run is over.
    const witnessing = (async () => {
      while (Date.now() < deadline) {
        await witness.ping()
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    })()
    await Promise.all([...fuzzers, witnessing])
    console.log(`mqtt fuzz: seed ${SEED}: ${JSON.stringify(tally)}`)
    expect(tally.connections).toBeGreaterThan(0)

    const settled = await eventually(() => hubMetrics(hub.base, FIGURES), (f) => JSON.stringify(f) === JSON.stringify(baseline), 10_000)
    expect(settled, `seed ${SEED}`).toEqual(baseline)
    await assertHubServes(hub.base, witness)
    // Every acked reading of the witness reached the subscriber that stayed.
    await eventually(() => good.on('fleetgate/devices/witness/telemetry').length, (n) => n >= witness.acked.length, 5000)
    const seen = good.on('fleetgate/devices/witness/telemetry').map((m) => (JSON.parse(m.payload.toString()) as { readings: Array<{ ts: number }> }).readings[0]?.ts)
    expect(new Set(seen), `seed ${SEED}`).toEqual(new Set(witness.acked))
    expect(good.client.connected).toBe(true)
  }, 60_000)
})
