import { twinDelta, type TwinView } from '@fleetgate/device-sdk/wire'
import type { TwinRecord } from '../store/index.js'

export type { TwinView }

/** The twin of a device that never had a change: both sides `{}` at version 0. */
export function emptyTwin(device: string): TwinRecord {
  return { device, desired: {}, desiredVersion: 0, reported: {}, reportedVersion: 0 }
}

/** The operator's view of a stored twin. */
export function twinView(twin: TwinRecord): TwinView {
  const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString())
  const desiredAt = iso(twin.desiredAt)
  const reportedAt = iso(twin.reportedAt)
  return {
    device: twin.device,
    desired: twin.desired,
    desiredVersion: twin.desiredVersion,
    reported: twin.reported,
    reportedVersion: twin.reportedVersion,
    delta: twinDelta(twin.desired, twin.reported),
    ...(desiredAt === undefined ? {} : { desiredAt }),
    ...(reportedAt === undefined ? {} : { reportedAt }),
  }
}
