// The hub's figures: Prometheus metrics (`/metrics`) and the same figures written to InfluxDB.
export { HUB_MEASUREMENT, HUB_STATS_INTERVAL_MS, startHubStats } from './hub-stats.js'
export { HubMetrics, UNCAUGHT_WHERE, type UncaughtWhere } from './metrics.js'
