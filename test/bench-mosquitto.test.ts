// The benchmark's Mosquitto peer is configured for lossless QoS 1 (test/bench/peer-ingest.ts,
// MOSQUITTO_LOSSLESS). With a queue bound per client, Mosquitto drops QoS 1 messages for a
// subscriber that lags, and the peer's zero-loss rate then depended on how far the subscriber fell
// behind (42,480/s in one run, 957/s in another). This checks, on a real mosquitto, that the
// configuration keeps every message for a subscriber that acknowledges nothing for a while.
import { afterAll, describe, expect, it } from 'vitest'
import { MOSQUITTO_LOSSLESS } from './bench/peer-ingest.js'
import { startMosquitto, type Mosquitto } from './support/mosquitto.js'
import { RawMqtt } from './support/mqtt-raw.js'
import { stopAll } from './support/service.js'

/** More than the test harness's old bound of 100,000 queued plus 1,000 in flight. */
const MESSAGES = 105_000
/** Publishes in flight from the publisher (a Fleetgate device's window is 64; any bound will do). */
const PUBLISH_WINDOW = 1000

/** A raw MQTT 3.1.1 session without credentials (mosquitto here allows anonymous clients). */
async function session(broker: Mosquitto, clientId: string): Promise<RawMqtt> {
  const raw = await RawMqtt.open(broker.port)
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 })
  const connack = await raw.next(5000)
  if (connack.cmd !== 'connack' || connack.returnCode !== 0) throw new Error(`${clientId}: expected CONNACK 0, got ${JSON.stringify(connack)}`)
  return raw
}

afterAll(stopAll)

describe('the bench Mosquitto peer', () => {
  it(
    'queues every QoS 1 message for a subscriber that acknowledges none until all are published',
    async () => {
      const broker = await startMosquitto(MOSQUITTO_LOSSLESS)
      const subscriber = await session(broker, 'lagging-subscriber')
      expect(await subscriber.subscribe('bench/#', 1)).toEqual([1])
      const publisher = await session(broker, 'publisher')
      let acked = 0
      for (let sent = 1; sent <= MESSAGES; sent++) {
        publisher.send({ cmd: 'publish', topic: 'bench/t', payload: Buffer.from(String(sent)), qos: 1, messageId: ((sent - 1) % 65_535) + 1, retain: false, dup: false })
        while (sent - acked >= PUBLISH_WINDOW || (sent === MESSAGES && acked < MESSAGES)) {
          const packet = await publisher.next(10_000)
          if (packet.cmd !== 'puback') throw new Error(`publisher: expected PUBACK, got ${packet.cmd}`)
          acked++
        }
      }
      // Only now does the subscriber acknowledge: until here mosquitto held all but the first
      // max_inflight_messages in its queue for this client.
      const seen = new Set<string>()
      while (seen.size < MESSAGES) {
        let packet
        try {
          packet = await subscriber.next(3000)
        } catch {
          break // silence: what has not come is not coming
        }
        if (packet.cmd !== 'publish') continue
        seen.add(packet.payload.toString())
        subscriber.send({ cmd: 'puback', messageId: packet.messageId ?? 0 })
      }
      expect({ delivered: seen.size, dropNotices: broker.output().split('\n').filter((line) => /dropp/i.test(line)) }).toEqual({ delivered: MESSAGES, dropNotices: [] })
      subscriber.destroy()
      publisher.destroy()
      await broker.stop()
    },
    180_000,
  )
})
