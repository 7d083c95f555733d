// The records the hub persists, as every store implementation reads and writes them. Times are
// Unix milliseconds. Records are never changed in place: a change writes a new object.
import type { JsonValue, KeyType, Tags, TwinDocument } from '@fleetgate/device-sdk'

/** What the hub keeps to verify a device: the HMAC key itself, or the Ed25519 public key (raw, base64url). */
export interface DeviceKey {
  readonly type: KeyType
  readonly material: string
}

/** A device as the registry keeps it. */
export interface DeviceRecord {
  readonly id: string
  readonly key: DeviceKey
  /** The key before the last rotation, accepted until `until` (ms) for the rotation's grace period. */
  readonly previousKey?: DeviceKey & { readonly until: number }
  readonly tags: Tags
  readonly disabled: boolean
  readonly createdAt: number
  /**
   * When its last session ended, in records written before last-seen times were kept apart (see
   * RegistryStore.touch); read it through Registry.lastSeenAt. Live sessions are tracked by the session table.
   */
  readonly lastSeenAt?: number
  /**
   * Forced disconnects so far (disable, key rotation with `disconnect`; absent: 0). A session keeps
   * the count its device had when it opened and ends, on whichever node holds it, once the record
   * counts more (docs/protocol.md, docs/cluster.md): a change, not a message, so it cannot be lost or overtaken.
   */
  readonly revocations?: number
}

/** docs/rest.md: a command's life: `queued` -> `sent` -> `succeeded` | `failed` | `timeout`, or `queued` -> `expired`. */
export const COMMAND_STATUSES = ['queued', 'sent', 'succeeded', 'failed', 'timeout', 'expired'] as const
/** One of COMMAND_STATUSES. */
export type CommandStatus = (typeof COMMAND_STATUSES)[number]

/** Counts by status, all 0: where a fan-out's counts start. */
/** A command's key among all commands: its device and its id (ids are unique per device). */
export const commandKey = (device: string, id: string): string => `${device}\0${id}`

export const zeroCounts = (): Record<CommandStatus, number> => ({ queued: 0, sent: 0, succeeded: 0, failed: 0, timeout: 0, expired: 0 })

/** A command as the store keeps it. */
export interface CommandRecord {
  readonly id: string
  readonly device: string
  readonly name: string
  readonly params?: JsonValue
  readonly status: CommandStatus
  readonly createdAt: number
  readonly sentAt?: number
  readonly completedAt?: number
  /**
   * Until when a queued command may still be delivered: `createdAt + ttlMs`, or `createdAt +
   * timeoutMs` for a command with ttl 0 held for its online device's connection (back-pressure);
   * absent for a command written at once.
   */
  readonly expiresAt?: number
  /** How long a sent command waits for its result, in ms. */
  readonly timeoutMs: number
  readonly result?: JsonValue
  readonly error?: string
  /** The fan-out this command belongs to. */
  readonly batch?: string
  /** Who asked (the operator token's name). */
  readonly actor: string
  /**
   * Cluster mode: the node where a REST call waits for this command, told over the bus of each
   * change that another node makes (the node that delivers it). Absent when nobody waits (fan-out, MQTT).
   */
  readonly waiter?: string
}

/** A fan-out as recorded when it starts (docs/rest.md); its counts come from its commands. */
export interface BatchInfo {
  readonly batch: string
  /** The command name sent to every target. */
  readonly name: string
  /** Devices the targets resolved to. */
  readonly targeted: number
  readonly createdAt: number
}

/** One audit entry (docs/rest.md): who did what to which target, when, and how it ended. */
export interface AuditEntry {
  /** Position in the log: increasing in append order, never reused. */
  readonly seq: number
  readonly at: number
  /** The operator token's name (`admin`, a tokens-file name, `uplink`). */
  readonly actor: string
  /** e.g. `device.create`, `device.key_rotate`, `device.disconnect`, `command.create`. */
  readonly action: string
  /** The device id, `deviceId/commandId`, or a batch id. */
  readonly target: string
  /** `ok`, or what happened instead (`exists`, `device_offline`, `queued`, ...). */
  readonly outcome: string
}

/**
 * A device's twin as stored (docs/twins.md): each side a JSON object with its version (0 while it
 * was never changed) and the time of its last change. A device without a stored twin has the
 * empty one: both sides `{}` at version 0.
 */
export interface TwinRecord {
  readonly device: string
  readonly desired: TwinDocument
  readonly desiredVersion: number
  /** When `desired` last changed; absent at version 0. */
  readonly desiredAt?: number
  readonly reported: TwinDocument
  readonly reportedVersion: number
  /** When `reported` last changed; absent at version 0. */
  readonly reportedAt?: number
}

/** What a twin change decided, given the twin as stored: the record to write (none: write nothing) and what to answer. */
export interface TwinChange<T> {
  readonly write: TwinRecord | undefined
  readonly outcome: T
}

/** One accepted telemetry frame, as the spool keeps it. */
export interface SpoolEntry {
  readonly deviceId: string
  /** The hub's receive time: the `ts` of a `tm` reading that has none. */
  readonly receivedAt: number
  /** The frame exactly as the device sent it (one CBOR data item), already validated once. */
  readonly frame: Uint8Array
}

/**
 * Where an entry sits in the spool: its seq, and its group, the entries appended together and
 * stored (and removed) as one value, named by the seq of the group's last entry.
 */
export interface SpoolSlot {
  readonly seq: number
  readonly group: number
}

/** A stored entry with its place in the spool. */
export interface SpooledEntry extends SpoolEntry, SpoolSlot {}

/** Entries of one group that were shipped: what `trim` takes. */
export interface SpoolRun {
  /** The group (the seq of its last entry). */
  readonly group: number
  /** How many of its entries. */
  readonly entries: number
}
