// The embedded telemetry history (docs/telemetry.md): blocks, queries, retention and compaction.
export { History, type HistoryFrame, type HistoryOptions } from './history.js'
export { HISTORY_HOUR_MS } from './history-query.js'
export { HISTORY_DEFAULTS, type HistoryCounters, type HistoryTuning, type TrimReason } from './maintenance.js'
