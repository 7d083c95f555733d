// The REST API as an OpenAPI 3.1 document, served at GET /api/v1/openapi.json. A test holds it to
// the routes the router registered: a route added without its entry here fails `npm test`.
import type { Router } from '../../transport/index.js'
import { COMMAND_PATHS } from './commands.js'
import { COMPONENTS } from './components.js'
import { DEVICE_PATHS } from './devices.js'
import { HEALTH_PATHS } from './health.js'
import { NODE_PATHS } from './nodes.js'
import type { Paths } from './shapes.js'
import { TELEMETRY_PATHS } from './telemetry.js'
import { TWIN_PATHS } from './twins.js'

/** Where the document is served. */
export const OPENAPI_PATH = '/api/v1/openapi.json'

/** Every path of the API, by concern. */
const PATHS: Paths = { ...DEVICE_PATHS, ...COMMAND_PATHS, ...TELEMETRY_PATHS, ...TWIN_PATHS, ...NODE_PATHS, ...HEALTH_PATHS }

/** The OpenAPI 3.1 document of the REST API. */
export const OPENAPI_DOCUMENT: { readonly openapi: string; readonly paths: Paths } & Readonly<Record<string, unknown>> = {
  openapi: '3.1.0',
  info: {
    title: 'Fleetgate hub REST API',
    version: 'v1',
    description: [
      'Operators manage devices, send commands, read telemetry, follow live events and change device twins here. JSON in and out; times are ISO 8601; errors are `{"error": code, "message": text}` with the codes of docs/errors.md in the repository.',
      'Not here: the device endpoint `GET /v1/connect` (a WebSocket, docs/protocol.md), the MQTT topics (docs/mqtt.md) and the console at `/console/`.',
      'An unknown path, or a method a path does not take, is answered 404 `not_found`.',
    ].join('\n\n'),
    license: { name: 'MIT', identifier: 'MIT' },
  },
  servers: [{ url: '/', description: 'The hub itself (FLEETGATE_HOST:FLEETGATE_PORT).' }],
  tags: [
    { name: 'devices', description: 'The registry: devices, their tags and keys.' },
    { name: 'commands', description: 'Commands to one device, fan-out to many.' },
    { name: 'audit', description: 'Who changed what.' },
    { name: 'telemetry', description: 'Readings, as stored, and live events.' },
    { name: 'twins', description: 'Desired and reported state (docs/twins.md).' },
    { name: 'health', description: 'Probes, figures and this document.' },
  ],
  paths: PATHS,
  components: COMPONENTS,
}

/** Registers `GET /api/v1/openapi.json` (no token: see its description). */
export function registerOpenApiRoute(router: Router): void {
  const text = JSON.stringify(OPENAPI_DOCUMENT)
  router.route('get', OPENAPI_PATH, { scope: undefined, body: 'none' }, () => ({ status: 200, text: { contentType: 'application/json', body: text } }))
}
