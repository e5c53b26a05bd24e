/**
 * The registry of data-plane features (see types.ts for the seam). Each compiles a route table
 * into its readonly field of the compiled table, named by its key here, and adds its hooks
 * around the proxy core in the order listed: an experiment picks its arm before the table's own
 * selection; edge flags then add their header and label the series; the mirror copies the
 * request as it goes upstream (flags header included).
 *
 * A new feature is its own file exporting a `TableFeature` and one line below: the compiled
 * table's field, the router's option for its environment (`FeatureEnvs`) and the hook lists
 * follow from the types.
 */

import type { RouteTable } from "../core/model.js";
import { experimentFeature } from "./exposures.js";
import { edgeFlagsFeature } from "./flags-edge.js";
import { mirrorFeature } from "./mirror.js";
import type { FeatureHooks, TableCore, TableFeature } from "./types.js";

export const FEATURES = {
  experiment: experimentFeature,
  flags: edgeFlagsFeature,
  mirror: mirrorFeature,
} as const;

export type FeatureName = keyof typeof FEATURES;

type CompiledOf<F> = F extends TableFeature<unknown, infer C> ? C : never;
type EnvOf<F> = F extends TableFeature<infer E, FeatureHooks> ? E : never;

/** The compiled table's feature fields: each null when the table does not use the feature. */
export type CompiledFeatures = {
  readonly [K in FeatureName]: CompiledOf<(typeof FEATURES)[K]> | null;
};

/** What the router hands each feature to compile with (see each feature's file). */
export type FeatureEnvs = { [K in FeatureName]?: EnvOf<(typeof FEATURES)[K]> | undefined };

const NAMES = Object.keys(FEATURES) as FeatureName[];

/** Compiles every feature of a table, and lists the hooks the proxy will run. */
export function compileFeatures(
  raw: RouteTable,
  core: TableCore,
  envs: FeatureEnvs | undefined,
  problems: string[],
): {
  features: CompiledFeatures;
  selectors: Required<Pick<FeatureHooks, "select">>[];
  interceptors: Required<Pick<FeatureHooks, "request">>[];
} {
  const features: Record<string, FeatureHooks | null> = {};
  const selectors: Required<Pick<FeatureHooks, "select">>[] = [];
  const interceptors: Required<Pick<FeatureHooks, "request">>[] = [];
  for (const name of NAMES) {
    const feature = FEATURES[name] as TableFeature<unknown, FeatureHooks>;
    const compiled = feature.compile(raw, core, envs?.[name], problems);
    features[name] = compiled;
    if (compiled === null) continue;
    if (compiled.select !== undefined)
      selectors.push(compiled as Required<Pick<FeatureHooks, "select">>);
    if (compiled.request !== undefined)
      interceptors.push(compiled as Required<Pick<FeatureHooks, "request">>);
  }
  return { features: features as CompiledFeatures, selectors, interceptors };
}
