/**
 * `turnout lab --live`'s setup: the default lab scaled down ten times in time, so that a real
 * rollout through a real `turnout up` ends in seconds instead of minutes. The same strategies
 * and judges, with every duration (analysis intervals, pauses, the person's delay, the horizon,
 * the A/B test's time limit, the shadow gate's duration) divided by `TIME_SCALE`, half the
 * requests a second, and every sample threshold (`minSamples`) divided by 20, since a window
 * ten times shorter at half the rate holds 20 times fewer requests. 2 instances instead of 4,
 * 1,000 users instead of 10,000
 * (so that users come back within the shorter run), and numbers the example model can play:
 * no errors on the stable version (every 5xx is then the new version's), a fixed delay of
 * `LIVE_LATENCY_MS` (the router measures a little more), and 30% conversions (so that the A/B
 * test decides within its shorter time).
 *
 * The simulator runs this same setup (`runLab({ config: LIVE_CONFIG })`): the live figures are
 * compared with the simulated ones of this setup, not with the default lab's.
 */
import type { ExperimentSpec } from "../core/experiment/types.js";
import type { AnalysisTemplateSpec, StrategySpec } from "../core/model.js";
import {
  DEFAULT_CONFIG,
  type LabConfig,
  type ScenarioBehaviour,
  type ScenarioName,
  type StrategyName,
  type TrafficModel,
} from "./config.js";

export const TIME_SCALE = 10;

/** The model's added delay on the stable version; the latency scenario's is 1.5 times it. */
export const LIVE_LATENCY_MS = 20;

/**
 * Requests a second to the service: half the default lab's, so that the router, the model's
 * processes and the users all fit on a small machine; sample thresholds shrink with it.
 */
const RPS = 50;

const traffic: TrafficModel = {
  rps: RPS,
  users: 1_000,
  baseErrorRate: 0,
  // What the router measures for a 20 ms delay: the delay, the timer's lateness and the proxy.
  latencyMedianMs: 22,
  latencySigma: 0.1,
  conversionRate: 0.3,
  goodConversionLift: 0.2,
  replicas: 2,
  startupSeconds: 1,
  // The runtime's restart policy: crash, 1 s, crash, 2 s, crash: failed, about 3.3 s in.
  crashFailedAfterSeconds: 4,
  operatorDelaySeconds: 30 / TIME_SCALE,
  horizonSeconds: 300 / TIME_SCALE,
  maxSeconds: 150,
};

/** "10s" -> "1s", "60s" -> "6s", "20m" -> "2m", 30 -> 3. */
function scaled(d: string | number): string {
  if (typeof d === "number") return `${d / TIME_SCALE}s`;
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`live-config: unexpected duration ${d}`);
  const n = Number(m[1]) / TIME_SCALE;
  return Number.isInteger(n) ? `${n}${m[2]}` : `${Math.round(n * (m[2] === "m" ? 60 : 1))}s`;
}

/** A sample threshold for windows `TIME_SCALE` times shorter with `RPS` requests a second. */
function samples(n: number | undefined): number | undefined {
  const factor = TIME_SCALE * (DEFAULT_CONFIG.traffic.rps / RPS);
  return n === undefined ? undefined : Math.max(1, Math.round(n / factor));
}

function template(t: AnalysisTemplateSpec): AnalysisTemplateSpec {
  return {
    ...t,
    metrics: t.metrics.map((m) => {
      const out = { ...m, interval: scaled(m.interval ?? "10s") };
      if (m.minSamples !== undefined) out.minSamples = samples(m.minSamples)!;
      // Blue-green's absolute latency bound: above the stable version's p99, below the bad one's.
      if ("threshold" in m.judge && m.name === "latency-p99") {
        out.judge = { threshold: { max: Math.round(LIVE_LATENCY_MS * 1.7) } };
      }
      return out;
    }),
  };
}

/** Turnout's 30 s for which a failed candidate (or blue-green's old blue) is kept warm. */
const KEEP_WARM = 30 / TIME_SCALE;

function strategy(s: StrategySpec): StrategySpec {
  if (s.blueGreen) {
    return {
      blueGreen: {
        ...s.blueGreen,
        scaleDownDelaySeconds: KEEP_WARM,
        abortScaleDownDelaySeconds: KEEP_WARM,
      },
    };
  }
  if (s.canary) {
    return {
      canary: {
        ...s.canary,
        abortScaleDownDelaySeconds: KEEP_WARM,
        steps: s.canary.steps.map((st) =>
          "pause" in st && st.pause.duration !== undefined
            ? { pause: { duration: scaled(st.pause.duration) } }
            : st,
        ),
      },
    };
  }
  if (s.shadow) {
    const g = s.shadow.gate!;
    return {
      shadow: {
        ...s.shadow,
        // The router mirrors GET and HEAD unless told that POST /predict is safe to send twice
        // (the simulated mirror copies every request, as this does).
        methods: ["POST"],
        sideEffectFree: true,
        gate: { ...g, minSamples: samples(g.minSamples)!, duration: scaled(g.duration!) },
      },
    };
  }
  if (s.abTest) {
    const a: ExperimentSpec = s.abTest;
    return {
      abTest: {
        ...a,
        minSamples: samples(a.minSamples)!,
        maxDuration: scaled(a.maxDuration!),
        abortScaleDownDelaySeconds: KEEP_WARM,
      },
    };
  }
  return s;
}

const scenarios = Object.fromEntries(
  Object.entries(DEFAULT_CONFIG.scenarios).map(([k, b]) => [
    k,
    { ...b, ...(b.errorRate === DEFAULT_CONFIG.traffic.baseErrorRate ? { errorRate: 0 } : {}) },
  ]),
) as Record<ScenarioName, ScenarioBehaviour>;

export const LIVE_CONFIG: LabConfig = {
  traffic,
  scenarios,
  templates: Object.fromEntries(
    Object.entries(DEFAULT_CONFIG.templates).map(([k, t]) => [k, template(t)]),
  ),
  strategies: Object.fromEntries(
    Object.entries(DEFAULT_CONFIG.strategies).map(([k, s]) => [k, strategy(s)]),
  ) as Record<StrategyName, StrategySpec>,
};
