import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { assertHubServes, Witness } from '../support/hostile.js'
import { ADMIN_TOKEN, api, HubProcesses, testEnv, type HubProcess } from '../support/hub.js'

/** Waits until the hub process has logged `count` lines whose `msg` is `msg`, or fails after `timeoutMs`. */
async function logged(hub: HubProcess, msg: string, count: number, timeoutMs = 5000): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const lines = hub.logs.filter((entry) => entry['msg'] === msg)
    if (lines.length >= count || Date.now() > deadline) return lines
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('the hub process survives what reaches its HTTP side', () => {
  const hubs = new HubProcesses()
  afterEach(async () => {
    await hubs.cleanup()
  })

  const startWithWitness = async (options: { execArgv?: string[] } = {}): Promise<{ hub: HubProcess; witness: Witness }> => {
    const hub = await hubs.start(testEnv(hubs.dir()), options)
    const created = await api(hub.base, 'POST', '/api/v1/devices', { id: 'witness' })
    const witness = await Witness.connect(hub.wsUrl, { deviceId: 'witness', keyType: 'hmac', key: created.body.key as string })
    await witness.ping()
    return { hub, witness }
  }

  it('answers malformed percent-escapes in a path, with or without a token, and keeps every device session', async () => {
    const { hub, witness } = await startWithWitness()
    try {
      // Each of these ended the process with a URIError thrown inside a uWS callback.
      const anonymous = await fetch(`${hub.base}/api/v1/devices/%E0%A4%A`)
      expect(anonymous.status).toBe(401)
      expect(await api(hub.base, 'GET', '/api/v1/devices/x/commands/%')).toEqual({
        status: 400,
        body: { error: 'invalid', message: 'path: a malformed percent-escape (RFC 3986 §2.1)' },
      })
      await assertHubServes(hub.base, witness)
      expect(hub.child.exitCode).toBe(null)
    } finally {
      witness.close()
    }
  })

  it('logs, counts and outlives an uncaught exception and an unhandled rejection that escape every guard', async () => {
    // A preload that, on SIGUSR2, throws from a timer and rejects a promise nobody awaits: what a
    // bug in code outside the uWS callbacks would do.
    const preload = join(hubs.dir(), 'escape.mjs')
    writeFileSync(
      preload,
      `process.on('SIGUSR2', () => {
        setImmediate(() => { throw new Error('injected uncaught exception') })
        Promise.reject(new Error('injected unhandled rejection'))
      })\n`,
    )
    const { hub, witness } = await startWithWitness({ execArgv: ['--import', preload] })
    try {
      hub.child.kill('SIGUSR2')
      const lines = await logged(hub, 'uncaught error; the hub keeps serving', 2)
      expect(lines.map((line) => [line['where'], line['origin'], (line['err'] as { message: string }).message]).sort()).toEqual([
        ['process', 'uncaughtException', 'injected uncaught exception'],
        ['process', 'unhandledRejection', 'injected unhandled rejection'],
      ])
      expect(lines.every((line) => String((line['err'] as { stack: string }).stack).includes('escape.mjs'))).toBe(true)
      await assertHubServes(hub.base, witness)
      const metrics = await fetch(`${hub.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
      const text = await metrics.text()
      expect(text).toMatch(/^fleetgate_uncaught_errors_total\{where="process"\} 2$/m)
      expect(text).toMatch(/^fleetgate_uncaught_errors_total\{where="http"\} 0$/m)
      expect(hub.child.exitCode).toBe(null)
    } finally {
      witness.close()
    }
  })
})
