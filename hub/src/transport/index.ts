// Everything that touches a socket: the uWS loader, the device endpoint and its sessions, the REST
// router, and the TCP listener of the embedded MQTT broker.
export { mountDeviceEndpoint, type DeviceEndpointOptions } from './device-endpoint.js'
export { apiError, invalid, Router, type ApiErrorCode, type Handler, type OpenStream, type Reply, type RequestContext, type RouteOptions, type StreamHandler } from './http.js'
export { startMqtt, type MqttHooks, type MqttListener, type MqttListenerOptions } from './mqtt.js'
export { loadNativeUws, type UwsModule } from './uws.js'
export { GuardedApp, ResponseStream, type UncaughtSink } from './uws-guard.js'
