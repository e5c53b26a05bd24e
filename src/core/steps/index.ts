/**
 * The registry of step kinds: one file each (see `types.ts` for how to add one). The rollout
 * core looks a step's kind up here by its one key.
 */
import type { RolloutStep, ServiceStatus } from "../model.js";
import { analysis } from "./analysis.js";
import { experiment } from "./experiment.js";
import { pause } from "./pause.js";
import { rollingUpdate } from "./rollingUpdate.js";
import { setFlag } from "./setFlag.js";
import { setHeaderRoute } from "./setHeaderRoute.js";
import { setWeight } from "./setWeight.js";
import { setMirrorRoute, shadow } from "./shadow.js";
import { switchStep } from "./switch.js";
import type { BodyOf, StepKey, StepKind } from "./types.js";

export type { BodyOf, StepContext, StepKey, StepKind, StepResult } from "./types.js";

/** Every step kind by its key. A step kind missing here fails `tsc`. */
export const STEP_KINDS: { readonly [K in StepKey]: StepKind<BodyOf<K>> } = {
  setWeight,
  pause,
  analysis,
  setHeaderRoute,
  experiment,
  setFlag,
  shadow,
  setMirrorRoute,
  switch: switchStep,
  rollingUpdate,
};

/** The kind of a step and its body. Throws on a step with no known key (validation prevents it). */
export function kindOf(step: RolloutStep): { kind: StepKind<unknown>; body: unknown } {
  for (const key of Object.keys(step)) {
    const kind = (STEP_KINDS as Record<string, StepKind<unknown>>)[key];
    if (kind) return { kind, body: (step as Record<string, unknown>)[key] };
  }
  throw new Error(`unknown step kind: ${Object.keys(step).join(", ")}`);
}

/** For people: "setWeight 20", "pause 30s", "analysis (errors)". */
export function describeStep(step: RolloutStep): string {
  const { kind, body } = kindOf(step);
  return kind.describe(body);
}

/** Lets every kind forget what it put in the status (a rollout ended or restarted). */
export function clearStepState(status: ServiceStatus): void {
  for (const kind of Object.values(STEP_KINDS) as StepKind<unknown>[]) kind.clear?.(status);
}
