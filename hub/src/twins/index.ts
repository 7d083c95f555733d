// Device twins (docs/twins.md): desired and reported documents, their versions and merge patches
// over a TwinStore, the `twd`/`twa` answers to sessions, and the operator's view of a twin.
export { TWINS_DEFAULTS, Twins, type DesiredOutcome, type ReportOutcome, type TwinCounters, type TwinsOptions, type TwinsTuning } from './twins.js'
export { emptyTwin, twinView, type TwinView } from './twin-view.js'
