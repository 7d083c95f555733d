import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'

describe('configuration (docs/configuration.md)', () => {
  it.each([
    ['nothing set: no InfluxDB, the history on with its defaults', {}, undefined, { retentionMs: 7 * 86_400_000, maxBytes: 1_073_741_824 }],
    ['FLEETGATE_INFLUX_URL=off: the same', { FLEETGATE_INFLUX_URL: 'off' }, undefined, { retentionMs: 7 * 86_400_000, maxBytes: 1_073_741_824 }],
    ['InfluxDB set: the history off', { FLEETGATE_INFLUX_URL: 'http://influx:8086/' }, 'http://influx:8086', undefined],
    ['PostgreSQL set: the history off', { FLEETGATE_POSTGRES_URL: 'postgres://db/fleet', FLEETGATE_MQTT_UPLINK: 'mqtt://u:p@broker:1883' }, undefined, undefined],
    ['InfluxDB and the history on, bounds given', { FLEETGATE_INFLUX_URL: 'http://influx:8086', FLEETGATE_HISTORY: 'on', FLEETGATE_HISTORY_RETENTION: '36h', FLEETGATE_HISTORY_MAX_BYTES: '2097152' }, 'http://influx:8086', { retentionMs: 36 * 3_600_000, maxBytes: 2_097_152 }],
    ['the history off by choice', { FLEETGATE_HISTORY: 'off' }, undefined, undefined],
  ])('%s', (_name, env, influxUrl, history) => {
    const config = loadConfig(env)
    expect(config.influxUrl).toBe(influxUrl)
    expect(config.history).toEqual(history)
  })
})
