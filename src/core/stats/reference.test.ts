// Replays test/fixtures/stats-reference.json, written by scripts/stats-reference.py from
// scipy / statsmodels (or closed forms checked there by quadrature), against this module.
// Each expected value passes when |actual − expected| ≤ relative·|expected| or ≤ absolute,
// with the fixture's default tolerance (relative 1e-6, absolute 1e-12) unless a case states
// its own; an expected null means the value must be null (e.g. an undefined relative lift).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import * as stats from "./index.js";
import {
  adjustPValues,
  asymptoticConfidenceSequence,
  bayesBinomial,
  bayesNormal,
  cuped,
  mannWhitneyU,
  msprtTwoMeans,
  msprtTwoProportions,
  powerTwoMeans,
  powerTwoProportions,
  ratioTest,
  sampleRatioMismatch,
  sampleSizeTwoMeans,
  sampleSizeTwoProportions,
  twoProportionZTest,
  welchTTest,
  welchTTestSamples,
} from "./index.js";

interface Tolerance {
  relative: number;
  absolute: number;
}
interface Case {
  kind: string;
  name: string;
  input: Record<string, any>;
  expected: Record<string, number | null>;
  tolerance?: Tolerance;
}
interface Fixture {
  specVersion: number;
  tools: Record<string, string>;
  tolerance: Tolerance;
  cases: Case[];
  datasets: Record<string, number[]>;
}

const fixture: Fixture = JSON.parse(
  readFileSync(new URL("../../../test/fixtures/stats-reference.json", import.meta.url), "utf8"),
);

/** Replaces {dataset: name} references in an input by the data set's values. */
function resolve(input: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(input)) {
    out[k] = v && typeof v === "object" && "dataset" in v ? fixture.datasets[v.dataset] : v;
  }
  return out;
}

const run: Record<string, (i: Record<string, any>) => unknown> = {
  distribution: (i) => ({ value: (stats as any)[i.fn](...i.args) }),
  mannWhitney: (i) =>
    mannWhitneyU(i.candidate, i.baseline, { alternative: i.alternative, continuity: i.continuity }),
  twoProportion: (i) =>
    twoProportionZTest(i.control, i.treatment, { alpha: i.alpha, alternative: i.alternative }),
  welchSummary: (i) =>
    welchTTest(i.control, i.treatment, { alpha: i.alpha, alternative: i.alternative }),
  welchSamples: (i) =>
    welchTTestSamples(i.control, i.treatment, { alpha: i.alpha, alternative: i.alternative }),
  srm: (i) => sampleRatioMismatch(i.observed, i.weights ?? undefined),
  adjust: (i) => adjustPValues(i.pValues, i.method),
  sampleSizeTwoProportions: (i) => sampleSizeTwoProportions(i as any),
  powerTwoProportions: (i) => ({ power: powerTwoProportions(i as any, i.control) }),
  sampleSizeTwoMeans: (i) =>
    sampleSizeTwoMeans({ ...i, baselineMean: i.baselineMean ?? undefined } as any),
  powerTwoMeans: (i) => ({
    power: powerTwoMeans({ ...i, baselineMean: i.baselineMean ?? undefined } as any, i.control),
  }),
  msprtTwoProportions: (i) => msprtTwoProportions(i.control, i.treatment, i as any),
  msprtTwoMeans: (i) => msprtTwoMeans(i.control, i.treatment, i as any),
  asymptoticCs: (i) =>
    asymptoticConfidenceSequence(i.control, i.treatment, {
      alpha: i.alpha,
      tuning: i.tuning,
      relative: i.relative,
    }),
  bayesBinomial: (i) =>
    bayesBinomial(i.control, i.treatment, {
      priorAlpha: i.priorAlpha,
      priorBeta: i.priorBeta,
      method: i.method,
    }),
  bayesNormal: (i) => bayesNormal(i.control, i.treatment, { alpha: i.alpha }),
  ratioTest: (i) => ratioTest(i.control, i.treatment, { alpha: i.alpha }),
  cuped: (i) => cuped(i.control, i.treatment),
};

/** The value at a dotted path; null when the path runs through a null (e.g. an absent interval). */
function at(obj: unknown, path: string): unknown {
  return path.split(".").reduce<any>((o, k) => (o == null ? o : o[k]), obj);
}

describe(`stats reference fixture (spec ${fixture.specVersion}, scipy ${fixture.tools.scipy}, statsmodels ${fixture.tools.statsmodels})`, () => {
  test("fixture has the spec version this test reads, and a runner for every kind", () => {
    assert.equal(fixture.specVersion, 1);
    for (const c of fixture.cases) assert.ok(run[c.kind], `no runner for kind ${c.kind}`);
  });

  for (const c of fixture.cases) {
    test(`${c.kind}: ${c.name}`, () => {
      const tol = c.tolerance ?? fixture.tolerance;
      const actual = run[c.kind]!(resolve(c.input));
      for (const [path, expected] of Object.entries(c.expected)) {
        const got = at(actual, path);
        if (expected === null) {
          assert.equal(got, null, `${path}: expected null, got ${got}`);
          continue;
        }
        assert.equal(typeof got, "number", `${path}: expected a number, got ${got}`);
        const diff = Math.abs((got as number) - expected);
        assert.ok(
          diff <= tol.relative * Math.abs(expected) || diff <= tol.absolute,
          `${path}: got ${got}, expected ${expected} (|diff| ${diff.toExponential(2)})`,
        );
      }
    });
  }
});
