// `client.twin`: the device's side of its twin (docs/twins.md). The hub sends the whole desired
// document after every `hello` and after every change; this keeps the last one and says when it
// changed. Reports go through TwinReports (kept, merged, sent in order, answered by `twa`).
import type { WaitOptions } from './abort.js'
import { TypedEmitter } from './emitter.js'
import type { TwinDesiredFrame, TwinDocument } from './frames.js'
import type { TwinReports } from './twin-reports.js'

/** A desired document and its version, as the hub last sent it. */
export interface DesiredTwin {
  readonly desired: TwinDocument
  readonly version: number
}

/** Events of a DeviceTwin, with their listener arguments. */
export type DeviceTwinEvents = {
  /**
   * The desired document changed: the first one this client got, or one at another version than
   * the last (a `twd` repeating the version the client has, as after every reconnect, fires nothing).
   */
  desired: [DesiredTwin]
}

/**
 * The twin as a device sees it: the desired document from the hub, and report() for its own
 * reported state. Built by DeviceClient (`client.twin`).
 */
export class DeviceTwin extends TypedEmitter<DeviceTwinEvents> {
  readonly #reports: TwinReports
  #desired: TwinDocument = {}
  #version: number | undefined

  /** @param receive hands over the function the client calls with each `twd` frame. */
  constructor(reports: TwinReports, receive: (deliver: (frame: TwinDesiredFrame) => void) => void) {
    super()
    this.#reports = reports
    receive((frame) => this.#receive(frame))
  }

  /** The last desired document from the hub; `{}` before the first. Treat it as read-only. */
  get desired(): TwinDocument {
    return this.#desired
  }

  /** The version of `desired`; undefined until the hub sent one (right after the first `hello`). */
  get version(): number | undefined {
    return this.#version
  }

  /** The reported version of the hub's last answer to a report; undefined before the first. */
  get reportedVersion(): number | undefined {
    return this.#reports.reportedVersion
  }

  /** Reports made and not yet answered by the hub. */
  get pendingReports(): number {
    return this.#reports.pending
  }

  /**
   * Changes the device's reported state by a merge patch (RFC 7386: objects merge, `null` deletes
   * a key, anything else replaces). Resolves with the new reported version once the hub has
   * durably applied it (`twa`). Without a session the report waits, in the queue store, for the
   * next `hello`; reports waiting together are merged into as few patches as RFC 7386 allows and
   * are answered together. Rejects with SDK_ERR_INVALID_REPORT at once (the patch breaks the twin
   * rules; nothing is kept), SDK_ERR_QUEUE_FULL at once (10,000 reports wait already), SDK_ERR_REPORT_REFUSED when the hub refuses it (`reason`: `invalid`,
   * `too_large`, `rate`; nothing changed), SDK_ERR_CLOSED on close() (the store keeps it for the
   * next run), SDK_ERR_ABORTED when `options.signal` aborts first (the report still goes).
   */
  report(patch: TwinDocument, options: WaitOptions = {}): Promise<number> {
    return this.#reports.add(patch, options.signal)
  }

  #receive(frame: TwinDesiredFrame): void {
    if (frame.v === this.#version) return
    this.#version = frame.v
    this.#desired = frame.d
    this.emit('desired', { desired: frame.d, version: frame.v })
  }
}
