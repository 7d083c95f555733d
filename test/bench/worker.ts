// A load-generator process: the orchestrator (run.ts) starts one per load, so that its own work
// never competes with the load it measures, and drives it over IPC (procs.ts).
import { fleetHandlers } from './fleet.js'
import { influxHandlers } from './influx-load.js'
import { jsonFleetHandlers } from './json-fleet.js'
import { mqttHandlers } from './mqtt-load.js'
import { serve } from './procs.js'

serve({ ...fleetHandlers, ...jsonFleetHandlers, ...mqttHandlers, ...influxHandlers })
