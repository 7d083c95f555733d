import type { Reading } from '@fleetgate/device-sdk'
import type { HistoryBlock, SpoolEntry, SpoolStore } from '../store/index.js'
import type { History } from './history/index.js'

/** A frame that ingest accepted: what the spool keeps of it, and its readings (decoded once, at ingest). */
export interface AcceptedFrame extends SpoolEntry {
  readonly readings: readonly Reading[]
}

/**
 * Where ingest's group commit makes frames durable before their acks (docs/protocol.md): the spool
 * (InfluxDB's way there), the history (docs/telemetry.md), or both in one transaction.
 */
export interface CommitTarget {
  /** Whether commits must wait: the spool is at its quota (the history trims itself instead). */
  readonly full: boolean
  /** Whether it stores frames' bytes (the spool does); without, ingest need not copy them. */
  readonly keepsFrames: boolean
  /**
   * Makes `frames` durable in one transaction; resolves with the spool seq of the first (the
   * others follow it, one group: see SpoolStore.append), or undefined without a spool.
   */
  commit(frames: readonly AcceptedFrame[]): Promise<number | undefined>
}

/** A spool and its quota (`FLEETGATE_SPOOL_MAX_BYTES`). */
export interface SpoolPart {
  readonly store: SpoolStore
  readonly maxBytes: number
}

/**
 * The commit target for a spool, a history or both. With both, the history's blocks are written
 * inside the spool's transaction: an acked frame is in both or, after a crash before the commit,
 * in neither (and the device resends it).
 */
export function commitTarget(parts: { readonly spool: SpoolPart; readonly history?: History } | { readonly spool?: undefined; readonly history: History }): CommitTarget {
  const { spool, history } = parts
  const blocksOf = (frames: readonly AcceptedFrame[]): HistoryBlock[] | undefined => history?.blocks(frames)
  if (spool === undefined) {
    return {
      full: false,
      keepsFrames: false,
      async commit(frames) {
        await parts.history.append(blocksOf(frames) ?? [])
        return undefined
      },
    }
  }
  return {
    get full() {
      return spool.store.bytes >= spool.maxBytes
    },
    keepsFrames: true,
    async commit(frames) {
      const blocks = blocksOf(frames)
      const firstSeq = await spool.store.append(frames, blocks === undefined ? undefined : () => history?.writeAlongside(blocks))
      if (blocks !== undefined) history?.committed(blocks)
      return firstSeq
    },
  }
}
