// The REST API of docs/rest.md, docs/twins.md, docs/cluster.md: devices, commands and fan-out, audit, telemetry queries,
// live events, twins, the cluster's nodes, health, and its OpenAPI document.
export { registerCommandRoutes, type CommandsApiDeps } from './commands.js'
export { registerConsoleRoutes } from './console.js'
export { MAX_BULK_DEVICES, registerDeviceRoutes, type DevicesApiDeps } from './devices.js'
export { registerEventRoutes } from './events.js'
export { influxProbe, registerHealthRoutes, type Readiness, type ReadinessProbe } from './health.js'
export { registerNodeRoutes, type NodesApiDeps } from './nodes.js'
export { OPENAPI_DOCUMENT, OPENAPI_PATH, registerOpenApiRoute } from './openapi/document.js'
export { registerTelemetryRoutes, type TelemetryApiDeps } from './telemetry.js'
export { registerTwinRoutes, type TwinsApiDeps } from './twins.js'
