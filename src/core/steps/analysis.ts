/**
 * `analysis: {templates, args}`: runs the templates' metrics now and waits for the verdict:
 * pass goes on, fail rolls back, inconclusive pauses for a person.
 */
import type { AnalysisRefSpec } from "../model.js";
import type { StepKind } from "./types.js";

export const analysis: StepKind<AnalysisRefSpec> = {
  key: "analysis",
  describe: (ref) => `analysis (${ref.templates.join(", ")})`,
  run: (ctx, i, ref) => (ctx.analysisGate(i, ref) === "passed" ? "next" : "wait"),
};
