import { useEffect, useRef, useState, type Inputs } from 'preact/hooks'
import { decodeHubEvent, eventsUrl, type HubEvent, type HubEventType } from '../lib/events.js'
import { EventStream, type StreamState } from '../lib/sse.js'
import { useSession } from './context.js'

/** The current time in Unix ms, refreshed every `intervalMs` (default 1,000) so ages tick. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(Date.now())
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs)
    return () => clearInterval(timer)
  }, [intervalMs])
  return now
}

/** The live stream's state and why, for `LiveBadge`. */
export interface LiveState {
  readonly state: StreamState
  readonly detail: string
}

/**
 * Subscribes to the live event stream (docs/rest.md) while the component is mounted. `onEvent`
 * may change between renders; the stream is reopened only when `types` or `devices` change.
 */
export function useHubEvents(types: readonly HubEventType[], devices: readonly string[], onEvent: (event: HubEvent) => void): LiveState {
  const { api } = useSession()
  const handler = useRef(onEvent)
  handler.current = onEvent
  const [live, setLive] = useState<LiveState>({ state: 'connecting', detail: '' })
  const key = `${types.join(',')}|${devices.join(',')}`
  useEffect(() => {
    const stream = new EventStream({
      url: eventsUrl(types, devices),
      token: api.token,
      onEvent: (sse) => {
        const event = decodeHubEvent(sse)
        if (event !== undefined) handler.current(event)
      },
      onState: (state, detail) => setLive({ state, detail }),
    })
    return () => stream.close()
    // `key` stands for the two lists, which are new arrays on every render.
  }, [api, key])
  return live
}

/**
 * An effect that loads: `run` gets a signal that aborts when `deps` change or the component goes,
 * and an error is handed to `onError` unless the run was aborted.
 */
export function useAbortableEffect(run: (signal: AbortSignal) => Promise<void>, onError: (err: unknown) => void, deps: Inputs): void {
  useEffect(() => {
    const abort = new AbortController()
    run(abort.signal).catch((err: unknown) => {
      if (!abort.signal.aborted) onError(err)
    })
    return () => abort.abort()
  }, deps)
}

/** Runs `poll` every `intervalMs` while `active`, never two at once; stops on unmount. */
export function usePoll(active: boolean, intervalMs: number, poll: (signal: AbortSignal) => Promise<void>): void {
  const current = useRef(poll)
  current.current = poll
  useEffect(() => {
    if (!active) return
    const abort = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined
    const tick = async (): Promise<void> => {
      try {
        await current.current(abort.signal)
      } catch {
        // The poll shows its own errors; a failed round only waits for the next.
      }
      if (!abort.signal.aborted) timer = setTimeout(() => void tick(), intervalMs)
    }
    timer = setTimeout(() => void tick(), intervalMs)
    return () => {
      abort.abort()
      clearTimeout(timer)
    }
  }, [active, intervalMs])
}

/** Hands the device's live events to the sections that registered for them. */
export type EventBus = { readonly listeners: Set<(event: HubEvent) => void> }

/** Registers `handler` on `bus` while the component is mounted. */
export function useBus(bus: EventBus, handler: (event: HubEvent) => void): void {
  const current = useRef(handler)
  current.current = handler
  useEffect(() => {
    const listener = (event: HubEvent): void => current.current(event)
    bus.listeners.add(listener)
    return () => void bus.listeners.delete(listener)
  }, [bus])
}
