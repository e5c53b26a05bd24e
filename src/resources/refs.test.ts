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

const metricTemplate = (name: string, metric: Record<string, unknown>) =>
  ({
    apiVersion: "turnout.dev/v1",
    kind: "AnalysisTemplate",
    metadata: { name },
    spec: {
      metrics: [
        { name: "ok", source: { builtin: "error_rate" }, judge: { threshold: { max: 0.1 } } },
        { name: "m", source: { builtin: "error_rate" }, ...metric },
      ],
    },
  }) as AnalysisTemplateResource;

describe("a template is checked where it is used (#18 items 1 and 2)", () => {
  const endless = metricTemplate("endless", {
    judge: { threshold: { max: 0.1 } },
    interval: "2s",
  });

  it("an inline analysis with an interval and no count is refused, naming template, metric and step", () => {
    const errs = paths(
      { canary: { steps: [{ setWeight: 5 }, { analysis: { templates: ["endless"] } }] } },
      [endless],
    );
    assert.equal(errs.length, 1);
    assert.match(
      errs[0]!,
      /^spec\.strategy\.canary\.steps\[1\]\.analysis\.templates\[0\]: AnalysisTemplate endless, metric "m" has interval 2s and no count: .*would never finish; add a count .*or run the template in the background \(spec\.strategy\.canary\.analysis\)$/,
    );
    // The same template in the background runs until the rollout ends: fine.
    assert.deepEqual(
      paths(
        {
          canary: {
            steps: [{ setWeight: 5 }],
            analysis: { templates: ["endless"], startingStep: 0 },
          },
        },
        [endless],
      ),
      [],
    );
    // Blue-green gates and rolling batches are inline too.
    const bg = paths({ blueGreen: { prePromotionAnalysis: { templates: ["endless"] } } }, [
      endless,
    ]);
    assert.equal(bg.length, 1);
    assert.match(bg[0]!, /^spec\.strategy\.blueGreen\.prePromotionAnalysis\.templates\[0\]: /);
    assert.doesNotMatch(bg[0]!, /background/);
    assert.equal(paths({ rolling: { analysis: { templates: ["endless"] } } }, [endless]).length, 1);
  });

  it("a count without an interval is refused inline", () => {
    const t = metricTemplate("t", { judge: { threshold: { max: 0.1 } }, count: 3 });
    const errs = paths({ canary: { steps: [{ analysis: { templates: ["t"] } }] } }, [t]);
    assert.equal(errs.length, 1);
    assert.match(errs[0]!, /metric "m" has count 3 and no interval/);
  });

  it("an edit of a template is checked against the stored services that use it", () => {
    const svc = service({ canary: { steps: [{ analysis: { templates: ["endless"] } }] } });
    const ok = metricTemplate("endless", { judge: { threshold: { max: 0.1 } } });
    assert.deepEqual(
      checkAnalysisRefs([ok], [], { requireKnownTemplates: true, storedServices: [svc] }),
      [],
    );
    const errs = checkAnalysisRefs([endless], [ok], {
      requireKnownTemplates: true,
      storedServices: [svc],
    });
    assert.equal(errs.length, 1);
    assert.equal(errs[0]!.resource, "AnalysisTemplate/endless");
    assert.equal(errs[0]!.path, "spec.metrics[1]");
    assert.match(
      errs[0]!.message,
      /^used by Service svc at spec\.strategy\.canary\.steps\[0\]\.analysis: AnalysisTemplate endless, metric "m" has interval 2s and no count/,
    );
  });

  it("a comparative judge after a blue-green switch is refused, with the fix", () => {
    for (const judge of [
      { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
      { relative: { mode: "difference", maxIncrease: 0.01 } },
      { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 } },
    ]) {
      const t = metricTemplate("cmp", { judge, interval: "5s", count: 3 });
      const post = paths({ blueGreen: { postPromotionAnalysis: { templates: ["cmp"] } } }, [t]);
      assert.equal(post.length, 1, JSON.stringify(judge));
      assert.match(
        post[0]!,
        /^spec\.strategy\.blueGreen\.postPromotionAnalysis\.templates\[0\]: AnalysisTemplate cmp, metric "m" judges with \w+, which compares green with blue, but after the switch blue serves no traffic, so it could never pass; judge green alone after the switch \(e\.g\. judge: \{ threshold: \{ max: 0\.01 \} \}\), or compare before the switch, in prePromotionAnalysis/,
      );
      // After the switch, in the flag steps too; before it, the comparison is fine.
      assert.equal(
        paths({ blueGreen: { flagSteps: [{ analysis: { templates: ["cmp"] } }] } }, [t]).length,
        1,
      );
      assert.deepEqual(
        paths({ blueGreen: { prePromotionAnalysis: { templates: ["cmp"] } } }, [t]),
        [],
      );
    }
    // A flag comparison has both sides within green: allowed after the switch.
    const flag = metricTemplate("flag", {
      source: { builtin: { metric: "error_rate", flag: "new-checkout" } },
      judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
      interval: "5s",
      count: 3,
    });
    assert.deepEqual(
      paths({ blueGreen: { flagSteps: [{ analysis: { templates: ["flag"] } }] } }, [flag]),
      [],
    );
  });
});
