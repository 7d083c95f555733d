import { connect, type IClientOptions, type IClientSubscribeOptions, type MqttClient } from 'mqtt'
import { track, untrack } from './service.js'

/** One message a test client received. */
export interface Received {
  readonly topic: string
  readonly payload: Buffer
  readonly qos: number
  readonly retain: boolean
}

/** An mqtt.js client for tests: tracked (ended after the test file at the latest), with what it received. */
export interface TestClient {
  readonly client: MqttClient
  /** Every message received, in order. */
  readonly received: Received[]
  /** Whether the broker's first CONNACK said a session was present. */
  readonly sessionPresent: boolean
  /** Messages received on `topic`. */
  on(topic: string): Received[]
  /** SUBSCRIBE and its granted QoS per filter (128 = refused). */
  subscribe(filters: string | string[], options?: IClientSubscribeOptions): Promise<number[]>
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>
  /** Ends the client at once (no DISCONNECT unless `graceful`). Idempotent. */
  stop(graceful?: boolean): Promise<void>
}

/**
 * Connects an mqtt.js client and resolves after CONNACK 0, or rejects with mqtt.js's error (its
 * `code` is the CONNACK return code). No reconnects unless `options.reconnectPeriod` says so.
 */
export async function connectMqtt(url: string, options: IClientOptions = {}): Promise<TestClient> {
  const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  const received: Received[] = []
  client.on('message', (topic, payload, packet) => {
    received.push({ topic, payload, qos: packet.qos, retain: packet.retain })
  })
  let stopped = false
  let sessionPresent = false
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  const testClient: TestClient = {
    client,
    received,
    get sessionPresent() {
      return sessionPresent
    },
    on: (topic) => received.filter((m) => m.topic === topic),
    async subscribe(filters, subscribeOptions = { qos: 1 }) {
      return await new Promise<number[]>((resolve, reject) => {
        client.subscribe(filters, subscribeOptions, (err, _grants, suback) => {
          // mqtt.js reports a refused filter (0x80) as an error; the SUBACK still says which.
          if (suback !== undefined) resolve(suback.granted.map((g: unknown) => (typeof g === 'number' ? g : Number.NaN)))
          else reject(err ?? new Error('subscribe: no SUBACK'))
        })
      })
    },
    closed,
    async stop(graceful = false) {
      if (stopped) return
      stopped = true
      untrack(testClient)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000)
        client.end(!graceful, {}, () => {
          clearTimeout(timer)
          resolve()
        })
      })
    },
  }
  track(testClient)
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', (connack) => {
        sessionPresent = connack.sessionPresent
        resolve()
      })
      client.once('error', reject)
      client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)))
    })
  } catch (err) {
    await testClient.stop()
    throw err
  }
  return testClient
}
