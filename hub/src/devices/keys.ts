import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import type { KeyType } from '@fleetgate/device-sdk'
import { base64urlDecode, base64urlEncode } from '@fleetgate/device-sdk/wire'
import type { DeviceKey } from '../store/index.js'

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** The secret shown to the operator once (docs/protocol.md), or nothing when the operator brought a public key. */
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
  const material = base64urlEncode(raw)
  try {
    ed25519PublicKeyObject(material)
  } catch {
    return undefined
  }
  return material
}

/** Builds a node:crypto KeyObject from a raw Ed25519 public key (base64url). */
export function ed25519PublicKeyObject(rawBase64url: string): KeyObject {
  const raw = base64urlDecode(rawBase64url)
  if (raw === undefined || raw.length !== 32) throw new TypeError('an Ed25519 public key is 32 bytes')
  // As a JWK (RFC 8037 §2) the raw key goes to OpenSSL as it is; as SPKI DER it goes through
  // OpenSSL 3's decoder framework, which measured ~150 µs a key here against ~10 µs for this.
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: rawBase64url }, format: 'jwk' })
}

/** A device verifies with its current key and, during a rotation's grace period, the previous one. */
const MAX_HELD = 2

/** One imported key and the material it came from. */
interface HeldKey {
  readonly material: string
  readonly keyObject: KeyObject
}

/** What the rest of the hub may ask of the held public keys (the registry alone changes them). */
export interface PublicKeyLookup {
  /** The KeyObject of `material`, a key of device `id`: held, or imported now and then held. */
  get(id: string, material: string): KeyObject
  /** The materials held for device `id`, the latest imported or set first: at most two (a current key and one in grace). */
  held(id: string): readonly string[]
  /** Devices with at least one key held. */
  readonly size: number
}

/**
 * Ed25519 public keys imported once as KeyObjects, by device id, so that verifying a token never
 * imports a key. Each entry keeps the material it came from and a lookup compares it, so an entry
 * that lags behind a record (a rotation whose commit is not yet read back) costs one import and
 * never verifies against a key the record no longer names. A held key measured ~0.9 KiB of RSS.
 */
export class PublicKeyCache implements PublicKeyLookup {
  /** Device id -> its held keys, the latest first; at most MAX_HELD. */
  readonly #byDevice = new Map<string, readonly HeldKey[]>()

  get size(): number {
    return this.#byDevice.size
  }

  get(id: string, material: string): KeyObject {
    const held = this.#byDevice.get(id) ?? []
    const hit = held.find((key) => key.material === material)
    if (hit !== undefined) return hit.keyObject
    // A miss is a device loaded from disk that was not used yet in this process.
    const keyObject = ed25519PublicKeyObject(material)
    this.#byDevice.set(id, [{ material, keyObject }, ...held].slice(0, MAX_HELD))
    return keyObject
  }

  held(id: string): readonly string[] {
    return (this.#byDevice.get(id) ?? []).map((key) => key.material)
  }

  /** Holds exactly `materials` for device `id` (current first), reusing what is held and importing the rest. */
  set(id: string, materials: readonly string[]): void {
    const held = this.#byDevice.get(id) ?? []
    const next = materials.slice(0, MAX_HELD).map(
      (material) => held.find((key) => key.material === material) ?? { material, keyObject: ed25519PublicKeyObject(material) },
    )
    if (next.length === 0) this.#byDevice.delete(id)
    else this.#byDevice.set(id, next)
  }

  /** Drops every key of device `id`. */
  delete(id: string): void {
    this.#byDevice.delete(id)
  }
}
