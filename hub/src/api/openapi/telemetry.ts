// The telemetry query and the live event stream in the OpenAPI document (handlers: ../telemetry.ts, ../events.ts).
import { MAX_METRICS } from '@fleetgate/device-sdk/wire'
import { AGGREGATE_FNS } from '../../telemetry/index.js'
import { EVENT_STREAMS_DEFAULTS, EVENT_TYPES } from '../../events/index.js'
import { MAX_STREAM_DEVICES } from '../events.js'
import { DEFAULT_LIMIT, MAX_LIMIT } from '../telemetry.js'
import { errorAnswer } from './components.js'
import { answer, jsonAnswer, needs, pathParameter, queryParameter, schema, TOKEN_ANSWERS, type Paths } from './shapes.js'

const time = { type: 'string', format: 'date-time' }

/** `/api/v1/devices/{id}/telemetry` and `/api/v1/events`. */
export const TELEMETRY_PATHS: Paths = {
  '/api/v1/devices/{id}/telemetry': {
    get: {
      operationId: 'queryTelemetry',
      summary: 'A device\'s readings over a span of time, raw or per interval',
      description:
        'From InfluxDB when one is configured, else from the embedded history, with the same answer. Raw: each point is one reading time (`ts`) and tag set with its metrics, oldest first. ' +
        'With `every`: one point per interval aligned to the Unix epoch (`ts` its start), each numeric metric reduced by `fn`, others by `last`; intervals without a value are left out.',
      tags: ['telemetry'],
      security: needs('reader'),
      parameters: [
        pathParameter('id', 'The device id.'),
        queryParameter('from', 'Start, ISO 8601 with a zone; default one hour before `to`.', time),
        queryParameter('to', 'End, ISO 8601 with a zone; default now.', time),
        queryParameter('metrics', `Up to ${MAX_METRICS} metric names, comma-separated; default every metric.`, { type: 'string' }),
        queryParameter('limit', 'At most this many points (raw points, or intervals).', { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT }),
        queryParameter('every', 'An interval, 1s to 30d: a whole number and one of s, m, h, d (10s, 5m, 1h); one point per interval.', { type: 'string', pattern: '^[0-9]{1,9}[smhd]$' }),
        queryParameter('fn', 'How each numeric metric is reduced per interval; only with `every`.', { enum: [...AGGREGATE_FNS], default: 'mean' }),
      ],
      responses: {
        '200': jsonAnswer('The points.', schema('TelemetryPoints')),
        '400': answer('Invalid'),
        '404': answer('NotFound'),
        ...TOKEN_ANSWERS,
        '503': errorAnswer('No store to read from: no InfluxDB and FLEETGATE_HISTORY=off, or InfluxDB did not answer; or the storage does not answer now.', ['not_ready']),
      },
    },
  },
  '/api/v1/events': {
    get: {
      operationId: 'events',
      summary: 'Live events, as Server-Sent Events, for as long as the client stays',
      description:
        'Each event is `event: <type>` and `data: <one line of JSON>`, the JSON being what MQTT carries for it (the command record at every change of its status). ' +
        `A comment line comes first and every ${EVENT_STREAMS_DEFAULTS.keepaliveMs / 1000} s. Without \`device\`, every device's status, command and twin events come, and no telemetry. ` +
        `A client that stops reading is cut once ${EVENT_STREAMS_DEFAULTS.maxBacklogBytes} bytes wait for it, or a backlog is kept ${EVENT_STREAMS_DEFAULTS.maxBacklogMs / 1000} s.`,
      tags: ['telemetry'],
      security: needs('reader'),
      parameters: [
        queryParameter('device', `A device id; repeats up to ${MAX_STREAM_DEVICES} times.`, { type: 'string' }),
        queryParameter('type', `A comma list of ${EVENT_TYPES.join(', ')}; default all.`, { type: 'string' }),
      ],
      responses: {
        '200': { description: 'The stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        '400': answer('Invalid'),
        '429': errorAnswer(
          `Too many streams: ${EVENT_STREAMS_DEFAULTS.maxStreamsPerToken} for this token, or ${EVENT_STREAMS_DEFAULTS.maxStreams} on the hub (the message says which), or too many failed tokens from this address.`,
          ['too_many_requests'],
        ),
        '503': errorAnswer('The hub is shutting down.', ['not_ready']),
        '401': answer('Unauthorized'),
        '403': answer('Forbidden'),
        '500': answer('Internal'),
      },
    },
  },
}
