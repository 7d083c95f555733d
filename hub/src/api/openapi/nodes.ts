// The cluster's nodes in the OpenAPI document (handler: ../nodes.ts).
import { answer, jsonAnswer, needs, schema, TOKEN_ANSWERS, type Paths } from './shapes.js'

/** `GET /api/v1/nodes` (docs/cluster.md). */
export const NODE_PATHS: Paths = {
  '/api/v1/nodes': {
    get: {
      operationId: 'listNodes',
      summary: 'The hub nodes of the cluster',
      description:
        'In cluster mode, every node that beat within a day: those that stopped cleanly are gone, a crashed one stays with `alive: false` until it starts again. A hub that is not in a cluster answers 404.',
      tags: ['health'],
      security: needs('reader'),
      responses: {
        '200': jsonAnswer('The nodes, by id.', { type: 'object', required: ['items'], properties: { items: { type: 'array', items: schema('Node') } } }),
        '404': answer('NotFound'),
        ...TOKEN_ANSWERS,
      },
    },
  },
}
