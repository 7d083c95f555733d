// The device routes in the OpenAPI document (handlers: ../devices.ts).
import { DEVICE_ID_PATTERN } from '@fleetgate/device-sdk/wire'
import { DEFAULT_PAGE, MAX_BULK_DEVICES, MAX_PAGE } from '../devices.js'
import { errorAnswer } from './components.js'
import { answer, BODY_ANSWERS, json, jsonAnswer, needs, pathParameter, queryParameter, schema, TOKEN_ANSWERS, type Paths } from './shapes.js'

const id = pathParameter('id', 'The device id.')
const tags = ['devices']

/** `/api/v1/devices...` */
export const DEVICE_PATHS: Paths = {
  '/api/v1/devices': {
    post: {
      operationId: 'createDevice',
      summary: 'Create a device and issue its key',
      description: 'The answer carries the device\'s secret (`key` or `privateKey`) this once; the hub keeps no readable copy of a private key and never shows an HMAC key again.',
      tags,
      security: needs('admin'),
      requestBody: { required: true, content: json(schema('NewDevice')) },
      responses: {
        '201': jsonAnswer('Created, with its secret.', schema('DeviceWithSecret')),
        '400': answer('Invalid'),
        '409': errorAnswer('A device with this id exists.', ['exists']),
        ...BODY_ANSWERS,
        ...TOKEN_ANSWERS,
      },
    },
    get: {
      operationId: 'listDevices',
      summary: 'List devices, by id, a page at a time',
      tags,
      security: needs('reader'),
      parameters: [
        {
          name: 'tag',
          in: 'query',
          required: false,
          description: '`name:value`; may repeat, and every one must match.',
          schema: { type: 'array', items: { type: 'string' } },
          style: 'form',
          explode: true,
        },
        queryParameter('online', 'Only devices online (`true`) or offline (`false`).', { enum: ['true', 'false'] }),
        queryParameter('limit', 'Page size.', { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE }),
        queryParameter('after', 'The `next` of the previous page.', { type: 'string', pattern: DEVICE_ID_PATTERN.source }),
      ],
      responses: { '200': jsonAnswer('A page of devices.', schema('DevicePage')), '400': answer('Invalid'), ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/devices/bulk': {
    post: {
      operationId: 'createDevices',
      summary: `Create up to ${MAX_BULK_DEVICES} devices in one call`,
      description: 'Each device is created or refused on its own; the answer lists both.',
      tags,
      security: needs('admin'),
      requestBody: { required: true, content: json(schema('BulkRequest')) },
      responses: { '200': jsonAnswer('What was created, with secrets, and what was not, with why.', schema('BulkResult')), '400': answer('Invalid'), ...BODY_ANSWERS, ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/devices/{id}': {
    get: {
      operationId: 'getDevice',
      summary: 'A device, with whether it is online',
      tags,
      security: needs('reader'),
      parameters: [id],
      responses: { '200': jsonAnswer('The device.', schema('Device')), '400': answer('Invalid'), '404': answer('NotFound'), ...TOKEN_ANSWERS },
    },
    patch: {
      operationId: 'updateDevice',
      summary: 'Change its tags or disable it',
      description: 'Disabling closes its live session with 4003; it cannot connect again until enabled.',
      tags,
      security: needs('admin'),
      parameters: [id],
      requestBody: { required: true, content: json(schema('DevicePatch')) },
      responses: { '200': jsonAnswer('The device as changed.', schema('Device')), '400': answer('Invalid'), '404': answer('NotFound'), ...BODY_ANSWERS, ...TOKEN_ANSWERS },
    },
    delete: {
      operationId: 'deleteDevice',
      summary: 'Delete a device',
      description: 'Closes its live session with 4003; its queued commands end `expired`.',
      tags,
      security: needs('admin'),
      parameters: [id],
      responses: { '204': { description: 'Deleted.' }, '400': answer('Invalid'), '404': answer('NotFound'), ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/devices/{id}/key': {
    post: {
      operationId: 'rotateDeviceKey',
      summary: 'Issue a new key of the same type',
      description: 'The old key keeps opening sessions for `graceSec`, then never again.',
      tags,
      security: needs('admin'),
      parameters: [id],
      requestBody: { required: false, content: json(schema('KeyRotation')) },
      responses: { '200': jsonAnswer('The new secret, shown this once.', schema('Secret')), '400': answer('Invalid'), '404': answer('NotFound'), ...BODY_ANSWERS, ...TOKEN_ANSWERS },
    },
  },
}
