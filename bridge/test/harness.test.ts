import { afterEach, describe, expect, it, vi } from 'vitest'
import { freePort } from '../../test/support/ports.js'
import { startService, stopAll, tcpAnswers } from '../../test/support/service.js'

afterEach(stopAll)

// The shared harness (test/support) is used by every workspace's tests; its failure modes are part of its contract.
describe('test harness: startService', () => {
  it('a missing executable fails with how to install it', async () => {
    await expect(
      startService({ name: 'nosuchd', command: 'fleetgate-no-such-binary', args: [], ready: { port: 1 }, installHint: 'apt-get install nosuchd' }),
    ).rejects.toThrow('nosuchd is not installed (fleetgate-no-such-binary not found); install it with `apt-get install nosuchd`')
  })

  it('a process that exits early fails with its output', async () => {
    const port = await freePort()
    await expect(
      startService({ name: 'early', command: process.execPath, args: ['-e', 'console.error("bad config line 3"); process.exit(3)'], ready: { port } }),
    ).rejects.toThrow(/early exited before it was ready \(exit code 3\)[\s\S]*bad config line 3/)
  })

  it('waits for the port, and stop() ends the process (SIGKILL when SIGTERM is ignored)', async () => {
    const port = await freePort()
    const script = `
      process.on('SIGTERM', () => console.log('ignoring SIGTERM'))
      setTimeout(() => require('node:net').createServer().listen(${port}, '127.0.0.1', () => console.log('up')), 200)`
    const service = await startService({ name: 'stubborn', command: process.execPath, args: ['-e', script], ready: { port }, stopTimeoutMs: 300 })
    expect(await tcpAnswers(port)).toBe(true)
    // The port answers as soon as it listens; the line the child prints then comes through a pipe a little later.
    await vi.waitFor(() => expect(service.output()).toContain('up'))
    await service.stop()
    expect(service.exited).toBe(true)
    await vi.waitFor(() => expect(service.output()).toContain('ignoring SIGTERM'))
    expect(await tcpAnswers(port)).toBe(false)
  })

  it('misses the deadline with a clear message and leaves nothing running', async () => {
    const port = await freePort()
    const script = `require('node:net').createServer().listen(${port}, '127.0.0.1')`
    await expect(
      startService({ name: 'silent', command: process.execPath, args: ['-e', script], ready: async () => false, readyTimeoutMs: 500 }),
    ).rejects.toThrow('silent was not ready within 500 ms')
    expect(await tcpAnswers(port)).toBe(false)
  })
})
