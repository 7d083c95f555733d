// The health probes and the document itself in the OpenAPI document (handlers: ../health.ts, ./index.ts).
import { errorOf } from './components.js'
import { jsonAnswer, needs, schema, TOKEN_ANSWERS, type Operation, type Paths } from './shapes.js'

const healthz = (operationId: string): Operation => ({
  operationId,
  summary: 'Whether the process serves',
  tags: ['health'],
  security: [],
  responses: { '200': jsonAnswer('It serves.', { type: 'object', required: ['status'], properties: { status: { const: 'ok' } } }) },
})

const readyz = (operationId: string): Operation => ({
  operationId,
  summary: 'Whether storage, the MQTT broker and InfluxDB are reachable',
  description: 'Each check is `ok`, `off` (disabled by configuration) or `unreachable`; why one fails is in the hub\'s log, never here.',
  tags: ['health'],
  security: [],
  responses: {
    '200': jsonAnswer('Ready.', schema('Readiness')),
    '503': jsonAnswer('Not ready: the message names what is not.', { allOf: [schema('Readiness'), errorOf(['not_ready'])] }),
  },
})

const metrics = (operationId: string): Operation => ({
  operationId,
  summary: 'The hub\'s figures, Prometheus text format',
  tags: ['health'],
  security: needs('reader'),
  responses: { '200': { description: 'Prometheus text exposition format 0.0.4.', content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } } }, ...TOKEN_ANSWERS },
})

/** The probes answer at the root and under `/api/v1`; the document under `/api/v1`. */
export const HEALTH_PATHS: Paths = {
  '/healthz': { get: healthz('healthz') },
  '/readyz': { get: readyz('readyz') },
  '/metrics': { get: metrics('metrics') },
  '/api/v1/healthz': { get: healthz('healthzUnderApi') },
  '/api/v1/readyz': { get: readyz('readyzUnderApi') },
  '/api/v1/metrics': { get: metrics('metricsUnderApi') },
  '/api/v1/openapi.json': {
    get: {
      operationId: 'openapi',
      summary: 'This document',
      description: 'Takes no token: it holds nothing that is not in the repository, and tools read it before they have one.',
      tags: ['health'],
      security: [],
      responses: { '200': jsonAnswer('The OpenAPI 3.1 document of this API.', { type: 'object' }) },
    },
  },
}
