import { expect } from 'vitest'
import type { Credentials, RawDevice } from './ws.js'
import { connectDevice } from './ws.js'

/**
 * A device that keeps one session open beside an attack and proves, after it, that the hub still
 * serves others: its session was not dropped and a new reading is acked. Every reading it had acked
 * is listed in `acked` (by `ts`), so a test with a store to read back can check none was lost.
 */
export class Witness {
  readonly device: Credentials
  readonly ws: RawDevice
  /** `ts` of every reading the hub acked, in order. */
  readonly acked: number[] = []
  #seq = 0
  #ts: number

  private constructor(device: Credentials, ws: RawDevice) {
    this.device = device
    this.ws = ws
    this.#ts = Date.now()
  }

  /** Connects `device` and takes its `hello`. */
  static async connect(wsUrl: string, device: Credentials): Promise<Witness> {
    const ws = await connectDevice(wsUrl, device)
    const hello = await ws.next()
    if (hello.t !== 'hello') throw new Error(`witness: expected hello, got ${JSON.stringify(hello)}`)
    return new Witness(device, ws)
  }

  /** Sends one reading and waits for its ack; fails the test when the hub answers anything else or nothing. */
  async ping(timeoutMs = 5000): Promise<void> {
    const s = ++this.#seq
    const ts = ++this.#ts
    this.ws.send({ t: 'tm', s, ts, m: { witness: s } })
    const frames = await this.ws.untilAck(s, timeoutMs)
    const refused = frames.filter((frame) => frame.t !== 'ack' && frame.t !== 'cmd')
    expect(refused, 'the witness device got something other than acks').toEqual([])
    this.acked.push(ts)
  }

  close(): void {
    this.ws.close()
  }
}

/**
 * After an attack: the hub answers `/healthz`, the witness's session is still open and gets a new
 * reading acked within `timeoutMs`.
 */
export async function assertHubServes(base: string, witness: Witness, timeoutMs = 5000): Promise<void> {
  const health = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(timeoutMs) })
  expect(health.status).toBe(200)
  expect(witness.ws.ws.readyState, 'the witness session was closed by the attack').toBe(witness.ws.ws.OPEN)
  await witness.ping(timeoutMs)
}
