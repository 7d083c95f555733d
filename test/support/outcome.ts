import type { SdkError } from '@fleetgate/device-sdk'

/** A promise's outcome, readable synchronously: how it settled, its error, its value. */
export interface Outcome<T = void> {
  state: 'pending' | 'resolved' | 'rejected'
  error?: SdkError
  value?: T
}

/** Follows a promise of the SDK so a test can assert how it ended (or that it has not yet). */
export function track<T>(promise: Promise<T>): Outcome<T> {
  const outcome: Outcome<T> = { state: 'pending' }
  promise.then(
    (value) => Object.assign(outcome, { state: 'resolved', value }),
    (error: SdkError) => Object.assign(outcome, { state: 'rejected', error }),
  )
  return outcome
}
