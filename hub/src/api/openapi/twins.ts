// The twin routes in the OpenAPI document (handlers: ../twins.ts).
import { MAX_TWIN_BYTES } from '@fleetgate/device-sdk/wire'
import { errorAnswer } from './components.js'
import { answer, BODY_ANSWERS, json, jsonAnswer, needs, pathParameter, schema, TOKEN_ANSWERS, type Paths } from './shapes.js'

/** `/api/v1/devices/{id}/twin`. */
export const TWIN_PATHS: Paths = {
  '/api/v1/devices/{id}/twin': {
    get: {
      operationId: 'getTwin',
      summary: 'A device\'s twin',
      description: 'Both documents with their versions, and `delta`: the part of `desired` that `reported` does not match (`{}` in sync). A device that never had a change has both at version 0, `{}`.',
      tags: ['twins'],
      security: needs('reader'),
      parameters: [pathParameter('id', 'The device id.')],
      responses: { '200': jsonAnswer('The twin.', schema('Twin')), '400': answer('Invalid'), '404': answer('NotFound'), ...TOKEN_ANSWERS },
    },
    patch: {
      operationId: 'changeDesired',
      summary: 'Change a device\'s desired state',
      description: [
        'A JSON merge patch (RFC 7386) of `desired`: objects merge member by member, `null` deletes a key, anything else replaces. A patch that changes nothing keeps the version.',
        'The device gets the whole desired document (`twd`) once the change is durable: at once when it is connected, else right after its next `hello`. Every change is published retained on `fleetgate/devices/{id}/twin` and audited as `twin.desired`.',
      ].join('\n\n'),
      tags: ['twins'],
      security: needs('operator'),
      parameters: [pathParameter('id', 'The device id.')],
      requestBody: { required: true, content: json(schema('TwinPatch')) },
      responses: {
        '200': jsonAnswer('The twin after the change (durable).', schema('Twin')),
        '400': answer('Invalid'),
        '404': answer('NotFound'),
        '409': errorAnswer('`ifVersion` is not the current desired version: nothing changed.', ['version_conflict']),
        '413': errorAnswer(`The desired document would pass ${MAX_TWIN_BYTES} bytes as compact JSON (\`too_large\`), or the body is over 1 MiB (\`payload_too_large\`).`, [
          'too_large',
          'payload_too_large',
        ]),
        ...TOKEN_ANSWERS,
      },
    },
  },
}
