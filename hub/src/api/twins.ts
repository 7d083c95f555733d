import { MAX_TWIN_BYTES, twinPatchProblem, type TwinDocument } from '@fleetgate/device-sdk/wire'
import type { Twins } from '../twins/index.js'
import { apiError, deviceNotFound, invalid, type Router } from '../transport/index.js'
import { asObject, checkInteger, onlyKeys } from '../validate.js'

/** What the twin API needs. */
export interface TwinsApiDeps {
  readonly twins: Twins
}

/** Registers the twin routes of docs/twins.md: read (reader), change desired (operator). */
export function registerTwinRoutes(router: Router, deps: TwinsApiDeps): void {
  const { twins } = deps

  router.route('get', '/api/v1/devices/:id/twin', { scope: 'reader', body: 'none' }, async ({ params }) => {
    const id = params[0] ?? ''
    const twin = await twins.view(id)
    return twin === undefined ? deviceNotFound(id) : { status: 200, body: twin }
  })

  router.route('patch', '/api/v1/devices/:id/twin', { scope: 'operator', body: 'required' }, async ({ params, body, operator }) => {
    const id = params[0] ?? ''
    const object = asObject(body)
    if (object === undefined) return invalid('body: an object {desired, ifVersion?}')
    const keys = onlyKeys(object, ['desired', 'ifVersion'], 'body')
    if (!keys.ok) return invalid(keys.message)
    // docs/twins.md: a merge patch of the desired document, by the document rules
    const problem = object['desired'] === undefined ? ': required, a merge patch (a JSON object)' : twinPatchProblem(object['desired'])
    if (problem !== undefined) return invalid(`desired${problem}`)
    const ifVersion = object['ifVersion'] === undefined ? undefined : checkInteger(object['ifVersion'], 'ifVersion', 0, Number.MAX_SAFE_INTEGER, 0)
    if (ifVersion !== undefined && !ifVersion.ok) return invalid(ifVersion.message)
    const outcome = await twins.changeDesired(id, object['desired'] as TwinDocument, ifVersion?.value, operator?.name ?? 'unknown')
    switch (outcome.kind) {
      case 'not_found':
        return deviceNotFound(id)
      case 'version_conflict':
        return apiError(409, 'version_conflict', `ifVersion ${String(ifVersion?.value)} is not the current desired version ${outcome.desiredVersion}`)
      case 'too_large':
        return apiError(413, 'too_large', `the desired document would be ${outcome.bytes} bytes as compact JSON, more than ${MAX_TWIN_BYTES}`)
      case 'changed':
      case 'unchanged':
        return { status: 200, body: outcome.twin }
    }
  })
}
