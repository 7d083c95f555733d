import { pino, type Logger } from 'pino'

export type { Logger }

/** Secrets never reach a log line (STYLE: secrets). */
const REDACT = [
  'authorization',
  'key',
  'privateKey',
  'token',
  'adminToken',
  '*.authorization',
  '*.key',
  '*.privateKey',
  '*.token',
  'req.headers.authorization',
]

/** JSON lines on stdout (docs/configuration.md), secrets redacted. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { name: 'fleetgate' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  })
}
