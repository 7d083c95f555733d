// Cancellation of the client's waits through AbortSignal (STYLE: Async and time).
import { SdkError } from './errors.js'

/** Options of a DeviceClient call that waits. */
export interface WaitOptions {
  /**
   * Ends the wait: the call rejects with SDK_ERR_ABORTED (the signal's reason is its `cause`). A
   * signal already aborted starts nothing. Aborting later ends the wait only, not what the call
   * started: a queued reading is still delivered, the client goes on connecting until close(), a
   * close goes on closing. Default: none, the call waits until it settles.
   */
  signal?: AbortSignal
}

/**
 * Runs `start` unless `signal` is already aborted, and rejects with SDK_ERR_ABORTED when the signal
 * aborts before `start`'s promise settles; `cancel` then forgets the caller's wait. A later
 * rejection of `start`'s promise is handled here, so it never goes unhandled.
 */
export function abortable<T>(signal: AbortSignal | undefined, what: string, start: () => Promise<T>, cancel?: () => void): Promise<T> {
  if (signal === undefined) return start()
  if (typeof signal !== 'object' || signal === null || typeof signal.addEventListener !== 'function' || typeof signal.aborted !== 'boolean') {
    return Promise.reject(new SdkError('SDK_ERR_INVALID_OPTION', `${what}: signal: expected an AbortSignal`))
  }
  if (signal.aborted) return Promise.reject(aborted(signal, what))
  let work: Promise<T>
  try {
    work = start()
  } catch (error) {
    return Promise.reject(error)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      cancel?.()
      reject(aborted(signal, what))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

function aborted(signal: AbortSignal, what: string): SdkError {
  return new SdkError('SDK_ERR_ABORTED', `${what} was aborted; it stopped waiting`, { cause: signal.reason })
}
