// WebSocket close codes of a device session (docs/protocol.md, RFC 6455 §7.4.1), one table for both
// ends: the hub closes with all of them but 1002; the SDK closes with 1000, 1002, 1003 and 1007.

/** The close codes of a device session, by meaning. */
export const CloseCode = Object.freeze({
  /** 1000: normal closure, by either end. */
  normal: 1000,
  /** 1001: the hub is shutting down (docs/configuration.md). */
  shuttingDown: 1001,
  /** 1002: a protocol error: the SDK closes with it when the hub breaks docs/protocol.md. */
  protocolError: 1002,
  /** 1003: a text frame; every message is binary CBOR. */
  textFrame: 1003,
  /** 1007: a message that is not a CBOR map, has no known `t`, or cannot be naked. */
  badFrame: 1007,
  /** 1008: sustained rate abuse. */
  rateAbuse: 1008,
  /** 1009: a frame over the hub's frame limit. */
  tooBig: 1009,
  /** 1011: not in docs/protocol.md's list: a commit failed; the device reconnects and resends what was not acked. */
  storageFailure: 1011,
  /** 4001: replaced by a newer session of the same device. */
  replaced: 4001,
  /** 4003: the device was disabled or deleted, or its key rotated with `disconnect`. */
  revoked: 4003,
} as const)
