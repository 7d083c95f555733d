// Device tokens (docs/protocol.md):
//   token  = "v1." deviceId "." exp "." sig      exp: decimal Unix seconds
//   signed = "v1." deviceId "." exp
//   sig    = base64url(HMAC-SHA256(key, signed)) | base64url(Ed25519-sign(privateKey, signed))
// Signing uses WebCrypto (globalThis.crypto.subtle: Node 20 and browsers), so this module has no
// node: import and bundles for browsers. The hub verifies with node:crypto after parseToken.
import { SdkError } from './errors.js'
import { DEVICE_ID_PATTERN } from './frames.js'

/** How a device signs its tokens: `hmac` (32-byte shared key) or `ed25519` (private key on the device); default `hmac`. */
export type KeyType = 'hmac' | 'ed25519'

/** Arguments of signToken: `expSec` is Unix seconds; `key` is base64url text (no padding) or raw bytes. */
export interface SignTokenOptions {
  deviceId: string
  keyType: KeyType
  /** hmac: the 32 key bytes; ed25519: the PKCS#8 DER private key the hub showed, or the 32-byte seed. */
  key: string | Uint8Array
  expSec: number
}

/** A token split into its parts: `signed` is the token without "." sig, `sig` 32 (HMAC) or 64 (Ed25519) bytes. */
export interface ParsedToken {
  deviceId: string
  expSec: number
  signed: string
  sig: Uint8Array
}

/** Longest token parseToken accepts, in characters: "v1." + 64-char id + "." + 12-digit exp + "." + 86-char sig = 167. */
export const MAX_TOKEN_LENGTH = 167

// exp: 1 to 12 decimal digits, no leading zero (one spelling per instant), so at most year 33658
const EXP_PATTERN = /^(?:0|[1-9][0-9]{0,11})$/
const MAX_EXP_SEC = 999_999_999_999
const HMAC_KEY_BYTES = 32
const ED25519_SEED_BYTES = 32
// RFC 8410 §7: PKCS#8 OneAsymmetricKey for Ed25519, everything before the 32-byte seed
const ED25519_PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const DECODE_TABLE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) DECODE_TABLE[ALPHABET.charCodeAt(i)] = i

/** base64url (RFC 4648 §5) without padding. */
export function base64urlEncode(bytes: Uint8Array): string {
  let out = ''
  const length = bytes.length
  let i = 0
  for (; i + 2 < length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!
  }
  if (length - i === 1) {
    const n = bytes[i]! << 16
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!
  } else if (length - i === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!
  }
  return out
}

/**
 * Strict base64url decoding: only `A-Z a-z 0-9 - _`, no padding, no whitespace, and the unused low
 * bits of the last character zero (one spelling per byte string). Anything else gives undefined.
 */
export function base64urlDecode(text: string): Uint8Array | undefined {
  if (typeof text !== 'string') return undefined
  const length = text.length
  const tail = length % 4
  if (tail === 1) return undefined
  const out = new Uint8Array((length * 3) >> 2)
  let o = 0
  let i = 0
  for (; i + 4 <= length; i += 4) {
    const a = sextet(text, i)
    const b = sextet(text, i + 1)
    const c = sextet(text, i + 2)
    const d = sextet(text, i + 3)
    if ((a | b | c | d) < 0) return undefined
    const n = (a << 18) | (b << 12) | (c << 6) | d
    out[o++] = n >> 16
    out[o++] = (n >> 8) & 0xff
    out[o++] = n & 0xff
  }
  if (tail === 2) {
    const a = sextet(text, i)
    const b = sextet(text, i + 1)
    // 12 bits for one byte: the low 4 must be zero
    if ((a | b) < 0 || (b & 0x0f) !== 0) return undefined
    out[o] = (a << 2) | (b >> 4)
  } else if (tail === 3) {
    const a = sextet(text, i)
    const b = sextet(text, i + 1)
    const c = sextet(text, i + 2)
    // 18 bits for two bytes: the low 2 must be zero
    if ((a | b | c) < 0 || (c & 0x03) !== 0) return undefined
    const n = (a << 12) | (b << 6) | c
    out[o++] = n >> 10
    out[o] = (n >> 2) & 0xff
  }
  return out
}

// The 6-bit value of one character, or -1 for a character outside the alphabet.
function sextet(text: string, index: number): number {
  const code = text.charCodeAt(index)
  return code < 128 ? DECODE_TABLE[code]! : -1
}

/**
 * Splits a token strictly: exactly four parts, `v1`, a valid device id, exp of 1 to 12 digits (no
 * leading zero), and a canonical base64url sig of 43 characters (32 bytes, HMAC) or 86 (64 bytes,
 * Ed25519). Anything else gives undefined. Does not verify the signature: the hub does, with the
 * device's key.
 */
export function parseToken(token: string): ParsedToken | undefined {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return undefined
  const parts = token.split('.')
  if (parts.length !== 4 || parts[0] !== 'v1') return undefined
  const deviceId = parts[1]!
  const exp = parts[2]!
  const sigText = parts[3]!
  if (!DEVICE_ID_PATTERN.test(deviceId) || !EXP_PATTERN.test(exp)) return undefined
  if (sigText.length !== 43 && sigText.length !== 86) return undefined
  const sig = base64urlDecode(sigText)
  if (sig === undefined) return undefined
  return { deviceId, expSec: Number(exp), signed: token.slice(0, token.length - sigText.length - 1), sig }
}

/**
 * Signs a token for `deviceId` that expires at `expSec` (Unix seconds). Rejects with SdkError
 * SDK_ERR_INVALID_OPTION for a bad argument and SDK_ERR_TOKEN when WebCrypto is missing or refuses
 * the key. Imported keys are cached per key, so signing again (each reconnect) does not re-import.
 */
export async function signToken(options: SignTokenOptions): Promise<string> {
  const { deviceId, keyType, key, expSec } = options
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
    throw new SdkError('SDK_ERR_INVALID_OPTION', 'deviceId: expected 1 to 64 of A-Z a-z 0-9 _ -')
  }
  if (!Number.isSafeInteger(expSec) || expSec < 0 || expSec > MAX_EXP_SEC) {
    throw new SdkError('SDK_ERR_INVALID_OPTION', `expSec: expected Unix seconds from 0 to ${MAX_EXP_SEC}, got ${String(expSec)}`)
  }
  const cryptoKey = await signingKey(keyType, key)
  const signed = `v1.${deviceId}.${expSec}`
  let sig: ArrayBuffer
  try {
    sig = await webCrypto().sign(keyType === 'hmac' ? 'HMAC' : { name: 'Ed25519' }, cryptoKey, asciiBytes(signed))
  } catch (cause) {
    throw new SdkError('SDK_ERR_TOKEN', `cannot sign a token for ${deviceId}`, { cause })
  }
  return `${signed}.${base64urlEncode(new Uint8Array(sig))}`
}

/**
 * The raw key bytes of a device key, or why they are not acceptable: hmac needs exactly 32 bytes;
 * ed25519 takes a 32-byte seed or a PKCS#8 DER private key (a DER SEQUENCE, 0x30).
 */
export function deviceKeyBytes(keyType: KeyType, key: string | Uint8Array): Uint8Array | string {
  const bytes = typeof key === 'string' ? base64urlDecode(key) : key instanceof Uint8Array ? key : undefined
  if (bytes === undefined) return 'expected base64url text without padding, or a Uint8Array'
  if (keyType === 'hmac') {
    return bytes.length === HMAC_KEY_BYTES ? bytes : `an hmac key is ${HMAC_KEY_BYTES} bytes, got ${bytes.length}`
  }
  if (keyType === 'ed25519') {
    if (bytes.length === ED25519_SEED_BYTES || (bytes.length > ED25519_SEED_BYTES && bytes[0] === 0x30)) return bytes
    return `an ed25519 key is a PKCS#8 DER private key or a ${ED25519_SEED_BYTES}-byte seed, got ${bytes.length} bytes`
  }
  return `unknown key type ${String(keyType)}`
}

// Minimal structural WebCrypto types: the SDK builds without the DOM lib, and @types/node's Crypto
// type is Node's. CryptoKey stays opaque.
interface SubtleLike {
  importKey(
    format: 'raw' | 'pkcs8',
    keyData: Uint8Array,
    algorithm: { name: 'HMAC'; hash: 'SHA-256' } | { name: 'Ed25519' },
    extractable: boolean,
    keyUsages: Array<'sign'>,
  ): Promise<object>
  sign(algorithm: 'HMAC' | { name: 'Ed25519' }, key: object, data: Uint8Array): Promise<ArrayBuffer>
}

function webCrypto(): SubtleLike {
  const subtle = (globalThis as { crypto?: { subtle?: SubtleLike } }).crypto?.subtle
  if (subtle === undefined) {
    throw new SdkError('SDK_ERR_TOKEN', 'WebCrypto is not available (globalThis.crypto.subtle): use Node 20+ or a secure (https) browser context')
  }
  return subtle
}

// Imported keys by key type and key text. Bounded so a process that signs for many devices (the
// fleet simulator) keeps the most recent ones without growing for ever; Map order is insertion order.
const KEY_CACHE_LIMIT = 4096
const keyCache = new Map<string, Promise<object>>()

function signingKey(keyType: KeyType, key: string | Uint8Array): Promise<object> {
  const bytes = deviceKeyBytes(keyType, key)
  if (typeof bytes === 'string') return Promise.reject(new SdkError('SDK_ERR_INVALID_OPTION', `key: ${bytes}`))
  const cacheKey = `${keyType}:${typeof key === 'string' ? key : base64urlEncode(bytes)}`
  let cryptoKey = keyCache.get(cacheKey)
  if (cryptoKey === undefined) {
    cryptoKey = importKey(keyType, bytes)
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value!)
    keyCache.set(cacheKey, cryptoKey)
    // a failed import is not cached: the next attempt tries again
    const pending = cryptoKey
    pending.catch(() => {
      if (keyCache.get(cacheKey) === pending) keyCache.delete(cacheKey)
    })
  }
  return cryptoKey
}

async function importKey(keyType: KeyType, bytes: Uint8Array): Promise<object> {
  try {
    if (keyType === 'hmac') return await webCrypto().importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    const der = bytes.length === ED25519_SEED_BYTES ? new Uint8Array([...ED25519_PKCS8_PREFIX, ...bytes]) : bytes
    return await webCrypto().importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign'])
  } catch (cause) {
    if (cause instanceof SdkError) throw cause
    throw new SdkError('SDK_ERR_TOKEN', `WebCrypto refused the ${keyType} key`, { cause })
  }
}

function asciiBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i)
  return bytes
}
