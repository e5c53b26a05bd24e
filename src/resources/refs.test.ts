import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AnalysisTemplateResource, ServiceResource, StrategySpec } from "../core/model.js";
import { checkAnalysisRefs } from "./refs.js";

const template = (name: string, args?: { name: string; value?: string }[]) =>
  ({
    apiVersion: "turnout.dev/v1",
    kind: "AnalysisTemplate",
    metadata: { name },
    spec: {
      ...(args ? { args } : {}),
      metrics: [
        { name: "m", source: { builtin: "error_rate" }, judge: { threshold: { max: 0.1 } } },
      ],
    },
  }) as AnalysisTemplateResource;

const service = (strategy: StrategySpec) =>
  ({
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "svc" },
    spec: {
      listen: { host: "127.0.0.1", port: 8080 },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:1"] } } } },
      version: "v1",
      strategy,
    },
  }) as ServiceResource;

const paths = (strategy: StrategySpec, stored = [template("ok")]) =>
  checkAnalysisRefs([service(strategy)], stored).map((e) => `${e.path}: ${e.message}`);

describe("AnalysisTemplate references are checked in every strategy", () => {
  it("canary steps and background analysis", () => {
    assert.deepEqual(paths({ canary: { steps: [{ analysis: { templates: ["ok"] } }] } }), []);
    const errs = paths({
      canary: {
        steps: [{ setWeight: 5 }, { analysis: { templates: ["nope"] } }],
        analysis: { templates: ["gone"], startingStep: 0 },
      },
    });
    assert.equal(errs.length, 2);
    assert.match(
      errs[0]!,
      /^spec\.strategy\.canary\.steps\[1\]\.analysis\.templates\[0\]: no AnalysisTemplate named "nope"/,
    );
    assert.match(
      errs[1]!,
      /^spec\.strategy\.canary\.analysis\.templates\[0\]: no AnalysisTemplate named "gone"/,
    );
  });

  it("blue-green pre/post-promotion analysis and flag steps", () => {
    const errs = paths({
      blueGreen: {
        prePromotionAnalysis: { templates: ["a"] },
        postPromotionAnalysis: { templates: ["ok"] },
        flagSteps: [{ setFlag: { flag: "f", percentage: 10 } }, { analysis: { templates: ["b"] } }],
      },
    });
    assert.deepEqual(
      errs.map((e) => e.split(":")[0]),
      [
        "spec.strategy.blueGreen.prePromotionAnalysis.templates[0]",
        "spec.strategy.blueGreen.flagSteps[1].analysis.templates[0]",
      ],
    );
  });

  it("rolling analysis between batches, and missing arguments", () => {
    const errs = paths({ rolling: { analysis: { templates: ["needs"] } } }, [
      template("needs", [{ name: "service" }]),
    ]);
    assert.equal(errs.length, 1);
    assert.match(
      errs[0]!,
      /^spec\.strategy\.rolling\.analysis\.args: AnalysisTemplate needs needs argument service/,
    );
  });
});
