/**
 * References between resources: a Service's analysis steps name AnalysisTemplates, which must
 * exist (in the same apply or already stored) and receive every argument they need. Checked by
 * the API at apply time, against the stored templates; `validate` offline checks only the files.
 *
 * Two traps that only the pair (template, place of use) reveals are refused here too, before any
 * traffic reaches the candidate: an inline analysis whose metric has an `interval` and no
 * `count` (it would never finish), and a judge that compares with the baseline in an analysis
 * after a blue-green switch (blue serves nothing then, so the judge can never pass).
 */
import { judgeKind } from "../core/analysis/judges.js";
import { durationMs, formatDuration } from "../core/duration.js";
import type {
  AnalysisMetricSpec,
  AnalysisRefSpec,
  AnalysisTemplateResource,
  Resource,
  RolloutStep,
  ServiceResource,
  StrategySpec,
} from "../core/model.js";
import type { FieldError } from "../errors.js";

/** Where a template is used decides what its metrics may be. */
interface RefUse {
  ref: AnalysisRefSpec;
  path: string;
  /** "inline": a step that must finish before the rollout goes on; "background": until the end. */
  kind: "inline" | "background";
  /** A blue-green analysis after the switch: blue (the baseline) has no traffic any more. */
  afterSwitch: boolean;
}

/**
 * `storedServices`: Services already applied. Those that use a template changed by this apply are
 * checked against its new version too (a template edit must not break a service that uses it).
 */
export function checkAnalysisRefs(
  resources: readonly Resource[],
  stored: readonly AnalysisTemplateResource[],
  opts: { requireKnownTemplates: boolean; storedServices?: readonly ServiceResource[] } = {
    requireKnownTemplates: true,
  },
): FieldError[] {
  const templates = new Map<string, AnalysisTemplateResource>();
  for (const t of stored) templates.set(t.metadata.name, t);
  const changed = new Set<string>();
  for (const r of resources) {
    if (r.kind !== "AnalysisTemplate") continue;
    templates.set(r.metadata.name, r);
    changed.add(r.metadata.name);
  }
  const errors: FieldError[] = [];
  const applied = new Set(
    resources.filter((r) => r.kind === "Service").map((r) => r.metadata.name),
  );
  for (const svc of opts.storedServices ?? []) {
    if (applied.has(svc.metadata.name)) continue;
    for (const use of analysisRefsOf(svc.spec.strategy)) {
      for (const name of use.ref.templates) {
        const t = templates.get(name);
        if (!t || !changed.has(name)) continue;
        for (const e of placeErrors(t, use)) {
          errors.push({
            resource: `AnalysisTemplate/${name}`,
            path: `spec.metrics[${e.metric}]`,
            message: `used by Service ${svc.metadata.name} at ${use.path}: ${e.message}`,
          });
        }
      }
    }
  }
  for (const r of resources) {
    if (r.kind !== "Service") continue;
    const refs = analysisRefsOf(r.spec.strategy);
    const canary = r.spec.strategy?.canary;
    if (canary?.analysis && canary.analysis.startingStep > canary.steps.length) {
      errors.push({
        resource: `Service/${r.metadata.name}`,
        path: "spec.strategy.canary.analysis.startingStep",
        message: `must be at most the number of steps (${canary.steps.length}), got ${canary.analysis.startingStep}`,
      });
    }
    for (const use of refs) {
      const { ref, path } = use;
      const given = new Set((ref.args ?? []).map((a) => a.name));
      ref.templates.forEach((name, j) => {
        const t = templates.get(name);
        if (t) {
          for (const e of placeErrors(t, use)) {
            errors.push({
              resource: `Service/${r.metadata.name}`,
              path: `${path}.templates[${j}]`,
              message: e.message,
            });
          }
        }
        if (!t) {
          if (opts.requireKnownTemplates) {
            errors.push({
              resource: `Service/${r.metadata.name}`,
              path: `${path}.templates[${j}]`,
              message: `no AnalysisTemplate named ${JSON.stringify(name)}; apply it first or in the same file${
                templates.size > 0 ? ` (known: ${[...templates.keys()].join(", ")})` : ""
              }`,
            });
          }
          return;
        }
        const missing = (t.spec.args ?? [])
          .filter((a) => a.value === undefined && !given.has(a.name))
          .map((a) => a.name);
        if (missing.length > 0) {
          errors.push({
            resource: `Service/${r.metadata.name}`,
            path: `${path}.args`,
            message: `AnalysisTemplate ${name} needs argument${missing.length > 1 ? "s" : ""} ${missing.join(", ")} (no default); add ${missing.map((m) => `{ name: ${m}, value: ... }`).join(", ")}`,
          });
        }
      });
    }
  }
  return errors;
}

/** Every place a strategy names AnalysisTemplates, with its path for error messages. */
export function analysisRefsOf(st: StrategySpec | undefined): RefUse[] {
  const refs: RefUse[] = [];
  const inline = (ref: AnalysisRefSpec, path: string, afterSwitch = false) =>
    refs.push({ ref, path, kind: "inline", afterSwitch });
  const steps = (list: readonly RolloutStep[] | undefined, at: string, afterSwitch = false) =>
    list?.forEach((step, i) => {
      if ("analysis" in step) inline(step.analysis, `${at}[${i}].analysis`, afterSwitch);
      if ("rollingUpdate" in step && step.rollingUpdate.analysis)
        inline(step.rollingUpdate.analysis, `${at}[${i}].rollingUpdate.analysis`);
    });
  const base = "spec.strategy";
  steps(st?.canary?.steps, `${base}.canary.steps`);
  if (st?.canary?.analysis)
    refs.push({
      ref: st.canary.analysis,
      path: `${base}.canary.analysis`,
      kind: "background",
      afterSwitch: false,
    });
  const bg = st?.blueGreen;
  if (bg?.prePromotionAnalysis)
    inline(bg.prePromotionAnalysis, `${base}.blueGreen.prePromotionAnalysis`);
  if (bg?.postPromotionAnalysis)
    inline(bg.postPromotionAnalysis, `${base}.blueGreen.postPromotionAnalysis`, true);
  steps(bg?.flagSteps, `${base}.blueGreen.flagSteps`, true);
  if (st?.rolling?.analysis) inline(st.rolling.analysis, `${base}.rolling.analysis`);
  return refs;
}

/** Judges that compare the candidate with the baseline (the builtin source's other side). */
const COMPARATIVE = new Set(["relative", "sequential", "mannWhitney"]);

/** What a template's metrics cannot do where it is used; `metric` is the metric's index. */
function placeErrors(
  t: AnalysisTemplateResource,
  use: RefUse,
): { metric: number; message: string }[] {
  const out: { metric: number; message: string }[] = [];
  const name = t.metadata.name;
  t.spec.metrics.forEach((m, i) => {
    const what = `AnalysisTemplate ${name}, metric ${JSON.stringify(m.name)}`;
    if (use.kind === "inline" && m.interval !== undefined && m.count === undefined) {
      out.push({
        metric: i,
        message: `${what} has interval ${intervalText(m)} and no count: this analysis is a step that must finish before the rollout goes on, and it would never finish; add a count to the metric (e.g. count: 5)${
          use.path.startsWith("spec.strategy.canary.steps")
            ? ", or run the template in the background (spec.strategy.canary.analysis)"
            : ""
        }`,
      });
    }
    if (use.kind === "inline" && m.interval === undefined && (m.count ?? 1) > 1) {
      out.push({
        metric: i,
        message: `${what} has count ${m.count} and no interval: several measurements need an interval between them (e.g. interval: 10s)`,
      });
    }
    if (use.afterSwitch && comparesWithBlue(m)) {
      out.push({
        metric: i,
        message: `${what} judges with ${judgeKind(m.judge)}, which compares green with blue, but after the switch blue serves no traffic, so it could never pass; judge green alone after the switch (e.g. judge: { threshold: { max: 0.01 } }), or compare before the switch, in prePromotionAnalysis (blue still serves users there, and green the requests of preview.match)`,
      });
    }
  });
  return out;
}

/**
 * Only the builtin source measures two sides; a flag comparison's two sides are both within
 * green (feature on against off), so it still has a baseline after the switch.
 */
function comparesWithBlue(m: AnalysisMetricSpec): boolean {
  if (!COMPARATIVE.has(judgeKind(m.judge))) return false;
  return "builtin" in m.source && typeof m.source.builtin === "string";
}

function intervalText(m: AnalysisMetricSpec): string {
  try {
    return formatDuration(durationMs(m.interval ?? 0));
  } catch {
    return JSON.stringify(m.interval);
  }
}
