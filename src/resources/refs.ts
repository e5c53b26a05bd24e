/**
 * References between resources: a Service's analysis steps name AnalysisTemplates, which must
 * exist (in the same apply or already stored) and receive every argument they need. Checked by
 * the API at apply time, against the stored templates; `validate` offline checks only the files.
 */
import type {
  AnalysisRefSpec,
  AnalysisTemplateResource,
  Resource,
  RolloutStep,
  StrategySpec,
} from "../core/model.js";
import type { FieldError } from "../errors.js";

export function checkAnalysisRefs(
  resources: readonly Resource[],
  stored: readonly AnalysisTemplateResource[],
  opts: { requireKnownTemplates: boolean } = { requireKnownTemplates: true },
): FieldError[] {
  const templates = new Map<string, AnalysisTemplateResource>();
  for (const t of stored) templates.set(t.metadata.name, t);
  for (const r of resources) if (r.kind === "AnalysisTemplate") templates.set(r.metadata.name, r);
  const errors: FieldError[] = [];
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
    for (const { ref, path } of refs) {
      const given = new Set((ref.args ?? []).map((a) => a.name));
      ref.templates.forEach((name, j) => {
        const t = templates.get(name);
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
function analysisRefsOf(st: StrategySpec | undefined): { ref: AnalysisRefSpec; path: string }[] {
  const refs: { ref: AnalysisRefSpec; path: string }[] = [];
  const steps = (list: readonly RolloutStep[] | undefined, at: string) =>
    list?.forEach((step, i) => {
      if ("analysis" in step) refs.push({ ref: step.analysis, path: `${at}[${i}].analysis` });
      if ("rollingUpdate" in step && step.rollingUpdate.analysis)
        refs.push({ ref: step.rollingUpdate.analysis, path: `${at}[${i}].rollingUpdate.analysis` });
    });
  const base = "spec.strategy";
  steps(st?.canary?.steps, `${base}.canary.steps`);
  if (st?.canary?.analysis) refs.push({ ref: st.canary.analysis, path: `${base}.canary.analysis` });
  const bg = st?.blueGreen;
  if (bg?.prePromotionAnalysis)
    refs.push({ ref: bg.prePromotionAnalysis, path: `${base}.blueGreen.prePromotionAnalysis` });
  if (bg?.postPromotionAnalysis)
    refs.push({ ref: bg.postPromotionAnalysis, path: `${base}.blueGreen.postPromotionAnalysis` });
  steps(bg?.flagSteps, `${base}.blueGreen.flagSteps`);
  if (st?.rolling?.analysis)
    refs.push({ ref: st.rolling.analysis, path: `${base}.rolling.analysis` });
  return refs;
}
