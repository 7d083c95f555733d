// The one error class of the simulator, with a closed union of codes (STYLE: Errors).

/**
 * Every failure the simulator reports before or around a run (a run that completes but finds
 * problems returns a Summary with `ok: false` instead):
 * - `SIM_ERR_OPTION`: a flag or option is missing, unknown or out of range; `option` names the flag.
 * - `SIM_ERR_FLEET`: the fleet file is missing, unreadable or does not hold the devices asked for.
 * - `SIM_ERR_PROVISION`: the hub refused to create the devices (token, scope, a device that exists
 *   without its key in the fleet file).
 * - `SIM_ERR_HUB`: the hub's REST API cannot be reached or answered what the contract does not allow.
 * - `SIM_ERR_IO`: a report file (`--json`, `--jsonl`) cannot be written.
 */
export const SIM_ERROR_CODES = ['SIM_ERR_OPTION', 'SIM_ERR_FLEET', 'SIM_ERR_PROVISION', 'SIM_ERR_HUB', 'SIM_ERR_IO'] as const

/** One of SIM_ERROR_CODES (each explained above and in docs/errors.md). */
export type SimErrorCode = (typeof SIM_ERROR_CODES)[number]

/** Options of a SimError: the `cause`, and for SIM_ERR_OPTION the flag at fault. */
export interface SimErrorOptions extends ErrorOptions {
  option?: string
}

/** The simulator's error: branch on `code`; `message` is for people; `option` names the flag for SIM_ERR_OPTION. */
export class SimError extends Error {
  override readonly name = 'SimError'
  /** The flag at fault (`--rate`), for SIM_ERR_OPTION; undefined otherwise. */
  readonly option: string | undefined

  constructor(
    readonly code: SimErrorCode,
    message: string,
    options?: SimErrorOptions,
  ) {
    super(message, options)
    this.option = options?.option
  }
}

/** Throws SIM_ERR_OPTION for `flag`, with a message that starts with the flag. */
export function optionError(flag: string, problem: string): never {
  throw new SimError('SIM_ERR_OPTION', `${flag}: ${problem}`, { option: flag })
}

/** The message of a cause, for an error message that must say why: `EACCES: permission denied, open 'x'`. */
export function causeText(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}
