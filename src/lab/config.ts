/**
 * The strategy lab's fixed inputs: the six strategies with the defaults the lab runs them with
 * (steps, analysis templates), the five release scenarios, the traffic model, and the brief's
 * comparison table (its opinions, shown beside the measured figures). Pure data.
 *
 * Each default is the strategy as a Turnout user would write it for a model serving 100
 * requests/s on 4 instances, chosen once and kept for every scenario: a strategy is never tuned
 * to a scenario.
 */
import type { ExperimentSpec } from "../core/experiment/types.js";
import type { FlagSpec } from "../core/flags/types.js";
import type { AnalysisTemplateSpec, ServiceSpec, StrategySpec } from "../core/model.js";
import type { CompareSpec } from "../core/shadow/types.js";

export const STRATEGIES = [
  "blueGreen",
  "canary",
  "rolling",
  "shadow",
  "abTest",
  "blueGreenFlags",
] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export const SCENARIOS = ["good", "errors", "latency", "wrongPredictions", "crash"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** The scenarios in which the new version is bad. */
export const BAD_SCENARIOS: readonly ScenarioName[] = SCENARIOS.filter((s) => s !== "good");

/** The traffic model (see `--explain`). */
export interface TrafficModel {
  rps: number;
  users: number;
  baseErrorRate: number;
  latencyMedianMs: number;
  latencySigma: number;
  conversionRate: number;
  goodConversionLift: number;
  replicas: number;
  startupSeconds: number;
  crashFailedAfterSeconds: number;
  operatorDelaySeconds: number;
  horizonSeconds: number;
  maxSeconds: number;
}

/** The traffic model (see `--explain`). */
export const TRAFFIC = {
  /** Requests per second to the service, every second. */
  rps: 100,
  /** Users, ids u0..u9999; each request comes from one drawn uniformly. */
  users: 10_000,
  /** The stable version: 1% 5xx, log-normal latency (median 50 ms, sigma 0.5: p99 ≈ 160 ms). */
  baseErrorRate: 0.01,
  latencyMedianMs: 50,
  latencySigma: 0.5,
  /** A successful answer leads to a conversion event (the A/B test's goal) this often. */
  conversionRate: 0.03,
  /** The sound release converts this much better (it is why it ships): +20%. */
  goodConversionLift: 0.2,
  /** Instances of the service in the steady state. */
  replicas: 4,
  /** A new instance passes its readiness probe this long after it starts. */
  startupSeconds: 3,
  /**
   * `crash`: an instance that crashes on start is reported failed after this long: the process
   * runtime's default restart policy (1 s then 2 s back-off, failed at the 3rd crash in a row).
   */
  crashFailedAfterSeconds: 5,
  /** A person who is asked to act (a promotion, an inconclusive analysis) acts this much later. */
  operatorDelaySeconds: 30,
  /** Exposure to a bad version that is never rolled back is counted over this horizon. */
  horizonSeconds: 300,
  /** No rollout runs past this (below 2048: `run.ts` seeds each second's streams with it). */
  maxSeconds: 1_500,
} as const satisfies TrafficModel;

/** How the new version behaves in a scenario (the stable version is always the baseline). */
export interface ScenarioBehaviour {
  errorRate: number;
  latencyFactor: number;
  /** Share of successful answers that differ from the stable version's answer. */
  wrongRate: number;
  /** Conversion per successful answer, relative to the stable version's (1 = the same). */
  conversionFactor: number;
  /** Instances never become ready: they crash on start. */
  crash: boolean;
  summary: string;
}

const LIFT = 1 + TRAFFIC.goodConversionLift;

export const SCENARIO_BEHAVIOUR: Record<ScenarioName, ScenarioBehaviour> = {
  good: {
    errorRate: TRAFFIC.baseErrorRate,
    latencyFactor: 1,
    wrongRate: 0,
    conversionFactor: LIFT,
    crash: false,
    summary: "a sound release: same errors, latency and answers; +20% conversions",
  },
  errors: {
    errorRate: 0.1,
    latencyFactor: 1,
    wrongRate: 0,
    conversionFactor: LIFT,
    crash: false,
    summary: "5xx 1% -> 10%",
  },
  latency: {
    errorRate: TRAFFIC.baseErrorRate,
    latencyFactor: 1.5,
    wrongRate: 0,
    conversionFactor: LIFT,
    crash: false,
    summary: "latency +50% (every request 1.5x slower)",
  },
  wrongPredictions: {
    errorRate: TRAFFIC.baseErrorRate,
    latencyFactor: 1,
    wrongRate: 0.1,
    conversionFactor: LIFT,
    crash: false,
    summary: "10% of answers wrong, with a 200 and the usual latency",
  },
  crash: {
    errorRate: TRAFFIC.baseErrorRate,
    latencyFactor: 1,
    wrongRate: 0,
    conversionFactor: LIFT,
    crash: true,
    summary: "the new version's instances crash on start",
  },
};

/** The brief's table, as written there: opinions, not measurements. */
export interface BriefRow {
  label: string;
  keyFeature: string;
  risk: "Very low" | "Low" | "Medium";
  rollback: "No impact on users" | "Very easy" | "Easy" | "Medium";
}

export const BRIEF: Record<StrategyName, BriefRow> = {
  blueGreen: {
    label: "Blue-green",
    keyFeature: "Two full environments, instant switch",
    risk: "Low",
    rollback: "Very easy",
  },
  canary: {
    label: "Canary",
    keyFeature: "Gradual exposure to a small share of users",
    risk: "Low",
    rollback: "Easy",
  },
  rolling: {
    label: "Rolling",
    keyFeature: "Instances replaced batch by batch",
    risk: "Medium",
    rollback: "Medium",
  },
  shadow: {
    label: "Shadow",
    keyFeature: "Copies traffic, users never see the new version",
    risk: "Very low",
    rollback: "No impact on users",
  },
  abTest: {
    label: "A/B testing",
    keyFeature: "Sticky groups, measured impact",
    risk: "Medium",
    rollback: "Easy",
  },
  blueGreenFlags: {
    label: "Blue-green with feature flags",
    keyFeature: "Code shipped dark, feature exposed by flags, kill switch",
    risk: "Low",
    rollback: "Very easy",
  },
};

// ---------------------------------------------------------------------------------------
// Analysis templates

const interval = "10s";

/** Canary, rolling: the candidate against the stable version over the same window. */
function relativeTemplate(count?: number, flag?: string): AnalysisTemplateSpec {
  const src = (metric: "error_rate" | "latency") =>
    flag === undefined ? { builtin: metric } : { builtin: { metric, flag } };
  const finite = count === undefined ? {} : { count, inconclusiveLimit: count };
  return {
    metrics: [
      {
        name: "errors",
        source: src("error_rate"),
        // In the background, the always-valid sequential test (looked at every 10 s for as long
        // as the rollout runs); as a gate, a bound on the difference, because a sequential test
        // only passes once it has proven the increase small, which a 30 s gate on 10% of the
        // traffic cannot (it would end inconclusive and wait for a person).
        judge:
          count === undefined
            ? { sequential: { maxIncrease: 0.02, detect: 0.04, alpha: 0.01 } }
            : { relative: { mode: "difference", maxIncrease: 0.02 } },
        interval,
        ...(count === undefined ? {} : { minSamples: 200 }),
        ...finite,
      },
      {
        name: "latency",
        source: src("latency"),
        judge: { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.01 } },
        interval,
        minSamples: 50,
        ...finite,
      },
    ],
  };
}

/**
 * Blue-green after the switch: the stable version has no traffic left to compare with, so the
 * bounds are absolute, set from the stable version's known figures (1% 5xx, p99 ≈ 160 ms).
 */
const POST_PROMOTION: AnalysisTemplateSpec = {
  metrics: [
    {
      name: "errors",
      source: { builtin: "error_rate" },
      judge: { threshold: { max: 0.03 } },
      interval,
      count: 6,
      minSamples: 200,
    },
    {
      name: "latency-p99",
      source: { builtin: "latency" },
      judge: { threshold: { max: 200 } },
      interval,
      count: 6,
      minSamples: 200,
    },
  ],
};

export const TEMPLATES: Record<string, AnalysisTemplateSpec> = {
  "golden-signals": relativeTemplate(),
  "batch-check": relativeTemplate(3),
  "post-promotion": POST_PROMOTION,
  "feature-check": relativeTemplate(3, "new-model"),
};

/** The flag of blue-green with feature flags: the new model's code path, dark by default. */
export const FLAG_KEY = "new-model";
export const FLAG_SPEC: FlagSpec = {
  type: "boolean",
  variants: { on: true, off: false },
  defaultVariant: "off",
  state: "ENABLED",
};

/** What the shadow compares: the model's answer is `{label, score}`; the label decides. */
export const SHADOW_COMPARE: CompareSpec = { classification: { field: "$.label" } };

const AB: ExperimentSpec = {
  split: 50,
  assignment: { header: "x-user-id" },
  metrics: [
    { name: "conversion", kind: "binomial", role: "goal", source: { event: "conversion" } },
    { name: "errors", kind: "binomial", role: "guardrail", source: { builtin: "error_rate" } },
    { name: "latency", kind: "mean", role: "guardrail", source: { builtin: "latency" } },
  ],
  method: "sequential",
  alpha: 0.05,
  minSamples: 200,
  maxDuration: "20m",
  decision: "auto",
  correction: "holm",
  sequentialTuning: 5000,
  chanceToWin: 0.95,
};

export const STRATEGY_SPECS: Record<StrategyName, StrategySpec> = {
  blueGreen: {
    // No autoPromotionSeconds: Turnout's blue-green waits for `turnout promote`.
    blueGreen: { postPromotionAnalysis: { templates: ["post-promotion"] } },
  },
  canary: {
    canary: {
      steps: [
        { setWeight: 10 },
        { pause: { duration: "60s" } },
        { setWeight: 25 },
        { pause: { duration: "60s" } },
        { setWeight: 50 },
        { pause: { duration: "60s" } },
      ],
      analysis: { templates: ["golden-signals"], startingStep: 0 },
    },
  },
  rolling: {
    // Kubernetes' defaults (25% surge, 25% unavailable), a check between batches.
    rolling: { analysis: { templates: ["batch-check"] } },
  },
  shadow: {
    shadow: {
      percent: 100,
      compare: SHADOW_COMPARE,
      gate: {
        minSamples: 2000,
        duration: "30s",
        maxMismatchRate: 0.02,
        minAgreement: 0.98,
        maxLatencyIncrease: 0.2,
      },
    },
  },
  abTest: { abTest: AB },
  blueGreenFlags: {
    blueGreen: {
      postPromotionAnalysis: { templates: ["post-promotion"] },
      flagSteps: [
        { setFlag: { flag: FLAG_KEY, percentage: 10 } },
        { analysis: { templates: ["feature-check"] } },
        { setFlag: { flag: FLAG_KEY, percentage: 50 } },
        { analysis: { templates: ["feature-check"] } },
        { setFlag: { flag: FLAG_KEY, percentage: 100 } },
      ],
    },
  },
};

/**
 * Everything a lab run is made of, so that the same simulator can run another setup: the
 * default lab's (`DEFAULT_CONFIG`, the constants above) or `--live`'s scaled-down one
 * (live-config.ts), whose simulated figures are printed beside the live ones.
 */
export interface LabConfig {
  traffic: TrafficModel;
  scenarios: Record<ScenarioName, ScenarioBehaviour>;
  templates: Record<string, AnalysisTemplateSpec>;
  strategies: Record<StrategyName, StrategySpec>;
}

export const DEFAULT_CONFIG: LabConfig = {
  traffic: TRAFFIC,
  scenarios: SCENARIO_BEHAVIOUR,
  templates: TEMPLATES,
  strategies: STRATEGY_SPECS,
};

/** The service every run deploys (version and strategy set per run). */
export function serviceSpec(
  strategy: StrategyName,
  version: string,
  config: LabConfig = DEFAULT_CONFIG,
): ServiceSpec {
  return {
    listen: { host: "127.0.0.1", port: 8080 },
    stickiness: { header: "x-user-id" },
    runtime: {
      process: {
        command: ["node", "examples/model/server.mjs"],
        replicas: config.traffic.replicas,
        readiness: {
          path: "/healthz",
          periodSeconds: 1,
          timeoutSeconds: 1,
          initialDelaySeconds: 0,
        },
        startupTimeoutSeconds: 60,
        terminationGracePeriodSeconds: 5,
      },
    },
    version,
    strategy: config.strategies[strategy],
    ...(strategy === "blueGreenFlags" ? { flags: [FLAG_KEY] } : {}),
  };
}
