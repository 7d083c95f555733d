// Everything that touches a socket: the uWS loader, the device endpoint and its sessions, the REST
// router, and the TCP listener of the embedded MQTT broker.
export { DEVICE_ENDPOINT_DEFAULTS, mountDeviceEndpoint, type DeviceEndpointOptions, type DeviceEndpointTuning } from './device-endpoint.js'
export {
  API_ERROR_CODES,
  apiError,
  deviceNotFound,
  invalid,
  Router,
  type ApiErrorCode,
  type Handler,
  type OpenStream,
  type Reply,
  type RequestContext,
  type RouteInfo,
  type RouteOptions,
  type StreamHandler,
} from './http.js'
export { startMqtt, type MqttHooks, type MqttListener, type MqttListenerOptions } from './mqtt.js'
export { loadNativeUws, type UwsModule } from './uws.js'
export { GuardedApp, ResponseStream, type Exchange, type UncaughtSink } from './uws-guard.js'
