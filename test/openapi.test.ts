import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestHub, type TestHub } from './support/hub.js'
import { connectDevice } from './support/ws.js'

/** The parts of the served document this test reads. */
interface Document {
  openapi: string
  paths: Record<string, Record<string, { security: Array<Record<string, string[]>>; responses: Record<string, { $ref?: string; content?: Record<string, unknown> }> }>>
  components: { responses: Record<string, { content?: Record<string, unknown> }> }
}

const METHODS = ['get', 'post', 'patch', 'delete'] as const

/** A uWS pattern as an OpenAPI path template: `/devices/:id` -> `/devices/{id}`. */
const template = (pattern: string): string => pattern.replace(/:([A-Za-z]+)/g, '{$1}')

/** A JSON pointer token (RFC 6901). */
const pointer = (token: string): string => token.replace(/~/g, '~0').replace(/\//g, '~1')

describe('the OpenAPI document (GET /api/v1/openapi.json)', () => {
  let hub: TestHub
  let document: Document
  let ajv: Ajv2020

  beforeAll(async () => {
    hub = await startTestHub()
    const answer = await fetch(`${hub.base}/api/v1/openapi.json`)
    expect([answer.status, answer.headers.get('content-type')]).toEqual([200, 'application/json'])
    document = (await answer.json()) as Document
    // The document is a container of schemas: refs inside a schema resolve against it.
    ajv = new Ajv2020({ strict: false, validateFormats: false, validateSchema: false })
    ajv.addSchema(document, 'openapi.json')
  })
  afterAll(async () => {
    await hub?.stop()
  })

  it('is served without a token and is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toBe('3.1.0')
    // The validator keeps what it is given: a copy, typed as the plain object it is.
    const result = await new Validator().validate(structuredClone(document) as unknown as Record<string, unknown>)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  it('holds every route the hub registered, with its method and scope, and nothing else', () => {
    const registered = hub.hub.routes.map(({ method, pattern, scope }) => `${method} ${template(pattern)} ${scope ?? 'no token'}`).sort()
    const documented = Object.entries(document.paths)
      .flatMap(([path, item]) =>
        METHODS.filter((method) => item[method] !== undefined).map((method) => {
          const security = item[method]?.security ?? []
          const scopes = security.flatMap((requirement) => requirement['operatorToken'] ?? [])
          return `${method.toUpperCase()} ${path} ${security.length === 0 ? 'no token' : scopes.join('|')}`
        }),
      )
      .sort()
    expect(documented).toEqual(registered)
    expect(registered.length).toBeGreaterThanOrEqual(21)
  })

  /** Asserts that `body` is what the document says `method path` answers with `status`. */
  const conforms = (method: (typeof METHODS)[number], path: string, status: number, body: unknown): void => {
    const response = document.paths[path]?.[method]?.responses[String(status)]
    if (response === undefined) throw new Error(`${method.toUpperCase()} ${path} documents no ${status}`)
    const resolved = response.$ref === undefined ? response : document.components.responses[response.$ref.split('/').at(-1) ?? '']
    if (resolved?.content === undefined) {
      expect(body, `${method.toUpperCase()} ${path} ${status} has no body`).toBeUndefined()
      return
    }
    const at = response.$ref ?? `#/paths/${pointer(path)}/${method}/responses/${status}`
    const validate = ajv.compile({ $ref: `openapi.json${at}/content/application~1json/schema` })
    if (!validate(body)) throw new Error(`${method.toUpperCase()} ${path} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`)
  }

  it('describes what the hub answers: each body below validates against the schema documented for its status', async () => {
    const admin = async (method: (typeof METHODS)[number], path: string, concrete: string, body?: unknown): Promise<number> => {
      const answer = await hub.api(method.toUpperCase(), concrete, body)
      conforms(method, path, answer.status, answer.body)
      return answer.status
    }
    expect(await admin('post', '/api/v1/devices', '/api/v1/devices', { id: 'doc-1', tags: { site: 'lyon' } })).toBe(201)
    expect(await admin('post', '/api/v1/devices', '/api/v1/devices', { id: 'doc-1' })).toBe(409)
    expect(await admin('post', '/api/v1/devices', '/api/v1/devices', { id: 'doc 2' })).toBe(400)
    expect(await admin('post', '/api/v1/devices/bulk', '/api/v1/devices/bulk', { devices: [{ id: 'doc-2', keyType: 'ed25519' }, { id: 'doc-1' }, { id: '' }] })).toBe(200)
    expect(await admin('get', '/api/v1/devices', '/api/v1/devices?tag=site:lyon&limit=1')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}', '/api/v1/devices/doc-1')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}', '/api/v1/devices/nobody')).toBe(404)
    expect(await admin('patch', '/api/v1/devices/{id}', '/api/v1/devices/doc-2', { tags: { site: 'nice' } })).toBe(200)
    expect(await admin('post', '/api/v1/devices/{id}/key', '/api/v1/devices/doc-2/key', { graceSec: 60 })).toBe(200)
    expect(await admin('post', '/api/v1/devices/{id}/commands', '/api/v1/devices/doc-1/commands', { name: 'reboot', ttlMs: 0 })).toBe(409)
    expect(await admin('post', '/api/v1/devices/{id}/commands', '/api/v1/devices/doc-1/commands', { id: 'c1', name: 'reboot', params: { a: [1] }, ttlMs: 60_000 })).toBe(202)
    expect(await admin('get', '/api/v1/devices/{id}/commands/{cmdId}', '/api/v1/devices/doc-1/commands/c1')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}/commands', '/api/v1/devices/doc-1/commands?status=queued')).toBe(200)
    expect(await admin('post', '/api/v1/commands', '/api/v1/commands', { target: { tags: { site: 'lyon' } }, name: 'ping', ttlMs: 0 })).toBe(202)
    const batch = (await hub.api('POST', '/api/v1/commands', { target: { ids: ['doc-1'] }, name: 'ping' })).body.batch as string
    expect(await admin('get', '/api/v1/commands/{batch}', `/api/v1/commands/${batch}`)).toBe(200)
    expect(await admin('get', '/api/v1/audit', '/api/v1/audit?limit=5')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}/telemetry', '/api/v1/devices/doc-1/telemetry')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}/telemetry', '/api/v1/devices/doc-1/telemetry?every=1h&fn=max')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}/telemetry', '/api/v1/devices/doc-1/telemetry?fn=max')).toBe(400)
    expect(await admin('get', '/api/v1/events', '/api/v1/events?type=weather')).toBe(400)
    expect(await admin('get', '/api/v1/devices/{id}/twin', '/api/v1/devices/doc-1/twin')).toBe(200)
    expect(await admin('get', '/api/v1/devices/{id}/twin', '/api/v1/devices/nobody/twin')).toBe(404)
    expect(await admin('patch', '/api/v1/devices/{id}/twin', '/api/v1/devices/doc-1/twin', { desired: { setpoint: 19, fan: { speed: 2 } }, ifVersion: 0 })).toBe(200)
    expect(await admin('patch', '/api/v1/devices/{id}/twin', '/api/v1/devices/doc-1/twin', { desired: { fan: null }, ifVersion: 0 })).toBe(409)
    expect(await admin('patch', '/api/v1/devices/{id}/twin', '/api/v1/devices/doc-1/twin', { desired: { big: 'x'.repeat(40_000) } })).toBe(413)
    expect(await admin('patch', '/api/v1/devices/{id}/twin', '/api/v1/devices/doc-1/twin', { desired: { $set: 1 } })).toBe(400)
    expect(await admin('patch', '/api/v1/devices/{id}/twin', '/api/v1/devices/nobody/twin', { desired: {} })).toBe(404)
    expect(await admin('get', '/readyz', '/readyz')).toBe(200)
    expect(await admin('get', '/api/v1/healthz', '/api/v1/healthz')).toBe(200)
    // a command to an online device, answered
    const device = await connectDevice(hub.wsUrl, await hub.provision('doc-3'))
    device.ws.on('message', () => undefined)
    const answered = hub.api('POST', '/api/v1/devices/doc-3/commands', { name: 'reboot', timeoutMs: 50 })
    const { status, body } = await answered
    conforms('post', '/api/v1/devices/{id}/commands', status, body)
    expect([status, body.status]).toEqual([504, 'timeout'])
    device.close()
    expect(await admin('delete', '/api/v1/devices/{id}', '/api/v1/devices/doc-2')).toBe(204)
    const refused = await hub.api('GET', '/api/v1/devices', undefined, 'not-a-token')
    conforms('get', '/api/v1/devices', refused.status, refused.body)
    expect(refused.status).toBe(401)
    // and the check bites: a body the document does not describe fails it
    expect(() => conforms('get', '/api/v1/devices/{id}', 200, { id: 'doc-1', keyType: 'hmac', tags: {}, disabled: false, createdAt: 'x' })).toThrow(/online/)
    expect(() => conforms('get', '/api/v1/devices/{id}', 404, { error: 'exists', message: '' })).toThrow(/allowed values/)
  })
})
