// Worker handlers for the reference hub's devices: JSON text frames `{s, ts, m}` at a fixed offered
// rate. The reference hub has no flow control worth the name (it acks what it buffered), so its
// devices send what is due and count the acks; the socket's buffer is what piles up when it lags.
import WebSocket from 'ws'
import { clientOptions, metricsFor, pace, readingTime } from './load.js'
import type { Handlers } from './procs.js'

/** Parameters of `json.connect`. */
export interface JsonConnectParams {
  /** `ws://host:port/v1/connect`: `?device=<id>` is added per device. */
  readonly url: string
  readonly deviceIds: readonly string[]
  readonly t0: number
}

/** What `json.sample` and `json.stop` answer. */
export interface JsonSample {
  readonly at: number
  readonly sentReadings: number
  readonly ackedReadings: number
  /** Bytes the sockets hold that the reference hub has not read yet. */
  readonly bufferedBytes: number
  readonly open: number
  readonly closes: number
}

class JsonDevice {
  backlog = 0
  sending = false
  #nextSeq = 1
  readonly ws: WebSocket
  readonly #t0: number
  readonly #counts: { sent: number; acked: number; closes: number }

  constructor(ws: WebSocket, t0: number, counts: { sent: number; acked: number; closes: number }) {
    this.ws = ws
    this.#t0 = t0
    this.#counts = counts
    ws.on('message', () => counts.acked++)
    ws.on('close', () => counts.closes++)
  }

  pump(): void {
    if (!this.sending || this.ws.readyState !== WebSocket.OPEN) return
    while (this.backlog >= 1) {
      const s = this.#nextSeq++
      this.backlog--
      this.ws.send(JSON.stringify({ s, ts: readingTime(this.#t0, s, 1, 0), m: metricsFor(s) }))
      this.#counts.sent++
    }
  }
}

let devices: JsonDevice[] = []
let counts = { sent: 0, acked: 0, closes: 0 }
let stopPacing: () => void = () => undefined

function sample(): JsonSample {
  let bufferedBytes = 0
  let open = 0
  for (const d of devices) {
    bufferedBytes += d.ws.bufferedAmount
    if (d.ws.readyState === WebSocket.OPEN) open++
  }
  return { at: Date.now(), sentReadings: counts.sent, ackedReadings: counts.acked, bufferedBytes, open, closes: counts.closes }
}

export const jsonFleetHandlers: Handlers = {
  /** Connects one socket per device id. */
  async 'json.connect'(raw) {
    const params = raw as JsonConnectParams
    counts = { sent: 0, acked: 0, closes: 0 }
    devices = await Promise.all(
      params.deviceIds.map(
        (id) =>
          new Promise<JsonDevice>((resolve, reject) => {
            const ws = new WebSocket(`${params.url}?device=${encodeURIComponent(id)}`, clientOptions())
            ws.once('open', () => resolve(new JsonDevice(ws, params.t0, counts)))
            ws.once('error', reject)
          }),
      ),
    )
    return devices.length
  },

  /** Offers `ratePerSec` readings a second (one per frame) over the devices. */
  'json.start'(raw) {
    const { ratePerSec } = raw as { ratePerSec: number }
    for (const d of devices) d.sending = true
    stopPacing = pace(devices, ratePerSec)
    return true
  },

  'json.sample'() {
    return sample()
  },

  /** Stops offering and waits (up to `drainMs`) for the acks of what was sent. */
  async 'json.stop'(raw) {
    const drainMs = (raw as { drainMs?: number } | undefined)?.drainMs ?? 10_000
    stopPacing()
    for (const d of devices) d.backlog = 0
    const deadline = performance.now() + drainMs
    while (counts.acked < counts.sent && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    return sample()
  },

  'json.close'() {
    stopPacing()
    for (const d of devices) d.ws.terminate()
    devices = []
    return true
  },
}
