/**
 * Resolving an experiment's declaration: its name, its arms with versions, and the route-table
 * part the router assigns with. Pure.
 */
import type { ServiceSpec } from "../model.js";
import { type CompiledStrategy, compileStrategy } from "../strategies/index.js";
import type { ResolvedArm as ResolvedArmSpec } from "./analyze.js";
import type { ExperimentSpec, ExperimentStatus, RouteExperiment } from "./types.js";

/** Defaults of the optional fields (the schema fills them in; tests and presets use these). */
export const EXPERIMENT_DEFAULTS = {
  split: 50,
  method: "sequential",
  alpha: 0.05,
  minSamples: 100,
  maxDuration: "1h",
  decision: "auto",
  correction: "holm",
  sequentialTuning: 5000,
  chanceToWin: 0.95,
} as const;

/** The experiment's name: as declared, else `<service>-<candidate version>`. */
export function experimentName(
  spec: Pick<ExperimentSpec, "name">,
  service: string,
  candidate: string,
): string {
  return spec.name ?? `${service}-${candidate}`;
}

/** The control arm's name: the arm on the stable version ("A" by default). */
export function controlArm(spec: Pick<ExperimentSpec, "arms">): string {
  return spec.arms?.find((a) => a.version === "stable")?.name ?? "A";
}

/** Arms with their versions; the default is A = stable (100 − split), B = canary (split). */
export function resolveArms(
  spec: Pick<ExperimentSpec, "arms" | "split">,
  stable: string,
  canary: string,
): ResolvedArmSpec[] {
  const arms = spec.arms ?? [
    { name: "A", version: "stable" as const, weight: 100 - spec.split },
    { name: "B", version: "canary" as const, weight: spec.split },
  ];
  return arms.map((a) => ({
    name: a.name,
    version: a.version === "stable" ? stable : a.version === "canary" ? canary : a.version,
    weight: a.weight,
  }));
}

/**
 * Percent of all traffic the canary gets while the experiment runs: its arms' share of the
 * weights. Requests without a unit id follow this split (and are not exposures).
 */
export function canaryShare(arms: readonly ResolvedArmSpec[], canary: string): number {
  const total = arms.reduce((s, a) => s + a.weight, 0);
  const c = arms.filter((a) => a.version === canary).reduce((s, a) => s + a.weight, 0);
  return total > 0 ? (100 * c) / total : 0;
}

/**
 * The route table's experiment part for a service whose status has a running experiment; null
 * when the step it names is gone (the spec changed under it).
 */
export function routeExperimentOf(
  spec: ServiceSpec,
  e: ExperimentStatus,
  strategy: CompiledStrategy = compileStrategy(spec),
): RouteExperiment | null {
  const step = strategy.steps[e.stepIndex];
  if (!step || !("experiment" in step)) return null;
  return routeExperiment(e, step.experiment);
}

/** The route table's experiment part, from the status the step wrote. */
export function routeExperiment(e: ExperimentStatus, spec: ExperimentSpec): RouteExperiment {
  const headers = [
    ...new Set(
      spec.metrics.flatMap((m) =>
        [m.source, m.denominator].flatMap((s) =>
          s && "responseHeader" in s ? [s.responseHeader.toLowerCase()] : [],
        ),
      ),
    ),
  ];
  return {
    name: e.name,
    arms: e.arms,
    key: e.key,
    salt: e.salt,
    ...(e.force ? { force: e.force } : {}),
    ...(headers.length > 0 ? { responseHeaders: headers } : {}),
  };
}

/** The event name under which the router records a response header's values. */
export function responseHeaderMetric(header: string): string {
  return `header:${header.toLowerCase()}`;
}
