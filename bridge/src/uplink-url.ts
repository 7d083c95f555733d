import { BridgeError } from './errors.js'

/** Where the uplink connects: the parts of `FLEETGATE_MQTT_UPLINK`, credentials decoded. */
export interface UplinkTarget {
  /** `mqtt` (TCP) or `mqtts` (TLS, verified against Node's default CAs). */
  readonly protocol: 'mqtt' | 'mqtts'
  /** Host name or IP address; IPv6 without brackets. */
  readonly host: string
  /** TCP port; default 1883 for `mqtt`, 8883 for `mqtts`. */
  readonly port: number
  /** MQTT user name, percent-decoded; undefined when the URL has none. */
  readonly username: string | undefined
  /** MQTT password, percent-decoded; undefined when the URL has none. */
  readonly password: string | undefined
  /** The URL with the password replaced by `***`, safe for logs and errors. */
  readonly redacted: string
}

const VARIABLE = 'FLEETGATE_MQTT_UPLINK'
const EXPECTED = 'a URL mqtt://user:pass@host:port (or mqtts://)'

function invalid(why: string): BridgeError {
  // The value itself is never echoed: it may hold the password.
  return new BridgeError('BRIDGE_ERR_INVALID_OPTION', `${VARIABLE} must be ${EXPECTED}: ${why}`)
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part)
  } catch (err) {
    throw new BridgeError('BRIDGE_ERR_INVALID_OPTION', `${VARIABLE} must be ${EXPECTED}: ${what} is not valid percent-encoding`, { cause: err })
  }
}

/**
 * Parses `FLEETGATE_MQTT_UPLINK` strictly: scheme `mqtt:` or `mqtts:`, a host, an optional port
 * 1-65535, optional `user[:pass]` (a password needs a user name, as in MQTT 3.1.1 §3.1.2.9), and
 * nothing else: no path, query or fragment. Throws `BRIDGE_ERR_INVALID_OPTION` naming the variable.
 */
export function parseUplinkUrl(value: string): UplinkTarget {
  if (typeof value !== 'string' || value.trim() !== value || value === '') throw invalid('empty or surrounded by spaces')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid('not a URL')
  }
  const protocol = url.protocol === 'mqtt:' ? 'mqtt' : url.protocol === 'mqtts:' ? 'mqtts' : undefined
  if (protocol === undefined) throw invalid(`scheme ${JSON.stringify(url.protocol)} is not mqtt: or mqtts:`)
  if (url.hostname === '') throw invalid('no host')
  if (url.pathname !== '' && url.pathname !== '/') throw invalid('a path is not allowed')
  if (url.search !== '' || value.includes('?')) throw invalid('a query is not allowed')
  if (url.hash !== '' || value.includes('#')) throw invalid('a fragment is not allowed')
  // mqtt: and mqtts: are not WHATWG special schemes, so `url.port` is the port as written
  // (`1883` stays `1883`, `0` stays `0`) and an empty port (`host:`) reads as none.
  if (url.port === '' && /:\/?$/.test(value)) throw invalid('empty port')
  const port = url.port === '' ? (protocol === 'mqtt' ? 1883 : 8883) : Number(url.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('port must be 1 to 65535')
  const username = url.username === '' ? undefined : decode(url.username, 'the user name')
  const password = url.password === '' ? undefined : decode(url.password, 'the password')
  if (password !== undefined && username === undefined) throw invalid('a password needs a user name')
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const auth = username === undefined ? '' : password === undefined ? `${url.username}@` : `${url.username}:***@`
  const shownHost = host.includes(':') ? `[${host}]` : host
  return Object.freeze({ protocol, host, port, username, password, redacted: `${protocol}://${auth}${shownHost}:${port}` })
}
