// Tokens are signed with WebCrypto and verified here the way the hub verifies them: node:crypto.
import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, timingSafeEqual, verify } from 'node:crypto'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { base64urlDecode, base64urlEncode, parseToken, signToken, type ParsedToken } from '../src/wire.js'

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')

// The hub's check of an HMAC token (docs/protocol.md: constant-time compare).
function hubVerifiesHmac(parsed: ParsedToken, key: Uint8Array): boolean {
  const expected = createHmac('sha256', key).update(parsed.signed).digest()
  return parsed.sig.length === expected.length && timingSafeEqual(parsed.sig, expected)
}

// The hub keeps only the 32-byte public key of an Ed25519 device (docs/protocol.md).
function hubVerifiesEd25519(parsed: ParsedToken, publicKey32: Uint8Array): boolean {
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey32) }, format: 'jwk' })
  return verify(null, Buffer.from(parsed.signed), publicKey, parsed.sig)
}

function ed25519Device(): { privateKeyDer: Uint8Array; seed: Uint8Array; publicKey32: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const privateKeyDer = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }))
  const jwk = publicKey.export({ format: 'jwk' })
  return { privateKeyDer, seed: privateKeyDer.slice(16), publicKey32: new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url')) }
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('signToken with hmac', () => {
  it('signs what the hub verifies with createHmac', async () => {
    const key = new Uint8Array(randomBytes(32))
    const token = await signToken({ deviceId: 'dev-1', keyType: 'hmac', key: b64url(key), expSec: 1_700_003_600 })
    const expectedSig = createHmac('sha256', key).update('v1.dev-1.1700003600').digest('base64url')
    expect(token).toBe(`v1.dev-1.1700003600.${expectedSig}`)
    const parsed = parseToken(token)
    expect(parsed).toStrictEqual({ deviceId: 'dev-1', expSec: 1_700_003_600, signed: 'v1.dev-1.1700003600', sig: new Uint8Array(Buffer.from(expectedSig, 'base64url')) })
    expect(hubVerifiesHmac(parsed!, key)).toBe(true)
    expect(hubVerifiesHmac(parsed!, new Uint8Array(randomBytes(32)))).toBe(false)
  })

  it('gives the same token for the key as bytes', async () => {
    const key = new Uint8Array(randomBytes(32))
    const fromText = await signToken({ deviceId: 'd', keyType: 'hmac', key: b64url(key), expSec: 5 })
    const fromBytes = await signToken({ deviceId: 'd', keyType: 'hmac', key, expSec: 5 })
    expect(fromBytes).toBe(fromText)
  })

  it('imports a key once and signs again from the cache', async () => {
    const importKey = vi.spyOn(globalThis.crypto.subtle, 'importKey')
    const key = b64url(randomBytes(32))
    const first = await signToken({ deviceId: 'd', keyType: 'hmac', key, expSec: 1 })
    const second = await signToken({ deviceId: 'd', keyType: 'hmac', key, expSec: 2 })
    expect(importKey).toHaveBeenCalledTimes(1)
    expect(first).not.toBe(second)
    expect(second.startsWith('v1.d.2.')).toBe(true)
  })
})

describe('signToken with ed25519', () => {
  it('signs what the hub verifies with crypto.verify and the 32-byte public key', async () => {
    const device = ed25519Device()
    const token = await signToken({ deviceId: 'sensor_9', keyType: 'ed25519', key: b64url(device.privateKeyDer), expSec: 1_700_000_000 })
    const parsed = parseToken(token)
    expect(parsed?.signed).toBe('v1.sensor_9.1700000000')
    expect(parsed?.sig.length).toBe(64)
    expect(token.length).toBe('v1.sensor_9.1700000000.'.length + 86)
    expect(hubVerifiesEd25519(parsed!, device.publicKey32)).toBe(true)
    expect(hubVerifiesEd25519(parsed!, ed25519Device().publicKey32)).toBe(false)
    const tampered = parseToken(token.replace('.1700000000.', '.1700000001.'))
    expect(hubVerifiesEd25519(tampered!, device.publicKey32)).toBe(false)
  })

  it('takes the 32-byte seed as well as PKCS#8 (Ed25519 signatures are deterministic)', async () => {
    const device = ed25519Device()
    const fromDer = await signToken({ deviceId: 'd', keyType: 'ed25519', key: device.privateKeyDer, expSec: 9 })
    const fromSeed = await signToken({ deviceId: 'd', keyType: 'ed25519', key: b64url(device.seed), expSec: 9 })
    expect(fromSeed).toBe(fromDer)
  })
})

describe('signToken refuses', () => {
  const key = b64url(new Uint8Array(32))
  it.each([
    ['a device id with a dot', { deviceId: 'a.b', keyType: 'hmac', key, expSec: 1 }, 'SDK_ERR_INVALID_OPTION', 'deviceId: expected 1 to 64 of A-Z a-z 0-9 _ -'],
    ['a negative exp', { deviceId: 'd', keyType: 'hmac', key, expSec: -1 }, 'SDK_ERR_INVALID_OPTION', 'expSec: expected Unix seconds from 0 to 999999999999, got -1'],
    ['a fractional exp', { deviceId: 'd', keyType: 'hmac', key, expSec: 1.5 }, 'SDK_ERR_INVALID_OPTION', 'expSec: expected Unix seconds from 0 to 999999999999, got 1.5'],
    ['a 13-digit exp', { deviceId: 'd', keyType: 'hmac', key, expSec: 1e12 }, 'SDK_ERR_INVALID_OPTION', 'expSec: expected Unix seconds from 0 to 999999999999, got 1000000000000'],
    ['a 31-byte hmac key', { deviceId: 'd', keyType: 'hmac', key: b64url(new Uint8Array(31)), expSec: 1 }, 'SDK_ERR_INVALID_OPTION', 'key: an hmac key is 32 bytes, got 31'],
    ['a padded key', { deviceId: 'd', keyType: 'hmac', key: `${key}=`, expSec: 1 }, 'SDK_ERR_INVALID_OPTION', 'key: expected base64url text without padding, or a Uint8Array'],
    ['a 20-byte ed25519 key', { deviceId: 'd', keyType: 'ed25519', key: new Uint8Array(20), expSec: 1 }, 'SDK_ERR_INVALID_OPTION', 'key: an ed25519 key is a PKCS#8 DER private key or a 32-byte seed, got 20 bytes'],
    ['a key type', { deviceId: 'd', keyType: 'rsa', key, expSec: 1 }, 'SDK_ERR_INVALID_OPTION', 'key: unknown key type rsa'],
    ['DER that is no PKCS#8 key', { deviceId: 'd', keyType: 'ed25519', key: Uint8Array.of(0x30, ...new Uint8Array(47)), expSec: 1 }, 'SDK_ERR_TOKEN', 'WebCrypto refused the ed25519 key'],
  ])('%s', async (_name, options, code, message) => {
    await expect(signToken(options as Parameters<typeof signToken>[0])).rejects.toMatchObject({ name: 'SdkError', code, message })
  })
})

describe('parseToken', () => {
  const sig43 = b64url(new Uint8Array(32).fill(7))
  const sig86 = b64url(new Uint8Array(64).fill(9))

  it.each([
    [`v1.dev.0.${sig43}`, 'dev', 0],
    [`v1.${'a'.repeat(64)}.999999999999.${sig86}`, 'a'.repeat(64), 999_999_999_999],
    [`v1.A-z_9.1700000000.${sig43}`, 'A-z_9', 1_700_000_000],
  ])('parses %s', (token, deviceId, expSec) => {
    const parsed = parseToken(token)
    expect(parsed).toStrictEqual({
      deviceId,
      expSec,
      signed: token.slice(0, token.lastIndexOf('.')),
      sig: base64urlDecode(token.slice(token.lastIndexOf('.') + 1)),
    })
  })

  it.each([
    ['empty', ''],
    ['one part', 'v1'],
    ['three parts', `v1.dev.${sig43}`],
    ['five parts', `v1.dev.1.${sig43}.x`],
    ['another version', `v2.dev.1.${sig43}`],
    ['upper-case version', `V1.dev.1.${sig43}`],
    ['an empty device id', `v1..1.${sig43}`],
    ['a 65-character device id', `v1.${'a'.repeat(65)}.1.${sig43}`],
    ['a device id with a space', `v1.a b.1.${sig43}`],
    ['an empty exp', `v1.dev..${sig43}`],
    ['an exp with a letter', `v1.dev.12a.${sig43}`],
    ['a negative exp', `v1.dev.-1.${sig43}`],
    ['a fractional exp', `v1.dev.1.5.${sig43}`],
    ['an exp with a leading zero', `v1.dev.01.${sig43}`],
    ['a 13-digit exp', `v1.dev.1000000000000.${sig43}`],
    ['an exp with a plus', `v1.dev.+1.${sig43}`],
    ['a 42-character sig', `v1.dev.1.${sig43.slice(1)}`],
    ['a 44-character sig', `v1.dev.1.${sig43}A`],
    ['a 64-byte sig with padding', `v1.dev.1.${sig86}==`],
    ['a sig with standard base64 characters', `v1.dev.1.${sig43.slice(0, 41)}+/`],
    ['a sig with a non-canonical last character', `v1.dev.1.${sig43.slice(0, 42)}B`],
    ['an empty sig', 'v1.dev.1.'],
    ['a token over 167 characters', `v1.${'a'.repeat(64)}.999999999999.${sig86}x`],
    ['whitespace around', ` v1.dev.1.${sig43}`],
  ])('refuses %s', (_name, token) => {
    expect(parseToken(token)).toBeUndefined()
  })

  it('refuses what is not a string', () => {
    expect(parseToken(42 as unknown as string)).toBeUndefined()
    expect(parseToken(undefined as unknown as string)).toBeUndefined()
  })
})

describe('base64url', () => {
  it('encodes and decodes like Buffer for every length from 0 to 99', () => {
    for (let length = 0; length < 100; length++) {
      const bytes = new Uint8Array(randomBytes(length))
      const text = base64urlEncode(bytes)
      expect(text).toBe(Buffer.from(bytes).toString('base64url'))
      expect(base64urlDecode(text)).toStrictEqual(bytes)
    }
  })

  it.each([
    ['AA', [0]],
    ['AAA', [0, 0]],
    ['_-8', [0xff, 0xef]],
    ['', []],
  ])('decodes %j', (text, bytes) => {
    expect(base64urlDecode(text)).toStrictEqual(Uint8Array.from(bytes))
  })

  it.each([
    ['a length of 4n+1', 'AAAAA'],
    ['padding', 'AA=='],
    ['one padding character', 'AAA='],
    ['a plus', 'A+AA'],
    ['a slash', 'A/AA'],
    ['a space', 'AA AA'],
    ['a newline', 'AAAA\n'],
    ['a non-ASCII letter', 'AAé'],
    ['unused bits set after 2 characters', 'AB'],
    ['unused bits set after 3 characters', 'AAB'],
    ['a dot', 'AA.A'],
  ])('refuses %s', (_name, text) => {
    expect(base64urlDecode(text)).toBeUndefined()
  })
})
