/**
 * Turnout's library entry: start Turnout in-process, or use its pure core (the rollout
 * decision, durations) and resource validation from your own code and tests.
 */
export { type Clock, FakeClock, systemClock } from "./core/clock.js";
export { formatDuration, parseDuration } from "./core/duration.js";
export {
  compileFlags,
  effectiveSpec,
  evaluate as evaluateFlag,
  type FlagDefinition,
  type FlagSet,
} from "./core/flags/evaluate.js";
export type * from "./core/flags/types.js";
export * from "./core/model.js";
export { type ReconcileInput, type ReconcileOutput, reconcile, STAGES } from "./core/rollout.js";
export { ERRORS, type ErrorCode, type FieldError, TurnoutError } from "./errors.js";
export { sign as signNotification, verifySignature } from "./notify/render.js";
export { TurnoutProvider, type TurnoutProviderOptions } from "./provider/index.js";
export { loadPath, parseResources } from "./resources/load.js";
export type { RouterHandle } from "./router/worker/handle.js";
export {
  type ApiListen,
  type RunningTurnout,
  startTurnout,
  type TurnoutOptions,
} from "./server.js";
