// argv -> SimOptionsInput -> SimOptions. Every flag takes `--flag value` or `--flag=value`;
// errors name the flag (SimError SIM_ERR_OPTION).
import { optionError } from './errors.js'
import { FLAGS, resolveSimOptions, type SimOptions, type SimOptionsInput } from './options.js'
import {
  parseAddresses,
  parseDuration,
  parsePercent,
  parsePercentPerMin,
  parsePerSec,
  parseWhole,
  type Parsed,
} from './parse.js'

/** What the command line asks for. */
export type ParsedArgs = { readonly kind: 'help' } | { readonly kind: 'version' } | { readonly kind: 'run'; readonly options: SimOptions; readonly quiet: boolean }

/** The interval of `--storm` given without a value. */
export const DEFAULT_STORM_EVERY_MS = 60_000

type Kind = 'text' | 'whole' | 'duration' | 'ms' | 'perSec' | 'percent' | 'percentPerMin' | 'addresses' | 'list' | 'flag' | 'flagOrDuration'

// flag -> [option key, kind]
const SPEC: ReadonlyMap<string, readonly [keyof SimOptionsInput, Kind]> = new Map([
  ['--hub', ['hub', 'text']],
  ['--token', ['token', 'text']],
  ['--devices', ['devices', 'whole']],
  ['--prefix', ['prefix', 'text']],
  ['--provision', ['provision', 'flag']],
  ['--fleet', ['fleet', 'text']],
  ['--key-type', ['keyType', 'text']],
  ['--model', ['model', 'text']],
  ['--rate', ['rate', 'perSec']],
  ['--batch', ['batch', 'whole']],
  ['--duration', ['durationMs', 'duration']],
  ['--readings', ['readings', 'whole']],
  ['--connect-rate', ['connectRate', 'perSec']],
  ['--churn', ['churnPercentPerMin', 'percentPerMin']],
  ['--storm', ['stormEveryMs', 'flagOrDuration']],
  ['--clock-skew', ['clockSkewMs', 'ms']],
  ['--bad-frames', ['badFramesPercent', 'percent']],
  ['--local-address', ['localAddresses', 'addresses']],
  ['--command-rate', ['commandRate', 'perSec']],
  ['--commands', ['commands', 'list']],
  ['--command-timeout', ['commandTimeoutMs', 'duration']],
  ['--twin-rate', ['twinRate', 'perSec']],
  ['--verify', ['verify', 'flag']],
  ['--influx', ['influxUrl', 'text']],
  ['--influx-db', ['influxDb', 'text']],
  ['--verify-timeout', ['verifyTimeoutMs', 'duration']],
  ['--drain-timeout', ['drainTimeoutMs', 'duration']],
  ['--json', ['json', 'text']],
  ['--jsonl', ['jsonl', 'text']],
  ['--snapshot-every', ['snapshotEveryMs', 'duration']],
  ['--status-every', ['statusEveryMs', 'duration']],
  ['--seed', ['seed', 'whole']],
  ['--reboot-delay', ['rebootDelayMs', 'duration']],
])

/** Parses the arguments after `fleetgate-sim`; `env` gives `FLEETGATE_TOKEN` when --token is absent. */
export function parseArgv(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): ParsedArgs {
  // help wins wherever it stands, even after a bad value
  if (argv.includes('--help') || argv.includes('-h')) return { kind: 'help' }
  if (argv.includes('--version')) return { kind: 'version' }
  const input: Record<string, unknown> = {}
  let quiet = false
  const seen = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--quiet' || arg === '-q') {
      quiet = true
      continue
    }
    const eq = arg.indexOf('=')
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    const spec = SPEC.get(flag)
    if (spec === undefined) optionError(flag, arg.startsWith('-') ? 'unknown flag (see --help)' : 'unexpected argument (flags start with --)')
    if (seen.has(flag)) optionError(flag, 'given twice')
    seen.add(flag)
    const [key, kind] = spec
    let text: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined
    if (kind === 'flag') {
      if (text !== undefined) optionError(flag, 'takes no value')
      input[key] = true
      continue
    }
    if (text === undefined) {
      const next = argv[i + 1]
      if (kind === 'flagOrDuration' && (next === undefined || next.startsWith('--'))) {
        input[key] = DEFAULT_STORM_EVERY_MS
        continue
      }
      if (next === undefined || (next.startsWith('--') && next.length > 2)) optionError(flag, 'expects a value')
      text = next
      i++
    }
    input[key] = convert(flag, kind, text)
  }
  if (input['token'] === undefined && env['FLEETGATE_TOKEN'] !== undefined && env['FLEETGATE_TOKEN'] !== '') input['token'] = env['FLEETGATE_TOKEN']
  if (input['hub'] === undefined) optionError(FLAGS.hub, 'required: the hub base URL, http(s)://host:port')
  return { kind: 'run', options: resolveSimOptions(input as unknown as SimOptionsInput), quiet }
}

function convert(flag: string, kind: Exclude<Kind, 'flag'>, text: string): unknown {
  const take = <T>(parsed: Parsed<T>): T => (parsed.ok ? parsed.value : optionError(flag, parsed.reason))
  switch (kind) {
    case 'text':
      return text
    case 'whole':
      return take(parseWhole(text))
    case 'duration':
    case 'flagOrDuration':
      return take(parseDuration(text))
    case 'ms':
      // a bare number is milliseconds here (`--clock-skew 1500`)
      return /^\s*\d+(?:\.\d+)?\s*$/.test(text) ? Number(text) : take(parseDuration(text))
    case 'perSec':
      return take(parsePerSec(text))
    case 'percent':
      return take(parsePercent(text))
    case 'percentPerMin':
      return take(parsePercentPerMin(text))
    case 'addresses':
      return take(parseAddresses(text))
    case 'list':
      return text.split(',').map((item) => item.trim())
  }
}

/** The text of `fleetgate-sim --help`. */
export const USAGE = `fleetgate-sim: a fleet of simulated devices, each a real device-SDK session with the hub.

usage: fleetgate-sim --hub URL [options]

hub and fleet
  --hub URL[,URL...]      hub base URL, http(s)://host:port (devices connect to ws(s)://host:port/v1/connect):
                          a hub or a balancer in front of a cluster; with a list of a cluster's nodes, device i
                          connects to the i-th mod n, and REST calls go to the first
  --token T               operator or admin token (default $FLEETGATE_TOKEN): --provision needs admin,
                          --command-rate and --twin-rate operator, --verify reader
  --devices N             simulated devices (default 10)
  --prefix P              device id prefix; ids are P + 6 digits, sim-000001 (default sim-)
  --provision             create the devices missing from the fleet file (POST /devices/bulk)
  --fleet FILE            device ids and keys, mode 0600, reused by later runs (default fleetgate-sim-fleet.json)
  --key-type hmac|ed25519 key type of created devices (default hmac)
  --model M               thermostat, meter, tracker or mixed (default mixed)

telemetry
  --rate R                readings per second per device, fractions allowed, 0 for none (default 1)
  --batch K               readings per frame (default 1)
  --duration D            send for D (90s, 10m, 2h), counted from the start
  --readings N            send N readings per device, then stop
                          (neither: run until Ctrl-C, then drain and report)
  --connect-rate N/s      devices started per second during the ramp-up (default 500/s)

chaos
  --churn P%/min          cut P% of the connected devices' connections per minute, at random
  --storm [EVERY]         cut every device's connection at once, every EVERY (default 60s)
  --clock-skew MS         each device's clock is off by up to +/-MS ms (or 5s; at most 1h)
  --bad-frames P%         after P% of frames, also send an invalid frame the hub must nak
  --local-address RANGE   source addresses, e.g. 127.0.0.2-127.0.0.40 or a,b,c (more ephemeral ports)

commands
  --command-rate N/s      send N commands per second through REST to random connected devices
  --commands LIST         names to draw from (default ping,get_config,set_setpoint,set_relay; also
                          set_interval, reboot, or any unknown name, which devices answer unknown_command)
  --command-timeout D     each command's timeoutMs (default 10s)
  --reboot-delay D        how long a rebooted device stays away without a delayMs param (default 2s)

twins
  --twin-rate N/s         change N desired twins per second through REST, on random devices, connected
                          or not; devices apply the settings their model takes (thermostat setpoint,
                          meter intervalMs or relay, tracker mode) and report what they applied

checks and output
  --verify                after draining, compare each device's stored points with its acked readings
                          and, with --twin-rate, check every changed twin converged (delta {})
  --influx URL            verify against InfluxDB 1.x directly instead of the hub's telemetry API
  --influx-db NAME        its database (default fleetgate)
  --verify-timeout D      longest wait for stored points to match (default 60s)
  --drain-timeout D       longest wait for acks once sending stops (default 30s)
  --json FILE             write the summary as JSON
  --jsonl FILE            append a snapshot line every --snapshot-every (default 1m): soak runs
  --status-every D        status interval (default 1s on a terminal, 10s otherwise)
  --seed N                seed of every random choice (default random; printed in the summary)
  --quiet, -q             no status output, only the summary
  --help, --version

exit status: 0 every sent reading was acked or deliberately naked (and, with --verify, stored exactly
once; every desired change converged); 1 the run finished but a check failed (the reasons are printed); 2 a bad option; 3 setup failed
(fleet file, provisioning, hub unreachable); 4 an internal error (a bug); 130 interrupted twice.
`
