import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { get as httpsGet } from 'node:https'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ADMIN_TOKEN, HUB_MAIN, api, stopHubProcess, testEnv, type HubProcess, HubProcesses } from './support/hub.js'
import { connectDevice } from './support/ws.js'

describe('the hub process (docs/configuration.md)', () => {
  const hubs = new HubProcesses()
  const dir = (): string => hubs.dir()
  const start = (env: Record<string, string>): Promise<HubProcess> => hubs.start(env)
  afterEach(async () => {
    await hubs.cleanup()
  })

  it('logs "listening" with the bound ports, and on SIGTERM closes sessions with 1001 and exits 0', async () => {
    const hub = await start(testEnv(dir(), { FLEETGATE_LOG_LEVEL: 'info' }))
    const listening = hub.logs.find((entry) => entry['msg'] === 'listening')
    expect(listening?.['http']).toBe(hub.ports.http)
    expect(hub.ports.http).toBeGreaterThan(0)

    const created = await api(hub.base, 'POST', '/api/v1/devices', { id: 'stays' })
    const device = await connectDevice(hub.wsUrl, { deviceId: 'stays', keyType: 'hmac', key: created.body.key })
    await device.opening()
    const started = Date.now()
    hub.child.kill('SIGTERM')
    expect(await device.closed).toEqual({ code: 1001, reason: 'hub shutting down' })
    expect(await hub.exited).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('exits 0 on SIGTERM within 10 s while InfluxDB is away and telemetry waits in the spool', async () => {
    const hub = await start(testEnv(dir(), { FLEETGATE_INFLUX_URL: 'http://127.0.0.1:9' }))
    const created = await api(hub.base, 'POST', '/api/v1/devices', { id: 'waiting' })
    const device = await connectDevice(hub.wsUrl, { deviceId: 'waiting', keyType: 'hmac', key: created.body.key })
    await device.opening()
    for (let s = 1; s <= 50; s++) device.send({ t: 'tm', s, ts: 1_700_000_000_000 + s, m: { v: s } })
    await device.untilAck(50)
    // Let the shipper fail a few times and back off.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const started = Date.now()
    hub.child.kill('SIGTERM')
    expect(await hub.exited).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('keeps the registry across a SIGKILL', async () => {
    const dataDir = dir()
    const first = await start(testEnv(dataDir))
    const created = await api(first.base, 'POST', '/api/v1/devices', { id: 'durable', tags: { a: 'b' } })
    expect(created.status).toBe(201)
    await stopHubProcess(first, 'SIGKILL')
    const second = await start(testEnv(dataDir))
    const fetched = await api(second.base, 'GET', '/api/v1/devices/durable')
    expect(fetched.body).toMatchObject({ id: 'durable', tags: { a: 'b' }, disabled: false })
    const device = await connectDevice(second.wsUrl, { deviceId: 'durable', keyType: 'hmac', key: created.body.key })
    expect(await device.next()).toMatchObject({ t: 'hello', dev: 'durable' })
    device.close()
  })

  it('generates an admin token on first start, logs it once and keeps it 0600', async () => {
    const dataDir = dir()
    const { FLEETGATE_ADMIN_TOKEN: _fixed, ...env } = testEnv(dataDir)
    const first = await start(env)
    const generated = first.logs.find((entry) => typeof entry['generatedAdminToken'] === 'string')
    const token = generated?.['generatedAdminToken'] as string
    expect(token).toMatch(/^fga_[A-Za-z0-9_-]{43}$/)
    const path = join(dataDir, 'admin-token')
    expect(readFileSync(path, 'utf8').trim()).toBe(token)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect((await api(first.base, 'GET', '/api/v1/devices', undefined, token)).status).toBe(200)
    await stopHubProcess(first, 'SIGTERM')

    const second = await start(env)
    expect(second.logs.some((entry) => 'generatedAdminToken' in entry)).toBe(false)
    expect((await api(second.base, 'GET', '/api/v1/devices', undefined, token)).status).toBe(200)
    expect((await api(second.base, 'GET', '/api/v1/devices', undefined, ADMIN_TOKEN)).status).toBe(401)
  })

  it.each([
    ['FLEETGATE_PORT', 'eighty', 'FLEETGATE_PORT="eighty" is invalid: FLEETGATE_PORT accepts a whole number from 0 to 65535'],
    ['FLEETGATE_PORT', '70000', 'FLEETGATE_PORT="70000" is invalid: FLEETGATE_PORT accepts a whole number from 0 to 65535'],
    ['FLEETGATE_MQTT_FORMAT', 'xml', 'FLEETGATE_MQTT_FORMAT="xml" is invalid: FLEETGATE_MQTT_FORMAT accepts "json" or "cbor"'],
    ['FLEETGATE_INFLUX_URL', 'influx:8086', 'FLEETGATE_INFLUX_URL="influx:8086" is invalid: FLEETGATE_INFLUX_URL accepts an http:// or https:// URL, or "off"'],
    ['FLEETGATE_HISTORY', 'yes', 'FLEETGATE_HISTORY="yes" is invalid: FLEETGATE_HISTORY accepts "on" or "off"'],
    ['FLEETGATE_HISTORY_RETENTION', '7 days', 'FLEETGATE_HISTORY_RETENTION="7 days" is invalid: FLEETGATE_HISTORY_RETENTION accepts a duration from 1s to 3650d: a whole number and one of s, m, h, d (e.g. 7d)'],
    ['FLEETGATE_HISTORY_RETENTION', '3651d', 'FLEETGATE_HISTORY_RETENTION="3651d" is invalid: FLEETGATE_HISTORY_RETENTION accepts a duration from 1s to 3650d: a whole number and one of s, m, h, d (e.g. 7d)'],
    ['FLEETGATE_HISTORY_MAX_BYTES', '1000', 'FLEETGATE_HISTORY_MAX_BYTES="1000" is invalid: FLEETGATE_HISTORY_MAX_BYTES accepts a whole number from 1048576 to 9007199254740991'],
    ['FLEETGATE_DEVICE_RATE', '0', 'FLEETGATE_DEVICE_RATE="0" is invalid: FLEETGATE_DEVICE_RATE accepts a whole number from 1 to 1000000'],
    ['FLEETGATE_TLS_CERT', '/nonexistent.pem', 'FLEETGATE_TLS_KEY="" is invalid: FLEETGATE_TLS_KEY accepts a PEM file path, set together with FLEETGATE_TLS_CERT and FLEETGATE_TLS_KEY'],
    ['FLEETGATE_TOKENS_FILE', '/nonexistent.json', 'FLEETGATE_TOKENS_FILE=/nonexistent.json: cannot be read as JSON'],
    ['FLEETGATE_MQTT_MAX_PACKET', '100', 'FLEETGATE_MQTT_MAX_PACKET="100" is invalid: FLEETGATE_MQTT_MAX_PACKET accepts a whole number from 1024 to 268435455'],
    ['FLEETGATE_MQTT_SOFT_BACKLOG', '100000000', 'FLEETGATE_MQTT_SOFT_BACKLOG="100000000" is invalid: FLEETGATE_MQTT_SOFT_BACKLOG accepts a whole number from 16384 to 67108864'],
    ['FLEETGATE_NODE_ID', 'node 1', 'FLEETGATE_NODE_ID="node 1" is invalid: FLEETGATE_NODE_ID accepts 1 to 64 of A-Z a-z 0-9 _ . -'],
    // The password never reaches the message.
    ['FLEETGATE_POSTGRES_URL', 'mysql://fleet:s3cret@db:5432/fleet', 'FLEETGATE_POSTGRES_URL="mysql://fleet:***@db:5432/fleet" is invalid: FLEETGATE_POSTGRES_URL accepts a postgres://user:password@host:port/database URL (or postgresql://)'],
    ['FLEETGATE_POSTGRES_URL', 'postgres://fleet:s3cret@db:5432/fleet', 'FLEETGATE_MQTT_UPLINK is required when FLEETGATE_POSTGRES_URL is set (cluster mode, docs/cluster.md): FLEETGATE_MQTT_UPLINK accepts the mqtt://user:pass@host:port of the MQTT broker that every node shares'],
  ])('exits non-zero at once when %s=%s, naming the variable', (name, value, message) => {
    const result = spawnSync(process.execPath, [HUB_MAIN], {
      env: { PATH: process.env['PATH'] ?? '', ...testEnv(dir(), { [name]: value }) },
      encoding: 'utf8',
      timeout: 10_000,
    })
    expect(result.status).toBe(1)
    expect(result.stderr).toContain(message)
    expect(result.stderr).not.toContain('s3cret')
  })

  it('refuses to run on the ws emulation when the native uWebSockets.js does not load', () => {
    const result = spawnSync(process.execPath, [HUB_MAIN], {
      env: { PATH: process.env['PATH'] ?? '', UWS_USE_FALLBACK: '1', ...testEnv(dir()) },
      encoding: 'utf8',
      timeout: 10_000,
    })
    expect(result.status).toBe(1)
    expect(result.stderr).toContain('HUB_ERR_UWS_FALLBACK: uWebSockets.js native binary did not load')
    expect(result.stdout).not.toContain('"listening"')
  })

  it('speaks TLS (https and wss) with FLEETGATE_TLS_CERT and FLEETGATE_TLS_KEY', async () => {
    const dataDir = dir()
    const cert = join(dataDir, 'cert.pem')
    const key = join(dataDir, 'key.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' })
    const hub = await start(testEnv(dataDir, { FLEETGATE_TLS_CERT: cert, FLEETGATE_TLS_KEY: key }))
    const ca = readFileSync(cert)
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      httpsGet(`https://127.0.0.1:${hub.ports.http}/healthz`, { ca }, (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      }).on('error', reject)
    })
    expect(body).toEqual({ status: 200, text: '{"status":"ok"}' })
    // Without the certificate the client refuses the hub: the listener really is TLS.
    await expect(fetch(`https://127.0.0.1:${hub.ports.http}/healthz`)).rejects.toThrow()

    const created = await api(`https://127.0.0.1:${hub.ports.http}`, 'POST', '/api/v1/devices', { id: 'tls-dev' }, ADMIN_TOKEN, { ca })
    expect(created.status).toBe(201)
    const device = await connectDevice(`wss://127.0.0.1:${hub.ports.http}/v1/connect`, { deviceId: 'tls-dev', keyType: 'hmac', key: created.body.key }, { ca })
    expect(await device.next()).toMatchObject({ t: 'hello', dev: 'tls-dev' })
    device.close()
  })
})
