// The public API of @fleetgate/firmware-sim: run a fleet in-process (tests, the benchmark) the way
// the `fleetgate-sim` CLI does.
export { parseArgv, USAGE, DEFAULT_STORM_EVERY_MS, type ParsedArgs } from './cli-args.js'
export { skewedClock, realClock, type Clock } from './clock.js'
export { BAD_FRAME_KINDS, BAD_FRAME_SEQ, BadFrameQueue, badFrame, isBadFrameNak, type BadFrameKind, type BadFrameSocket } from './bad-frames.js'
export { CommandDriver, MAX_COMMANDS_IN_FLIGHT, plan, type CommandDriverOptions } from './command-driver.js'
export { SimDevice, type DeviceHost, type DeviceIdentity } from './device.js'
export { BUILTIN_COMMANDS, FIRMWARE, INTERVAL_RANGE, deviceCommands, registerCommands, type CommandTarget } from './device-commands.js'
export { DESIRED_SETTINGS, applyDesired, type DesiredSetting } from './device-twin.js'
export { MAX_TWIN_CHANGES_IN_FLIGHT, TwinDriver, nextDesired, verifyTwins, type TwinDriverOptions, type TwinVerifyResult } from './twin-driver.js'
export { SIM_ERROR_CODES, SimError, type SimErrorCode, type SimErrorOptions } from './errors.js'
export { Fleet, type FleetTiming } from './fleet.js'
export {
  MODEL_CHOICES,
  MODEL_NAMES,
  SETPOINT_RANGE,
  TRACKER_MODES,
  VOLTAGE_RANGE,
  createModel,
  modelOf,
  type Model,
  type ModelChoice,
  type ModelCommand,
  type ModelName,
} from './models.js'
export { DEFAULT_COMMANDS, FLAGS, MAX_CHURN_PERCENT_PER_MIN, MAX_CLOCK_SKEW_MS, resolveSimOptions, type SimOptions, type SimOptionsInput } from './options.js'
export {
  formatDuration,
  parseAddresses,
  parseDuration,
  parsePercent,
  parsePercentPerMin,
  parsePerSec,
  parseWhole,
  type Parsed,
} from './parse.js'
export { BULK_MAX_DEVICES, deviceId, loadFleet, readFleetFile, writeFleetFile, type FleetFile } from './provision.js'
export { Stream, gaussian, mix, pick, sfc32, stream, type Random } from './random.js'
export { logLine, statusLine, summaryTable, takeSnapshot, type Snapshot } from './report.js'
export { runFleet, type RunHooks } from './run.js'
export { Stats, StatsWindow, percentiles, type CommandOutcome, type DisconnectCause, type TwinChangeOutcome, type ModelCounts, type Percentiles, type WindowReading } from './stats.js'
export { buildSummary, checks, type Summary, type SummaryInput } from './summary.js'
export { apiPointSource, compare, influxPointSource, verifyFleet, PAGE_POINTS, VerifyQueryError, type DeviceVerdict, type PointSource, type VerifyOptions, type VerifyResult, type VerifyTarget } from './verify.js'
