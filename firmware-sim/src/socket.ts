// The WebSocket the simulated devices' SDK clients open: `ws`, as the SDK uses on Node, with two
// additions. Connections take their source address from --local-address in turn, so one machine
// can hold more connections to one hub port than one address has ephemeral ports. And each socket
// is handed to its device (found by the device id in the token), so the fleet can cut a
// connection (churn, storms) or send an invalid frame on the device's own session (bad frames).
// The SDK takes a WebSocket constructor as a public option for exactly this kind of transport choice.
import WebSocket from 'ws'
import type { WebSocketConstructor } from '@fleetgate/device-sdk'

/** What the socket class needs of the fleet. */
export interface SocketHost {
  /** Source addresses to use in turn; empty: the OS picks. */
  readonly localAddresses: readonly string[]
  /** Called with each new socket and the device id its token names. */
  attach(deviceId: string, socket: WebSocket): void
}

/** docs/protocol.md: token = "v1." deviceId "." exp "." sig, and a device id has no ".". */
export function deviceIdOfToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined
  const token = authorization.startsWith('Bearer ') ? authorization.slice(7) : authorization
  const parts = token.split('.')
  return parts.length === 4 && parts[0] === 'v1' ? parts[1] : undefined
}

/** A WebSocket constructor for the SDK's `WebSocket` option (header auth: it is `ws`). */
export function simSocketClass(host: SocketHost): WebSocketConstructor {
  let next = 0
  class SimSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[], options?: WebSocket.ClientOptions) {
      const addresses = host.localAddresses
      const localAddress = addresses.length === 0 ? undefined : addresses[next++ % addresses.length]
      // no permessage-deflate: frames are small CBOR, and each inflater costs memory per connection
      super(url, protocols, { ...options, perMessageDeflate: false, ...(localAddress === undefined ? {} : { localAddress }) })
      const headers = options?.headers as Record<string, string> | undefined
      const deviceId = deviceIdOfToken(headers?.['authorization'])
      if (deviceId !== undefined) host.attach(deviceId, this)
    }
  }
  return SimSocket as unknown as WebSocketConstructor
}
