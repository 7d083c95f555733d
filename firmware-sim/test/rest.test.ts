import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { restRepeatable } from '../src/rest.js'

/** A loopback HTTP server that answers its n-th request (from 0) with `answer(n, request, response)`; it records each request's body. */
async function serve(answer: (n: number, request: IncomingMessage, response: ServerResponse) => void): Promise<{ base: string; bodies: string[]; server: Server }> {
  const bodies: string[] = []
  const server = createServer((request, response) => {
    let body = ''
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')))
    request.on('end', () => {
      bodies.push(body)
      answer(bodies.length - 1, request, response)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, server }
}

describe('restRepeatable', () => {
  let server: Server | undefined
  afterEach(async () => {
    const open = server
    server = undefined
    if (open === undefined) return
    open.closeAllConnections()
    await new Promise((resolve) => open.close(resolve))
  })

  it('makes the same call again after no answer and after a 502 or 503, and returns the first other answer', async () => {
    const served = await serve((n, request, response) => {
      // A node killed mid-call: the connection closes without an answer.
      if (n === 0) request.socket.destroy()
      else if (n === 1) response.writeHead(502).end()
      else if (n === 2) response.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"not_ready"}')
      else response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"succeeded"}')
    })
    server = served.server
    let repeats = 0
    const answer = await restRepeatable(served.base, 't', 'POST', '/api/v1/devices/d/commands', { id: 'c-1', name: 'ping' }, 20_000, () => repeats++)
    expect(answer).toEqual({ status: 200, body: { status: 'succeeded' } })
    expect(repeats).toBe(3)
    expect(served.bodies).toEqual(Array(4).fill('{"id":"c-1","name":"ping"}'))
  })

  it('returns any other answer at once, errors included', async () => {
    const served = await serve((_n, _request, response) => response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal"}'))
    server = served.server
    let repeats = 0
    expect(await restRepeatable(served.base, 't', 'PATCH', '/api/v1/devices/d/twin', { desired: {} }, 20_000, () => repeats++)).toEqual({ status: 500, body: { error: 'internal' } })
    expect([repeats, served.bodies.length]).toEqual([0, 1])
  })

  it('stops repeating when the time is up: the last 503 stands, and a hub that never answers is an error', async () => {
    const busy = await serve((_n, _request, response) => response.writeHead(503).end())
    server = busy.server
    let repeats = 0
    expect((await restRepeatable(busy.base, 't', 'PATCH', '/x', {}, 1200, () => repeats++)).status).toBe(503)
    // Pauses of 250 and 500 ms fit in 1.2 s; the next (1 s) does not.
    expect([repeats, busy.bodies.length]).toEqual([2, 3])

    server.closeAllConnections()
    await new Promise((resolve) => busy.server.close(resolve))
    server = undefined
    await expect(restRepeatable(busy.base, 't', 'POST', '/x', {}, 600, () => undefined)).rejects.toMatchObject({ code: 'SIM_ERR_HUB' })
  })
})
