/**
 * Step kinds: what one step of a rollout does. A strategy compiles to a list of steps
 * (`src/core/strategies/`), and the rollout core (`src/core/rollout.ts`) runs them in order,
 * one kind per file in this folder, registered in `index.ts`.
 *
 * A step kind is pure like the rest of `core/`: it reads the context and mutates
 * `ctx.status` (the status this reconcile writes), never does I/O, never reads a clock.
 *
 * To add a kind:
 *   1. the body type in `src/core/model.ts` and a `{ <key>: Body }` member in `RolloutStep`;
 *   2. `src/core/steps/<key>.ts` exporting a `StepKind<Body>`;
 *   3. one line in `STEP_KINDS` (`index.ts`);
 *   4. the zod schema of the body: one entry in `STEP_SCHEMAS` in `src/resources/schema/steps.ts`
 *      (typed by `StepKey` as `STEP_KINDS` is, so a kind without a schema fails `tsc`);
 *   5. whatever it puts in the status for routers (a mirror, experiment arms, flags) is read
 *      by `src/core/routes.ts` into the route table, and cleared by the kind's `clear`.
 */

import type { AbortCause, EventData, EventType } from "../events.js";
import type { AnalysisRefSpec, Phase, RolloutStep, ServiceSpec, ServiceStatus } from "../model.js";
import type { ReconcileInput } from "../rollout.js";

/** What a step may read and do during one reconcile. */
export interface StepContext {
  /** Clock ms of this reconcile. */
  readonly now: number;
  /** The service's name. */
  readonly name: string;
  readonly spec: ServiceSpec;
  readonly input: ReconcileInput;
  /** The rollout's steps, compiled from the strategy. */
  readonly steps: readonly RolloutStep[];
  /** The status this reconcile writes: mutate it. */
  readonly status: ServiceStatus;
  /** When the current step began (clock ms); timed waits count from here. */
  readonly stepStartedAt: number;
  /**
   * Appends an event to the service's history (who and why, with the numbers); the type and
   * its data are the catalogue's (`../events.ts`).
   */
  emit<T extends EventType>(type: T, message: string, data: EventData[T], actor?: string): void;
  setPhase(phase: Phase, message: string): void;
  /** "step 2/5", for messages. */
  label(i: number): string;
  /** Asks for a reconcile at this clock time at the latest (timed waits, due measurements). */
  wakeAt(ms: number): void;
  /** Aborts the rollout: the candidate's traffic goes to 0 at once, phase Degraded with `why`. */
  rollBack(why: string, data: AbortCause): void;
  /**
   * Runs AnalysisTemplates as a blocking gate for step `i`, with the `analysis` step's
   * semantics: "running" (the phase and wake-up are set; return "wait"), "passed" (go on),
   * "stopped" (the run failed and the rollout was rolled back, or it was inconclusive and the
   * rollout is paused for a person; return "wait").
   */
  analysisGate(i: number, ref: AnalysisRefSpec): "running" | "passed" | "stopped";
  /**
   * For a step whose time is up (a timed pause): held while the background analysis has no
   * evidence on the candidate (the phase, message, event and wake-up are set; return "wait"),
   * else how long it was held (`holdForData` in `../rollout/analysis.ts`).
   */
  holdForData(i: number): { held: true } | { held: false; heldMs: number };
}

/** The key of every step kind: "setWeight" | "pause" | ... (one per member of `RolloutStep`). */
export type StepKey = RolloutStep extends infer S ? (S extends unknown ? keyof S : never) : never;
/** The body of the step kind `K`, e.g. `number` for "setWeight". */
export type BodyOf<K extends StepKey> = Extract<RolloutStep, Record<K, unknown>>[K];

/** "next": the step is done, the next one starts in this same tick. "wait": stay here. */
export type StepResult = "next" | "wait";

export interface StepKind<B> {
  /** The step's key in YAML, e.g. "setWeight". */
  readonly key: string;
  /** For people: "setWeight 20", "pause 30s", "pause (until promoted)". */
  describe(body: B): string;
  /** Runs the step at index `i`; called every tick while the step is current. */
  run(ctx: StepContext, i: number, body: B): StepResult;
  /** Forgets what this kind put in the status; called whenever a rollout ends or restarts. */
  clear?(status: ServiceStatus): void;
  /** True when the step waits for a person (an indefinite pause): `resume` then promotes it. */
  waitsForPerson?(body: B): boolean;
}
