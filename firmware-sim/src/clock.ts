// Time for the simulator: the SDK's Clock (now + timers), injectable so tests drive the schedule.
import type { Clock } from '@fleetgate/device-sdk'

export { realClock, type Clock } from '@fleetgate/device-sdk'

/** `base` with now() off by `skewMs` (a device whose clock is wrong); timers unchanged. */
export function skewedClock(base: Clock, skewMs: number): Clock {
  if (skewMs === 0) return base
  return {
    now: () => base.now() + skewMs,
    setTimeout: (fn, ms) => base.setTimeout(fn, ms),
    clearTimeout: (handle) => base.clearTimeout(handle),
  }
}

/** Resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms))
}
