/**
 * Turnout's library entry: start Turnout in-process, or use its pure core (the rollout
 * decision, durations) and resource validation from your own code and tests.
 */
export { FakeClock, systemClock, type Clock } from "./core/clock.js";
export { parseDuration, formatDuration } from "./core/duration.js";
export * from "./core/model.js";
export { reconcile, STAGES, type ReconcileInput, type ReconcileOutput } from "./core/rollout.js";
export { ERRORS, TurnoutError, type ErrorCode, type FieldError } from "./errors.js";
export { parseResources, loadPath } from "./resources/load.js";
export { startTurnout, type RunningTurnout, type TurnoutOptions } from "./server.js";
