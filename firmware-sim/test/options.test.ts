// Option parsing: every flag reaches its option with its unit, every bad value is refused with a
// SimError SIM_ERR_OPTION that names the flag.
import { describe, expect, it } from 'vitest'
import { DEFAULT_STORM_EVERY_MS, parseArgv } from '../src/cli-args.js'
import { SimError } from '../src/errors.js'
import { DEFAULT_COMMANDS, FLAGS, resolveSimOptions, type SimOptions } from '../src/options.js'
import { parseAddresses, parseDuration, parsePercent, parsePercentPerMin, parsePerSec, parseWhole } from '../src/parse.js'

const HUB = ['--hub', 'http://127.0.0.1:8080']

function run(argv: readonly string[], env: Record<string, string> = {}): SimOptions {
  const parsed = parseArgv([...HUB, ...argv], env)
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`)
  return parsed.options
}

function refusal(action: () => unknown): { code: string; option: string | undefined; message: string } {
  try {
    action()
  } catch (error) {
    if (error instanceof SimError) return { code: error.code, option: error.option, message: error.message }
    throw error
  }
  throw new Error('expected a SimError')
}

describe('parseArgv', () => {
  it('fills every default', () => {
    const options = run(['--seed', '1'])
    expect({ ...options }).toStrictEqual({
      hub: 'http://127.0.0.1:8080',
      hubs: ['http://127.0.0.1:8080'],
      token: undefined,
      devices: 10,
      prefix: 'sim-',
      provision: false,
      fleet: 'fleetgate-sim-fleet.json',
      keyType: 'hmac',
      model: 'mixed',
      rate: 1,
      batch: 1,
      durationMs: undefined,
      readings: undefined,
      connectRate: 500,
      churnPercentPerMin: 0,
      stormEveryMs: undefined,
      clockSkewMs: 0,
      badFramesPercent: 0,
      localAddresses: [],
      commandRate: 0,
      commands: DEFAULT_COMMANDS,
      commandTimeoutMs: 10_000,
      twinRate: 0,
      verify: false,
      influxUrl: undefined,
      influxDb: 'fleetgate',
      verifyTimeoutMs: 60_000,
      drainTimeoutMs: 30_000,
      json: undefined,
      jsonl: undefined,
      snapshotEveryMs: 60_000,
      statusEveryMs: undefined,
      seed: 1,
      rebootDelayMs: 2000,
    })
    expect(Object.isFrozen(options)).toBe(true)
  })

  it('takes every flag, with units', () => {
    const options = run([
      '--token=tok-123',
      '--devices', '10_000',
      '--prefix', 'bench-',
      '--provision',
      '--fleet', '/tmp/f.json',
      '--key-type', 'ed25519',
      '--model', 'tracker',
      '--rate', '0.5/s',
      '--batch', '20',
      '--duration', '1h30m',
      '--connect-rate', '250/s',
      '--churn', '5%/min',
      '--storm', '30s',
      '--clock-skew', '1500',
      '--bad-frames', '2.5%',
      '--local-address', '127.0.0.2-127.0.0.4,::1',
      '--command-rate', '600/min',
      '--commands', 'ping, reboot,bogus',
      '--command-timeout', '500ms',
      '--twin-rate', '2/s',
      '--verify',
      '--influx', 'http://127.0.0.1:8086/',
      '--influx-db', 'fg',
      '--verify-timeout', '2m',
      '--drain-timeout', '45',
      '--json', 'out.json',
      '--jsonl', 'soak.jsonl',
      '--snapshot-every', '30s',
      '--status-every', '2s',
      '--seed', '4294967295',
      '--reboot-delay', '1.5s',
    ])
    expect({ ...options }).toStrictEqual({
      hub: 'http://127.0.0.1:8080',
      hubs: ['http://127.0.0.1:8080'],
      token: 'tok-123',
      devices: 10_000,
      prefix: 'bench-',
      provision: true,
      fleet: '/tmp/f.json',
      keyType: 'ed25519',
      model: 'tracker',
      rate: 0.5,
      batch: 20,
      durationMs: 5_400_000,
      readings: undefined,
      connectRate: 250,
      churnPercentPerMin: 5,
      stormEveryMs: 30_000,
      clockSkewMs: 1500,
      badFramesPercent: 2.5,
      localAddresses: ['127.0.0.2', '127.0.0.3', '127.0.0.4', '::1'],
      commandRate: 10,
      commands: ['ping', 'reboot', 'bogus'],
      commandTimeoutMs: 500,
      twinRate: 2,
      verify: true,
      influxUrl: 'http://127.0.0.1:8086',
      influxDb: 'fg',
      verifyTimeoutMs: 120_000,
      drainTimeoutMs: 45_000,
      json: 'out.json',
      jsonl: 'soak.jsonl',
      snapshotEveryMs: 30_000,
      statusEveryMs: 2000,
      seed: 4_294_967_295,
      rebootDelayMs: 1500,
    })
  })

  it('takes --readings, --storm without a value, --quiet, and the token from $FLEETGATE_TOKEN', () => {
    const parsed = parseArgv([...HUB, '--readings', '50', '--storm', '--quiet', '--verify'], { FLEETGATE_TOKEN: 'from-env' })
    expect(parsed.kind).toBe('run')
    if (parsed.kind !== 'run') return
    expect([parsed.options.readings, parsed.options.durationMs, parsed.options.stormEveryMs, parsed.options.token, parsed.quiet]).toStrictEqual([
      50,
      undefined,
      DEFAULT_STORM_EVERY_MS,
      'from-env',
      true,
    ])
    expect(run(['--storm', '--seed', '3']).stormEveryMs).toBe(60_000)
    expect(run(['--clock-skew', '5s']).clockSkewMs).toBe(5000)
    const based = parseArgv(['--hub', 'https://hub.example/base/'], {})
    expect(based.kind === 'run' && based.options.hub).toBe('https://hub.example/base')
  })

  it('takes a list of hubs (a cluster\'s nodes): devices spread over them, REST goes to the first', () => {
    const listed = parseArgv(['--hub', 'http://10.0.0.1:8080, http://10.0.0.2:8080/,http://10.0.0.3:8080'], {})
    expect(listed.kind === 'run' && [listed.options.hub, listed.options.hubs]).toEqual([
      'http://10.0.0.1:8080',
      ['http://10.0.0.1:8080', 'http://10.0.0.2:8080', 'http://10.0.0.3:8080'],
    ])
  })

  it('answers --help and --version before anything else', () => {
    expect(parseArgv(['--help']).kind).toBe('help')
    expect(parseArgv(['--rate', 'x', '-h']).kind).toBe('help')
    expect(parseArgv(['--version']).kind).toBe('version')
  })

  const bad: ReadonlyArray<readonly [readonly string[], string, string]> = [
    [[], '--hub', '--hub: required: the hub base URL, http(s)://host:port'],
    [['--hub', 'ws://x:1'], '--hub', '--hub: expected http:// or https://, got ws:'],
    [['--hub', 'http://x:1/?a=1'], '--hub', '--hub: expected a base URL without query, fragment or credentials'],
    [['--hub', 'http://x:1,'], '--hub', '--hub: an empty URL in the list'],
    [['--hub', 'http://x:1,http://x:1/'], '--hub', '--hub: a hub is listed twice'],
    [['--devices', '0'], '--devices', '--devices: expected a whole number from 1 to 1000000, got 0'],
    [['--devices', '1.5'], '--devices', '--devices: expected a whole number, got "1.5"'],
    [['--prefix', 'a.b'], '--prefix', '--prefix: expected 0 to 57 of A-Z a-z 0-9 _ - (device ids are at most 64 characters)'],
    [['--key-type', 'rsa'], '--key-type', '--key-type: expected hmac or ed25519'],
    [['--model', 'fridge'], '--model', '--model: expected one of thermostat, meter, tracker, mixed'],
    [['--rate', 'fast'], '--rate', '--rate: expected a rate such as 200/s, 0.5/s or 600/min, got "fast"'],
    [['--rate', '1001'], '--rate', '--rate: expected a number from 0 to 1000, got 1001'],
    [['--batch', '501'], '--batch', '--batch: expected a whole number from 1 to 500, got 501'],
    [['--duration', '10 minutes'], '--duration', '--duration: expected a duration such as 500ms, 90s, 10m, 2h or 1h30m, got "10 minutes"'],
    [['--duration', '1m', '--readings', '5'], '--readings', '--readings: give --duration or --readings, not both'],
    [['--readings', '5', '--rate', '0'], '--readings', '--readings: needs a --rate above 0'],
    [['--connect-rate', '0'], '--connect-rate', '--connect-rate: expected a number from 0.001 to 1000000, got 0'],
    [['--churn', '5%/h'], '--churn', '--churn: expected a percentage per minute such as 5%/min, got "5%/h"'],
    [['--churn', '6001%/min'], '--churn', '--churn: expected a number from 0 to 6000, got 6001'],
    [['--storm', '50ms'], '--storm', '--storm: expected a number from 100 to 2592000000, got 50'],
    [['--clock-skew', '2h'], '--clock-skew', '--clock-skew: expected a number from 0 to 3600000, got 7200000'],
    [['--bad-frames', 'some'], '--bad-frames', '--bad-frames: expected a percentage such as 2% or 0.5%, got "some"'],
    [['--local-address', '127.0.0.9-127.0.0.2'], '--local-address', '--local-address: "127.0.0.9-127.0.0.2" ends before it starts'],
    [['--local-address', 'localhost'], '--local-address', '--local-address: "localhost" is not an IP address or a range a.b.c.d-a.b.c.e'],
    [['--command-rate', '5/s'], '--token', '--token: --command-rate needs an operator or admin token (--token or $FLEETGATE_TOKEN)'],
    [['--commands', 'ping,bad name'], '--commands', '--commands: expected a comma-separated list of command names (1 to 64 of A-Z a-z 0-9 _ . -)'],
    [['--command-timeout', '0'], '--command-timeout', '--command-timeout: expected a whole number from 1 to 3600000, got 0'],
    [['--provision'], '--token', '--token: --provision needs an operator or admin token (--token or $FLEETGATE_TOKEN)'],
    [['--verify'], '--token', '--token: --verify needs an operator or admin token (--token or $FLEETGATE_TOKEN)'],
    [['--influx', 'http://i:8086'], '--influx', '--influx: is where --verify looks; give --verify too'],
    [['--verify', '--influx', 'i:8086'], '--influx', '--influx: expected http(s)://host:port'],
    [['--verify', '--token', 't', '--influx-db', 'a b'], '--influx-db', '--influx-db: expected 1 to 64 of A-Z a-z 0-9 _ . -'],
    [['--snapshot-every', '10ms'], '--snapshot-every', '--snapshot-every: expected a number from 100 to 86400000, got 10'],
    [['--seed', '-1'], '--seed', '--seed: expected a whole number, got "-1"'],
    [['--seed', '4294967296'], '--seed', '--seed: expected a whole number from 0 to 4294967295, got 4294967296'],
    [['--reboot-delay', '11m'], '--reboot-delay', '--reboot-delay: expected a number from 0 to 600000, got 660000'],
    [['--rate'], '--rate', '--rate: expects a value'],
    [['--rate', '--batch', '2'], '--rate', '--rate: expects a value'],
    [['--verify=yes'], '--verify', '--verify: takes no value'],
    [['--rate', '1', '--rate', '2'], '--rate', '--rate: given twice'],
    [['--turbo'], '--turbo', '--turbo: unknown flag (see --help)'],
    [['extra'], 'extra', 'extra: unexpected argument (flags start with --)'],
  ]
  it.each(bad)('refuses %j naming %s', (argv, flag, message) => {
    const withHub = argv[0] === '--hub' || argv.length === 0 ? argv : [...HUB, ...argv]
    expect(refusal(() => parseArgv(withHub, {}))).toStrictEqual({ code: 'SIM_ERR_OPTION', option: flag, message })
  })
})

describe('resolveSimOptions', () => {
  it('refuses unknown keys and leaves the caller object alone', () => {
    expect(refusal(() => resolveSimOptions({ hub: 'http://h:1', devicez: 3 } as never))).toStrictEqual({ code: 'SIM_ERR_OPTION', option: 'devicez', message: 'devicez: unknown option' })
    const input = { hub: 'http://h:1/', devices: 3, localAddresses: ['127.0.0.1'] }
    const options = resolveSimOptions(input)
    expect(input).toStrictEqual({ hub: 'http://h:1/', devices: 3, localAddresses: ['127.0.0.1'] })
    expect(options.hub).toBe('http://h:1')
    expect(Object.isFrozen(options.localAddresses)).toBe(true)
  })

  it('names a flag for every option', () => {
    const options = resolveSimOptions({ hub: 'http://h:1' })
    expect(Object.keys(FLAGS).sort()).toStrictEqual(Object.keys(options).sort())
  })

  it('draws a seed when none is given', () => {
    const seeds = new Set(Array.from({ length: 5 }, () => resolveSimOptions({ hub: 'http://h:1' }).seed))
    expect(seeds.size).toBeGreaterThan(1)
    for (const seed of seeds) expect(Number.isSafeInteger(seed) && seed >= 0 && seed < 2 ** 32).toBe(true)
  })
})

describe('value parsers', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['45', 45_000],
  ])('duration %s = %i ms', (text, ms) => expect(parseDuration(text)).toStrictEqual({ ok: true, value: ms }))

  it.each([
    ['200/s', 200],
    ['0.5/s', 0.5],
    ['600/min', 10],
    ['3600/h', 1],
    ['12', 12],
  ])('rate %s = %d/s', (text, value) => expect(parsePerSec(text)).toStrictEqual({ ok: true, value }))

  it('percentages, whole numbers and address ranges', () => {
    expect(parsePercent('2.5%')).toStrictEqual({ ok: true, value: 2.5 })
    expect(parsePercent('101')).toStrictEqual({ ok: false, reason: 'expected at most 100%, got 101%' })
    expect(parsePercentPerMin('5%/min')).toStrictEqual({ ok: true, value: 5 })
    expect(parsePercentPerMin('5')).toStrictEqual({ ok: true, value: 5 })
    expect(parsePercentPerMin('250%/m')).toStrictEqual({ ok: true, value: 250 })
    expect(parseWhole('10_000')).toStrictEqual({ ok: true, value: 10_000 })
    expect(parseAddresses('127.0.0.254-127.0.1.1')).toStrictEqual({ ok: true, value: ['127.0.0.254', '127.0.0.255', '127.0.1.0', '127.0.1.1'] })
    expect(parseAddresses('127.0.0.2-4,127.0.0.3')).toStrictEqual({ ok: true, value: ['127.0.0.2', '127.0.0.3', '127.0.0.4'] })
    expect(parseAddresses('10.0.0.0-10.0.255.255')).toStrictEqual({ ok: false, reason: '"10.0.0.0-10.0.255.255" holds more than 4096 addresses' })
  })
})
