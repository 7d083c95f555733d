// Live events (docs/rest.md `GET /events`): the in-process bus that concerns publish to, and the
// Server-Sent Event streams that read it.
export { EVENT_TYPES, EventBus, type EventSubscriber, type EventType, type HubEvents } from './event-bus.js'
export {
  EVENT_STREAMS_DEFAULTS,
  EventStreams,
  STREAM_HELLO,
  type Admission,
  type EventSink,
  type EventStreamCounters,
  type EventStreamsOptions,
  type EventStreamsTuning,
  type StreamFilter,
} from './event-streams.js'
