// The telemetry query in the OpenAPI document (handler: ../telemetry.ts).
import { MAX_METRICS } from '@fleetgate/device-sdk/wire'
import { DEFAULT_LIMIT, MAX_LIMIT } from '../telemetry.js'
import { errorAnswer } from './components.js'
import { answer, jsonAnswer, needs, pathParameter, queryParameter, schema, TOKEN_ANSWERS, type Paths } from './shapes.js'

const time = { type: 'string', format: 'date-time' }

/** `/api/v1/devices/{id}/telemetry`. */
export const TELEMETRY_PATHS: Paths = {
  '/api/v1/devices/{id}/telemetry': {
    get: {
      operationId: 'queryTelemetry',
      summary: 'A device\'s readings over a span of time',
      description: 'Each point is one reading time (`ts`) with its metrics, oldest first.',
      tags: ['telemetry'],
      security: needs('reader'),
      parameters: [
        pathParameter('id', 'The device id.'),
        queryParameter('from', 'Start, ISO 8601 with a zone; default one hour before `to`.', time),
        queryParameter('to', 'End, ISO 8601 with a zone; default now.', time),
        queryParameter('metrics', `Up to ${MAX_METRICS} metric names, comma-separated; default every metric.`, { type: 'string' }),
        queryParameter('limit', 'At most this many points.', { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT }),
      ],
      responses: {
        '200': jsonAnswer('The points.', schema('TelemetryPoints')),
        '400': answer('Invalid'),
        '404': answer('NotFound'),
        ...TOKEN_ANSWERS,
        '503': errorAnswer('No store to read from: InfluxDB is off or did not answer.', ['not_ready']),
      },
    },
  },
}
