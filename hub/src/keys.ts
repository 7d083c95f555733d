import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { base64urlDecode, base64urlEncode, type KeyType } from '@fleetgate/device-sdk'

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** What the hub keeps to verify a device: the HMAC key itself, or the Ed25519 public key (raw, base64url). */
export interface DeviceKey {
  readonly type: KeyType
  readonly material: string
}

/** The secret shown to the operator once (CONTRACT §2), or nothing when the operator brought a public key. */
export type IssuedSecret = { key: string } | { privateKey: string } | Record<string, never>

/** Makes a new key of `type`: 32 random bytes for hmac, a fresh pair for ed25519. */
export function generateDeviceKey(type: KeyType): { key: DeviceKey; secret: IssuedSecret } {
  if (type === 'hmac') {
    const material = base64urlEncode(randomBytes(32))
    return { key: { type, material }, secret: { key: material } }
  }
  const pair = generateKeyPairSync('ed25519')
  const spki = pair.publicKey.export({ type: 'spki', format: 'der' })
  const privateKey = base64urlEncode(pair.privateKey.export({ type: 'pkcs8', format: 'der' }))
  return { key: { type, material: base64urlEncode(spki.subarray(ED25519_SPKI_PREFIX.length)) }, secret: { privateKey } }
}

/**
 * Parses an operator-supplied Ed25519 public key: the raw 32 bytes or the SPKI DER, each as
 * base64url (base64 accepted too). Returns the raw key as base64url, or undefined.
 */
export function parseEd25519PublicKey(text: string): string | undefined {
  const bytes = base64urlDecode(text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''))
  if (bytes === undefined) return undefined
  let raw: Uint8Array
  if (bytes.length === 32) raw = bytes
  else if (bytes.length === 44 && ED25519_SPKI_PREFIX.equals(bytes.subarray(0, 12))) raw = bytes.subarray(12)
  else return undefined
  try {
    ed25519PublicKeyObject(base64urlEncode(raw))
  } catch {
    return undefined
  }
  return base64urlEncode(raw)
}

/** Builds a node:crypto KeyObject from a raw Ed25519 public key (base64url). */
export function ed25519PublicKeyObject(rawBase64url: string): KeyObject {
  const raw = base64urlDecode(rawBase64url)
  if (raw === undefined || raw.length !== 32) throw new TypeError('an Ed25519 public key is 32 bytes')
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}
