/**
 * The rollout decision: a pure function of a service's spec, its last status, the commands
 * people sent, what the runtime reports, and `now`. No I/O, no clock reads, no logging
 * (DESIGN invariant 2). The controller feeds it and carries out what it returns.
 *
 * One reconcile runs a short list of named stages, in order (CONVENTIONS 3). Each stage reads
 * and updates the working state and returns an outcome: "continue" to run the next stage,
 * "stop" to skip the remaining decision stages (routes and targets are always computed).
 *
 * This file is the public entry: the stage list and `reconcile`. The parts live in `rollout/`:
 *   - `types.ts`: the input and output, and the working state (`Work`) stages share;
 *   - `work.ts`: helpers on the working state (events, phase, step labels, wake-ups);
 *   - `transitions.ts`: the moves of a rollout (start, advance, hold, release, complete, roll back);
 *   - `version.ts`: stages 1, 3, 7 (the desired version against what runs) and `planVersionChange`;
 *   - `commands.ts`: stage 2, commands people send;
 *   - `analysis.ts`: stage 4, background analysis, the inline analysis gate of steps;
 *   - `execution.ts`: stages 5 and 6, waiting for the candidate and running the steps;
 *   - `derive.ts`: the weights and targets a status puts in force;
 *   - `data-plane.ts`: a route table the routers do not serve: Degraded, and the rollout holds.
 */
import type { RolloutStep, ServiceSpec } from "./model.js";
import { analysis, startBackgroundAnalysis } from "./rollout/analysis.js";
import { applyCommands } from "./rollout/commands.js";
import { dataPlaneHold, enterDataPlane, settleDataPlane } from "./rollout/data-plane.js";
import { scaleDownAt, targetsOf, weightsOf } from "./rollout/derive.js";
import { runSteps, waitForCanary } from "./rollout/execution.js";
import { emptyStatus } from "./rollout/transitions.js";
import type { ReconcileInput, ReconcileOutput, Stage, Work } from "./rollout/types.js";
import { desiredVersion, initialize, steady } from "./rollout/version.js";
import { earliest } from "./rollout/work.js";
import { compileStrategy } from "./strategies/index.js";

export { replicasOf } from "./replicas.js";
export { targetsOf, weightsOf } from "./rollout/derive.js";
export { emptyStatus } from "./rollout/transitions.js";
export type {
  AnalysisObservation,
  ReconcileInput,
  ReconcileOutput,
  Stage,
  StageOutcome,
  VersionReadiness,
  VersionWeight,
} from "./rollout/types.js";
export { planVersionChange, type UndoMark } from "./rollout/version.js";
export { describeStep } from "./steps/index.js";
export { describeMatch } from "./steps/setHeaderRoute.js";
export { roundWeight } from "./steps/setWeight.js";
export { DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS } from "./strategies/index.js";

/** The steps of the service's strategy, compiled. */
export function stepsOf(spec: ServiceSpec): RolloutStep[] {
  return compileStrategy(spec).steps;
}

/** The decision stages, in order. Exported for tests and for `turnout status` to explain. */
export const STAGES: readonly Stage[] = [
  initialize,
  applyCommands,
  desiredVersion,
  analysis,
  dataPlaneHold,
  waitForCanary,
  runSteps,
  steady,
];

/** Runs the stages and derives the route weights and runtime targets. */
export function reconcile(input: ReconcileInput): ReconcileOutput {
  const strategy = input.strategy ?? compileStrategy(input.service.spec);
  const w: Work = {
    input,
    now: input.now,
    name: input.service.name,
    spec: input.service.spec,
    strategy,
    steps: strategy.steps,
    status: input.status ? structuredClone(input.status) : emptyStatus(input.now),
    events: [],
    results: [],
    wakeAt: null,
  };
  const dataPlane = enterDataPlane(w);
  for (const stage of STAGES) {
    if (stage.run(w) === "stop") break;
  }
  startBackgroundAnalysis(w);
  settleDataPlane(w, dataPlane);
  return {
    status: w.status,
    events: w.events,
    commandResults: w.results,
    weights: weightsOf(w.status),
    targets: targetsOf(w.status, w.spec, w.now),
    wakeAt: earliest(w.wakeAt, scaleDownAt(w.status, w.now)),
  };
}
