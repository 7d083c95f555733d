import type { SdkError } from '@fleetgate/device-sdk'

/** A promise's outcome, readable synchronously. */
export interface Outcome {
  state: 'pending' | 'resolved' | 'rejected'
  error?: SdkError
}

/** Follows a promise of the SDK so a test can assert how it ended (or that it has not yet). */
export function track(promise: Promise<void>): Outcome {
  const outcome: Outcome = { state: 'pending' }
  promise.then(
    () => (outcome.state = 'resolved'),
    (error: SdkError) => Object.assign(outcome, { state: 'rejected', error }),
  )
  return outcome
}
