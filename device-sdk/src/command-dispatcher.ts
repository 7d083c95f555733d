// Runs the hub's commands on the device (docs/protocol.md `cmd` / `res`): one handler per command name,
// results sent back, and kept for resending when the session is down.
import { SdkError } from './errors.js'
import type { CommandFrame, JsonValue, ResultFrame } from './frames.js'

/** What a handler learns about the command it runs. */
export interface CommandContext {
  /** The command id the hub gave. */
  readonly id: string
  /** The command name. */
  readonly name: string
  /** When the hub stops waiting for the result (Unix ms), if it said. */
  readonly deadline: number | undefined
}

/**
 * Runs one command: resolves with its result (any JSON value, or undefined for none); a throw becomes
 * `ok: false`. `P` is the params it expects; default any JSON value or none.
 */
export type CommandHandler<P extends JsonValue | undefined = JsonValue | undefined> = (
  params: P,
  context: CommandContext,
) => JsonValue | undefined | Promise<JsonValue | undefined>

/** What the dispatcher needs of the client. */
export interface DispatcherHost {
  /** Sends a result frame; false when no session is open (the result is kept and resent). */
  send(frame: ResultFrame): boolean
  /** The hub's time now, Unix ms: the device clock corrected by the offset seen in `hello.now`. */
  hubNow(): number
  /** Reports a handler's failure to the client's `error` event. */
  report(error: SdkError): void
}

/** The `e` of a result for a name no handler was registered for. */
export const UNKNOWN_COMMAND = 'unknown_command'
/** Results kept while offline, oldest dropped first. */
const MAX_UNSENT_RESULTS = 1000
/** Command ids remembered, so that a command delivered twice runs once. */
const MAX_REMEMBERED = 1000

/**
 * Dispatches `cmd` frames to handlers. A command past its deadline is not run (the hub has
 * already given up). A command delivered again (after a hub restart, say) is not run again: its
 * result, once known, is sent again. Results that cannot be sent wait for the next session.
 */
export class CommandDispatcher {
  readonly #host: DispatcherHost
  readonly #handlers = new Map<string, CommandHandler>()
  /** Commands seen, by id: undefined while running, then their result. */
  readonly #seen = new Map<string, ResultFrame | undefined>()
  readonly #unsent: ResultFrame[] = []

  constructor(host: DispatcherHost) {
    this.#host = host
  }

  /** Registers the handler of `name`, replacing any earlier one. */
  handle(name: string, handler: CommandHandler): void {
    if (typeof handler !== 'function') throw new SdkError('SDK_ERR_INVALID_OPTION', `handle(${name}): the handler must be a function`)
    this.#handlers.set(name, handler)
  }

  /** Results waiting for a session. */
  get unsent(): number {
    return this.#unsent.length
  }

  /** Takes one `cmd` frame from the hub. */
  dispatch(command: CommandFrame): void {
    if (this.#seen.has(command.id)) {
      const known = this.#seen.get(command.id)
      if (known !== undefined) this.#deliver(known)
      return
    }
    // `exp` is hub time: judged against the device clock, a device running ahead would drop every command.
    if (command.exp !== undefined && command.exp <= this.#host.hubNow()) return
    this.#remember(command.id, undefined)
    void this.#run(command).then((result) => {
      this.#remember(command.id, result)
      this.#deliver(result)
    })
  }

  /** Sends the results kept while the session was down (call on every new session). */
  resend(): void {
    while (this.#unsent.length > 0) {
      const result = this.#unsent[0] as ResultFrame
      if (!this.#trySend(result)) return
      this.#unsent.shift()
    }
  }

  async #run(command: CommandFrame): Promise<ResultFrame> {
    const handler = this.#handlers.get(command.n)
    if (handler === undefined) return { t: 'res', id: command.id, ok: false, e: UNKNOWN_COMMAND }
    try {
      const value = await handler(command.p, { id: command.id, name: command.n, deadline: command.exp })
      return value === undefined ? { t: 'res', id: command.id, ok: true } : { t: 'res', id: command.id, ok: true, r: value }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      this.#host.report(new SdkError('SDK_ERR_COMMAND', `command ${command.n} (${command.id}) failed: ${message}`, { cause: err }))
      return { t: 'res', id: command.id, ok: false, e: message }
    }
  }

  #deliver(result: ResultFrame): void {
    if (this.#unsent.length === 0 && this.#trySend(result)) return
    if (this.#unsent.length >= MAX_UNSENT_RESULTS) this.#unsent.shift()
    this.#unsent.push(result)
  }

  /** Sends a result; a result that is not JSON (a function, a symbol) goes out as a failure instead. */
  #trySend(result: ResultFrame): boolean {
    try {
      return this.#host.send(result)
    } catch (err) {
      const message = `result is not JSON: ${err instanceof Error ? err.message : String(err)}`
      this.#host.report(new SdkError('SDK_ERR_COMMAND', `command ${result.id}: ${message}`, { cause: err }))
      return this.#host.send({ t: 'res', id: result.id, ok: false, e: message })
    }
  }

  #remember(id: string, result: ResultFrame | undefined): void {
    this.#seen.delete(id)
    this.#seen.set(id, result)
    if (this.#seen.size > MAX_REMEMBERED) {
      const oldest = this.#seen.keys().next().value
      if (oldest !== undefined) this.#seen.delete(oldest)
    }
  }
}
