// The pieces every part of the OpenAPI document is made of: the types of an operation, references
// to shared schemas and answers, and the answers every route with a token or a body can give.
import type { JsonValue } from '@fleetgate/device-sdk'
import type { Scope } from '../../auth/index.js'

/** A JSON Schema (2020-12, the dialect of OpenAPI 3.1) or any other JSON part of the document. */
export type Json = JsonValue

/** One answer of an operation: what it means and, when it has a body, its schema by media type. */
export interface ResponseObject {
  readonly description: string
  readonly content?: Readonly<Record<string, { readonly schema: Json }>>
}

/** An answer, or a reference to one of `components.responses`. */
export type Response = ResponseObject | { readonly $ref: string }

/** One operation (a method on a path). */
export interface Operation {
  readonly operationId: string
  readonly summary: string
  readonly description?: string
  readonly tags: readonly string[]
  /** `[]` for a route that takes no token; else the one scope its token needs, as a role of `operatorToken`. */
  readonly security: ReadonlyArray<{ readonly operatorToken: readonly Scope[] }>
  readonly parameters?: readonly Json[]
  readonly requestBody?: { readonly required: boolean; readonly content: Readonly<Record<string, { readonly schema: Json }>> }
  readonly responses: Readonly<Record<string, Response>>
}

/** The operations of one path, by lower-case method. */
export type PathItem = Partial<Record<'get' | 'post' | 'patch' | 'delete', Operation>>

/** Paths by their OpenAPI template (`/api/v1/devices/{id}`). */
export type Paths = Readonly<Record<string, PathItem>>

/** A reference to a schema of `components.schemas`, with keywords of its own beside it (JSON Schema 2020-12 allows them). */
export const schema = (name: string, beside: Readonly<Record<string, Json>> = {}): Json => ({ $ref: `#/components/schemas/${name}`, ...beside })

/** A reference to an answer of `components.responses`. */
export const answer = (name: string): Response => ({ $ref: `#/components/responses/${name}` })

/** A JSON body (request or answer) of the given schema. */
export const json = (body: Json): Readonly<Record<string, { readonly schema: Json }>> => ({ 'application/json': { schema: body } })

/** An answer with a JSON body. */
export const jsonAnswer = (description: string, body: Json): ResponseObject => ({ description, content: json(body) })

/** The security requirement of a route that needs `scope`. */
export const needs = (scope: Scope): Operation['security'] => [{ operatorToken: [scope] }]

/** A required path parameter. */
export const pathParameter = (name: string, description: string, pattern?: string): Json => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: pattern === undefined ? { type: 'string' } : { type: 'string', pattern },
})

/** An optional query parameter. */
export const queryParameter = (name: string, description: string, parameterSchema: Json): Json => ({ name, in: 'query', required: false, description, schema: parameterSchema })

/** The answers of every route that takes a token: no token, too low a scope, a throttled address, a fault, storage that does not answer. */
export const TOKEN_ANSWERS: Readonly<Record<string, Response>> = {
  '401': answer('Unauthorized'),
  '403': answer('Forbidden'),
  '429': answer('TooManyRequests'),
  '500': answer('Internal'),
  '503': answer('StorageUnavailable'),
}

/** The answers of every route that reads a JSON body, beyond its own 400s. */
export const BODY_ANSWERS: Readonly<Record<string, Response>> = {
  '413': answer('PayloadTooLarge'),
}
