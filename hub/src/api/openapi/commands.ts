// The command, fan-out and audit routes in the OpenAPI document (handlers: ../commands.ts).
import { COMMAND_STATUSES, MAX_QUEUED_PER_DEVICE } from '../../commands/index.js'
import { DEFAULT_LIST, MAX_LIST } from '../commands.js'
import { errorAnswer, errorOf } from './components.js'
import { answer, BODY_ANSWERS, json, jsonAnswer, needs, pathParameter, queryParameter, schema, TOKEN_ANSWERS, type Paths } from './shapes.js'

const id = pathParameter('id', 'The device id.')
const limit = queryParameter('limit', 'At most this many.', { type: 'integer', minimum: 1, maximum: MAX_LIST, default: DEFAULT_LIST })

/** `/api/v1/devices/{id}/commands...`, `/api/v1/commands...` and `/api/v1/audit`. */
export const COMMAND_PATHS: Paths = {
  '/api/v1/devices/{id}/commands': {
    post: {
      operationId: 'sendCommand',
      summary: 'Send a command to a device',
      description: [
        'Online: the `cmd` frame is written to its connection and the command is `sent`; with `wait` (default) the answer is the final record once the device answers, or 504 after `timeoutMs`.',
        `Offline with \`ttlMs\` > 0: queued (at most ${MAX_QUEUED_PER_DEVICE} per device), delivered in creation order when it connects, unless its TTL ends first (\`expired\`).`,
        'Offline with `ttlMs` 0: 409 `device_offline`, nothing kept.',
        'Online, but its connection holds more than the hub lets it buffer (a device that reads slower than it is sent to), or older commands of it still going out: the command waits its turn, `queued`, and is `sent` once written; with `ttlMs` 0 it waits at most `timeoutMs` and then ends `expired`. With `wait` the answer waits too.',
      ].join('\n\n'),
      tags: ['commands'],
      security: needs('operator'),
      parameters: [id],
      requestBody: { required: true, content: json(schema('CommandRequest')) },
      responses: {
        '200': jsonAnswer('With `wait`: the final record (`succeeded` or `failed`); or, for a repeated `id`, the existing record.', schema('CommandRecord')),
        '202': jsonAnswer('Without `wait`: the record as it is now (`sent`, or `queued`).', schema('CommandRecord')),
        '400': answer('Invalid'),
        '404': answer('NotFound'),
        '409': errorAnswer('The device is offline and the command has no `ttlMs` to wait for it.', ['device_offline']),
        '429': errorAnswer(`The device has ${MAX_QUEUED_PER_DEVICE} queued commands already (\`queue_full\`), or too many failed tokens from this address (\`too_many_requests\`).`, [
          'queue_full',
          'too_many_requests',
        ]),
        '504': jsonAnswer('With `wait`: no result in time. The record ends `timeout` (sent, unanswered) or `expired` (never written to the device).', schema('CommandRecord')),
        ...BODY_ANSWERS,
        '401': answer('Unauthorized'),
        '403': answer('Forbidden'),
        '500': answer('Internal'),
      },
    },
    get: {
      operationId: 'listCommands',
      summary: 'A device\'s commands, newest first',
      tags: ['commands'],
      security: needs('reader'),
      parameters: [id, queryParameter('status', 'Only commands with this status.', { enum: [...COMMAND_STATUSES] }), limit],
      responses: { '200': jsonAnswer('The commands.', schema('CommandList')), '400': answer('Invalid'), ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/devices/{id}/commands/{cmdId}': {
    get: {
      operationId: 'getCommand',
      summary: 'One command record',
      tags: ['commands'],
      security: needs('reader'),
      parameters: [id, pathParameter('cmdId', 'The command id.')],
      responses: { '200': jsonAnswer('The record.', schema('CommandRecord')), '400': answer('Invalid'), '404': answer('NotFound'), ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/commands': {
    post: {
      operationId: 'fanOut',
      summary: 'Send one command to many devices',
      description:
        'One command per targeted device, by the rules of a single command but with nobody to answer: an offline device with `ttlMs` 0, or one whose queue is full, gets a record `expired` with the reason, so the counts add up to `targeted`.',
      tags: ['commands'],
      security: needs('operator'),
      requestBody: { required: true, content: json(schema('FanOutRequest')) },
      responses: { '202': jsonAnswer('Started; the commands are created after this answer.', schema('BatchStarted')), '400': answer('Invalid'), ...BODY_ANSWERS, ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/commands/{batch}': {
    get: {
      operationId: 'getBatch',
      summary: 'A fan-out\'s counts by status',
      tags: ['commands'],
      security: needs('reader'),
      parameters: [pathParameter('batch', 'The batch id from the fan-out\'s answer.')],
      responses: { '200': jsonAnswer('Its counts.', schema('BatchStatus')), '400': answer('Invalid'), '404': answer('NotFound'), ...TOKEN_ANSWERS },
    },
  },
  '/api/v1/audit': {
    get: {
      operationId: 'listAudit',
      summary: 'The audit log, oldest first',
      description: 'Every command, fan-out, credential change, device change and forced disconnect, with who did it.',
      tags: ['audit'],
      security: needs('admin'),
      parameters: [queryParameter('after', 'Entries after this `seq`.', { type: 'integer', minimum: 0, default: 0 }), limit],
      responses: { '200': jsonAnswer('A page of entries.', schema('AuditPage')), '400': jsonAnswer('A bad `after` or `limit`.', errorOf(['invalid'])), ...TOKEN_ANSWERS },
    },
  },
}
