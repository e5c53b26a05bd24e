/**
 * One lab run: one strategy, one scenario, one seed. Turnout's real decision core (`reconcile`
 * with its step kinds, the analysis runs and judges, the experiment analysis, the shadow gate)
 * and the real builtin metric provider, driven second by second with an injected clock against
 * simulated users, a simulated runtime and the router's selection rules. Pure: no I/O, no clock.
 *
 * Each second `t` (the controller's 1-second resync), in order:
 *   1. The runtime reports readiness: an instance is ready `startupSeconds` after it started,
 *      or, in `crash`, failed `crashFailedAfterSeconds` after it started (never ready).
 *   2. When anything is due (a measurement, a wake-up `reconcile` asked for, a change of
 *      readiness, a running experiment, a command), the measurements due are taken through
 *      `BuiltinProvider.measure` over the lab's per-second records, the shadow report is built
 *      from the mirror's real aggregate, the experiment's data from its exposures and outcomes,
 *      and `reconcile` decides, exactly as the controller does.
 *   3. The runtime converges on the targets (instances start or stop at once).
 *   4. The route table in force: the weights as sticky bucket ranges (the router's murmur3
 *      bucket of the user id, canary first), the experiment's arms, the mirror, the flag's
 *      percentage rollout and kill switch, each through the same hashing as the router and the
 *      flag evaluator (`lab.test.ts` checks them against `selectBackend` and `evaluate`).
 *   5. The second's 100 requests are served: each from a user drawn uniformly, with common
 *      random numbers (a request's error draw, latency draw, answer draw and conversion draw
 *      come from a stream that does not depend on which version serves it), so that every
 *      strategy sees the same requests and the "what the good version would have said" of each
 *      request is known: a failed request counts only if the stable version would have answered
 *      it, a wrong answer only if it differs from the stable version's.
 *
 * The person: when a rollout waits for one (a promotion, an inconclusive analysis), the lab's
 * person promotes it `operatorDelaySeconds` later, whatever the scenario (they see what the
 * analysis shows, nothing more), and that counts as one manual action.
 */
import { dueMeasurements, type RunState } from "../core/analysis/run.js";
import type { ExperimentData, MetricArmData } from "../core/experiment/types.js";
import { compileFlags, effectiveSpec, FLAG_HASH_VERSION } from "../core/flags/evaluate.js";
import { bucketOf, hashScheme } from "../core/hashing.js";
import type { Command, EventDraft, ServiceSpec, ServiceStatus } from "../core/model.js";
import {
  type AnalysisObservation,
  type ReconcileOutput,
  reconcile,
  type VersionReadiness,
} from "../core/rollout.js";
import { ShadowAggregate } from "../core/shadow/aggregate.js";
import { comparePair, compileCompare } from "../core/shadow/compare.js";
import type { CapturedResponse, PairResult } from "../core/shadow/types.js";
import { BuiltinProvider } from "../metrics/providers/builtin/builtin-provider.js";
import { simulationRng } from "../sim/random.js";
import {
  DEFAULT_CONFIG,
  FLAG_KEY,
  FLAG_SPEC,
  type LabConfig,
  type ScenarioName,
  SHADOW_COMPARE,
  type StrategyName,
  serviceSpec,
  type TrafficModel,
} from "./config.js";
import { flagLabel, LabMeasurements } from "./measurements.js";

export const SERVICE = "model";
export const STABLE = "v1";
export const CANDIDATE = "v2";
/** The start of every run (a whole second). */
export const LAB_START_MS = 1_700_000_000_000;

/** What one run measured. Times in seconds since the rollout started (the new version set). */
export interface RunMetrics {
  /** Distinct users who got at least one answer from the bad version (the new one, for good). */
  usersExposed: number;
  /** 5xx answers users got that the stable version would have answered. */
  failedRequests: number;
  /** Answers users got that differ from what the stable version would have said. */
  wrongAnswers: number;
  /** The first failing verdict or automatic reaction; null when never detected. */
  detectSeconds: number | null;
  /** When the last user got the bad version (0: nobody did); null when it was never removed. */
  recoverSeconds: number | null;
  /** Instance-seconds above the steady state's instances, until the rollout settled. */
  extraInstanceSeconds: number;
  /** Commands a person had to send. */
  manualActions: number;
  /** When the new version served 100% with the rollout completed; null when it never did. */
  totalSeconds: number | null;
}

export interface RunResult extends RunMetrics {
  strategy: StrategyName;
  scenario: ScenarioName;
  seed: number;
  /** How the rollout ended. */
  outcome: "completed" | "rolledBack" | "featureOff" | "timeout";
  /** The last status message. */
  message: string;
  /** Commands a person sent after the detection (to roll back, or to go on). */
  manualAfterDetect: number;
  /**
   * From the detection until the version users are back on has all its instances ready (0: it
   * never lost any, as a warm blue or a full-size stable); null without a detection.
   */
  restoreSeconds: number | null;
}

export interface RunOptions {
  /** Keep the events in the result (for `--explain` and tests). */
  events?: boolean;
  /** What to run; default the default lab's setup. */
  config?: LabConfig;
}

export interface RunTrace extends RunResult {
  events: (EventDraft & { atSeconds: number })[];
}

// ---------------------------------------------------------------------------------------
// Users: buckets precomputed once per process (the same ids in every run).

export interface UserBuckets {
  route: Uint32Array;
  experiment: Uint32Array;
  flag: Uint32Array;
}
let buckets: UserBuckets | null = null;

/** The experiment's salt: its default name, `<service>-<candidate>`. */
export const EXPERIMENT_SALT = `${SERVICE}-${CANDIDATE}`;

export function userId(u: number): string {
  return `u${u}`;
}

/** Whether user `u`'s request goes to the candidate under `r` (the router's selection). */
export function servesCandidate(ub: UserBuckets, r: Routing, u: number): boolean {
  return r.experiment ? ub.experiment[u]! >= r.experimentEnd : ub.route[u]! < r.candidateEnd;
}

/** Whether the flag is on for user `u` (the flag evaluator's percentage rollout). */
export function flagOn(ub: UserBuckets, flagEnd: number, u: number): boolean {
  return ub.flag[u]! < flagEnd;
}

/** The buckets of users u0 .. u(n-1) at least (a user's buckets do not depend on n). */
export function userBuckets(n: number = DEFAULT_CONFIG.traffic.users): UserBuckets {
  if (buckets && buckets.route.length >= n) return buckets;
  const flagScheme = hashScheme(FLAG_HASH_VERSION);
  const b: UserBuckets = {
    route: new Uint32Array(n),
    experiment: new Uint32Array(n),
    flag: new Uint32Array(n),
  };
  for (let u = 0; u < n; u++) {
    const id = userId(u);
    // Stickiness salt: the service's name (no `stickiness.salt`); the flag's: its key.
    b.route[u] = bucketOf(SERVICE, id);
    b.experiment[u] = bucketOf(EXPERIMENT_SALT, id);
    b.flag[u] = flagScheme.bucket(FLAG_SPEC.salt ?? FLAG_KEY, id);
  }
  buckets = b;
  return b;
}

// ---------------------------------------------------------------------------------------
// The simulated runtime

interface Instance {
  startedAt: number;
}

class Runtime {
  readonly byVersion = new Map<string, Instance[]>();
  constructor(
    private readonly crashing: string | null,
    private readonly traffic: TrafficModel,
  ) {}

  ensure(targets: { version: string; replicas: number }[], now: number): void {
    const want = new Map(targets.map((t) => [t.version, t.replicas]));
    for (const v of [...this.byVersion.keys()]) if (!want.has(v)) this.byVersion.delete(v);
    for (const [v, n] of want) {
      const list = this.byVersion.get(v) ?? [];
      // Newest (least ready) first out, as the process runtime picks instances to stop.
      while (list.length > n) list.pop();
      while (list.length < n) list.push({ startedAt: now });
      this.byVersion.set(v, list);
    }
  }

  readiness(now: number): Record<string, VersionReadiness> {
    const out: Record<string, VersionReadiness> = {};
    for (const [v, list] of this.byVersion) {
      const r: VersionReadiness = { ready: 0, failed: 0 };
      for (const i of list) {
        if (v === this.crashing) {
          if (now - i.startedAt >= this.traffic.crashFailedAfterSeconds * 1000) {
            r.failed++;
            r.message = "exited with code 1 (3 crashes in a row during start-up)";
          }
        } else if (now - i.startedAt >= this.traffic.startupSeconds * 1000) r.ready++;
      }
      out[v] = r;
    }
    return out;
  }

  count(): number {
    let n = 0;
    for (const list of this.byVersion.values()) n += list.length;
    return n;
  }
}

// ---------------------------------------------------------------------------------------
// Shadow pairs: the real comparator on the model's three kinds of answer, once.

const MODEL_OK = body({ label: "legit", score: 0.12 });
const MODEL_WRONG = body({ label: "fraud", score: 0.88 });
const MODEL_ERROR = body({ error: "internal error" });

function body(x: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(x));
}

function captured(status: number, b: Uint8Array): CapturedResponse {
  return {
    status,
    headers: { "content-type": "application/json" },
    body: b,
    truncated: false,
    latencyMs: 0,
  };
}

interface PairKinds {
  same: PairResult;
  wrong: PairResult;
  shadowFailed: PairResult;
  primaryFailed: PairResult;
  bothFailed: PairResult;
}
let pairKinds: PairKinds | null = null;

function pairs(): PairKinds {
  if (pairKinds) return pairKinds;
  const c = compileCompare(SHADOW_COMPARE);
  const ok = captured(200, MODEL_OK);
  const err = captured(500, MODEL_ERROR);
  pairKinds = {
    same: comparePair(c, ok, ok),
    wrong: comparePair(c, ok, captured(200, MODEL_WRONG)),
    shadowFailed: comparePair(c, ok, err),
    primaryFailed: comparePair(c, err, ok),
    bothFailed: comparePair(c, err, err),
  };
  return pairKinds;
}

/** Seeds are below this, so that every (seed, second, stream) has its own generator seed. */
export const MAX_SEED = 2 ** 36;

/**
 * The generator of one stream of one second of one seed. Streams: 0 users, 1 error draws,
 * 2 answer draws, 3 latencies, 4 conversions, 5 mirroring. Seeded apart (sfc32 from distinct
 * integers), so streams and seconds are independent.
 */
function stream(seed: number, t: number, k: number): () => number {
  return simulationRng((seed * 2048 + t) * 8 + k);
}

const ON_LABEL = flagLabel(FLAG_KEY, "on");
const OFF_LABEL = flagLabel(FLAG_KEY, "off");
const MIRROR_REQ = { requestId: "lab", method: "POST", target: "/predict" };
const NEVER_ABORTED = new AbortController().signal;

// ---------------------------------------------------------------------------------------
// One run

export interface Routing {
  /** Buckets below this go to the candidate (sticky ranges, canary first). */
  candidateEnd: number;
  /** The experiment's arm ranges: buckets below `experimentEnd` are A (stable), else B. */
  experiment: boolean;
  experimentEnd: number;
  mirror: boolean;
  mirrorPercent: number;
  /** Blue-green with flags: the flag is evaluated for the candidate's requests. */
  flagEvaluated: boolean;
  flagEnd: number;
}

/** Runs one strategy against one scenario with one seed. */
export async function runOne(
  strategy: StrategyName,
  scenario: ScenarioName,
  seed: number,
  opts: RunOptions = {},
): Promise<RunTrace> {
  return (await simulate(strategy, scenario, seed, opts, false))[0]!;
}

/**
 * Whether `runGoodAndWrong` may measure `wrongPredictions` from the `good` run: the strategy
 * never compares answers (only the shadow's mirror does), so a wrong answer with a 200, the
 * usual latency and the usual conversions changes nothing it observes, and both runs take the
 * same decisions on the same traffic until the good one ends (`lab.test.ts` checks the pair
 * against two separate runs).
 */
export function sharesGoodRun(strategy: StrategyName): boolean {
  return strategy !== "shadow";
}

/**
 * `good` and `wrongPredictions` of one strategy and seed in one simulation (see
 * `sharesGoodRun`): the same numbers as two `runOne`s, in a little over the time of one. The
 * second result continues where the good one ends, for as long as the wrong version serves.
 */
export async function runGoodAndWrong(
  strategy: StrategyName,
  seed: number,
  opts: RunOptions = {},
): Promise<[RunTrace, RunTrace]> {
  if (!sharesGoodRun(strategy)) {
    throw new Error(`${strategy} compares answers: its wrongPredictions run is its own`);
  }
  const [good, wrong] = await simulate(strategy, "good", seed, opts, true);
  return [good!, wrong!];
}

async function simulate(
  strategy: StrategyName,
  scenarioAsked: ScenarioName,
  seed: number,
  opts: RunOptions,
  withTwin: boolean,
): Promise<RunTrace[]> {
  const cfg = opts.config ?? DEFAULT_CONFIG;
  const TRAFFIC = cfg.traffic;
  const TEMPLATES = cfg.templates;
  let scenario = scenarioAsked;
  let beh = cfg.scenarios[scenario];
  let bad = scenario !== "good";
  /**
   * The twin: `wrongPredictions`, measured alongside `good` while both take the same decisions.
   * Its own users exposed, wrong answers and last bad second; when the good run ends, the loop
   * goes on as the twin (`scenario`, `beh`, `bad` and these counters switch over).
   */
  let twin = withTwin;
  const twinBeh = cfg.scenarios.wrongPredictions;
  const twinExposed = twin ? new Uint8Array(TRAFFIC.users) : null;
  let twinExposedCount = 0;
  let twinWrongAnswers = 0;
  let twinLastBadSec = -1;
  const results: RunTrace[] = [];
  const flags = strategy === "blueGreenFlags";
  const ub = userBuckets(TRAFFIC.users);
  const kinds = pairs();
  const U = TRAFFIC.users;
  if (!(Number.isSafeInteger(seed) && seed >= 0 && seed < MAX_SEED)) {
    throw new RangeError(`seed must be a whole number in [0, ${MAX_SEED}), got ${seed}`);
  }

  const firstSec = LAB_START_MS / 1000;
  const meas = new LabMeasurements(firstSec);
  const provider = new BuiltinProvider({ measurements: meas });
  const runtime = new Runtime(beh.crash ? CANDIDATE : null, TRAFFIC);
  let exposed = new Uint8Array(U);
  let exposedCount = 0;
  let failedRequests = 0;
  let wrongAnswers = 0;
  let lastBadSec = -1;
  let extra = 0;
  let manual = 0;
  let detectAt: number | null = null;
  let manualAfterDetect = 0;
  let restoreAt: number | null = null;
  let completedAt: number | null = null;
  let featureOff = false;
  const events: (EventDraft & { atSeconds: number })[] = [];

  // Experiment data, per arm (0: A on stable, 1: B on the candidate).
  const expSeen = [new Uint8Array(U), new Uint8Array(U)];
  const expConv = new Uint16Array(U);
  const units = [0, 0];
  const conv = [
    { sum: 0, sumSquares: 0, converted: 0 },
    { sum: 0, sumSquares: 0, converted: 0 },
  ];
  const armReq = [
    { requests: 0, errors: 0, lat: 0, lat2: 0 },
    { requests: 0, errors: 0, lat: 0, lat2: 0 },
  ];
  let expName: string | null = null;
  let shadowAgg: ShadowAggregate | null = null;
  let shadowId: string | null = null;

  // 0. The service exists with v1 stable and running.
  const specOf = (v: string): ServiceSpec => serviceSpec(strategy, v, cfg);
  runtime.ensure([{ version: STABLE, replicas: TRAFFIC.replicas }], LAB_START_MS - 60_000);
  let status: ServiceStatus | null = reconcile({
    now: LAB_START_MS - 1000,
    service: { name: SERVICE, generation: 1, spec: specOf(STABLE) },
    status: null,
    commands: [],
    readiness: runtime.readiness(LAB_START_MS - 1000),
    templates: TEMPLATES,
  }).status;
  const spec = specOf(CANDIDATE);
  let last: ReconcileOutput | null = null;
  let lastReadiness = "";
  let pausedSince: number | null = null;
  let commandId = 1;
  let routing: Routing = {
    candidateEnd: 0,
    experiment: false,
    experimentEnd: 0,
    mirror: false,
    mirrorPercent: 0,
    flagEvaluated: false,
    flagEnd: 0,
  };
  let outcome: RunResult["outcome"] = "timeout";
  const median = TRAFFIC.latencyMedianMs;
  const sigma = TRAFFIC.latencySigma;
  const baseErr = TRAFFIC.baseErrorRate;
  const convRate = TRAFFIC.conversionRate;

  for (let t = 0; t < TRAFFIC.maxSeconds; t++) {
    const now = LAB_START_MS + t * 1000;
    const sec = firstSec + t;
    meas.servedUntilSec = sec;
    // 1. Readiness.
    const readiness = runtime.readiness(now);
    const rkey = JSON.stringify(readiness);
    // 2. The decision, when anything is due.
    const s = status as ServiceStatus;
    const inRollout = s.canaryVersion !== null;
    if (inRollout && s.phase === "Paused") pausedSince ??= now;
    else pausedSince = null;
    const commands: Command[] = [];
    if (pausedSince !== null && now - pausedSince >= TRAFFIC.operatorDelaySeconds * 1000) {
      commands.push({
        id: commandId++,
        service: SERVICE,
        type: "promote",
        args: {},
        actor: "lab-person",
        createdAt: now,
      });
      manual++;
      if (detectAt !== null) manualAfterDetect++;
      pausedSince = null;
    }
    const due =
      last === null ||
      commands.length > 0 ||
      rkey !== lastReadiness ||
      (last.wakeAt !== null && now >= last.wakeAt) ||
      s.experiment != null ||
      anyDue(s, now);
    lastReadiness = rkey;
    if (due) {
      const observations = await measure(provider, s, now);
      // The mirror phase's report, as the controller reads it for the gate.
      let shadowReport: { id: string; report: ReturnType<ShadowAggregate["report"]> } | null = null;
      if (s.shadow && shadowAgg && shadowId === s.shadow.id) {
        shadowReport = { id: shadowId, report: shadowAgg.report() };
      }
      let experimentData: ExperimentData | undefined;
      if (s.experiment && expName === s.experiment.name) {
        experimentData = expData(expName, now);
      }
      const out = reconcile({
        now,
        service: { name: SERVICE, generation: 2, spec },
        status: s,
        commands,
        readiness,
        templates: TEMPLATES,
        observations,
        ...(experimentData ? { experimentData } : {}),
        ...(shadowReport ? { shadowReport } : {}),
      });
      last = out;
      status = out.status;
      for (const e of out.events) {
        const atSeconds = (e.time - LAB_START_MS) / 1000;
        if (opts.events) events.push({ ...e, atSeconds });
        if (detectAt === null && detects(e)) detectAt = atSeconds;
        if (e.type === "FlagKilled") featureOff = true;
        if (e.type === "RolloutCompleted" && !featureOff) completedAt = atSeconds;
        if (e.type === "RolloutAborted") outcome = "rolledBack";
      }
      if (featureOff) outcome = "featureOff";
      else if (completedAt !== null) outcome = "completed";
      // 3. The runtime converges.
      runtime.ensure(out.targets, now);
      // 4. The route table now in force.
      routing = routingOf(out, runtime.readiness(now));
      if (twin && routing.mirror) throw new Error(`${strategy} mirrors: it has no twin run`);
      const st = out.status;
      if (st.experiment && st.experiment.name !== expName) {
        expName = st.experiment.name;
        expSeen[0]!.fill(0);
        expSeen[1]!.fill(0);
      }
      if (st.shadow && st.shadow.id !== shadowId) {
        shadowId = st.shadow.id;
        shadowAgg = new ShadowAggregate();
      }
    }
    extra += Math.max(0, runtime.count() - TRAFFIC.replicas);
    if (detectAt !== null && restoreAt === null) {
      const st = status as ServiceStatus;
      const serving = st.canaryVersion === null ? st.stableVersion : null;
      const full = (at: number) =>
        serving !== null && (runtime.readiness(at)[serving]?.ready ?? 0) >= TRAFFIC.replicas;
      if (full(now)) restoreAt = Math.max(detectAt, t);
      else if (full(now + 1000)) restoreAt = t + 1;
    }

    // 5. This second's requests.
    const n = TRAFFIC.rps;
    const r = routing;
    const flagOnEnd = r.flagEvaluated ? r.flagEnd : 0;
    // Measurements are read by analysis only while a rollout runs: after it, nothing reads
    // them (the runs that watch a bad version to the horizon only count exposure then).
    const recording = (status as ServiceStatus).canaryVersion !== null;
    const base = recording ? meas.second(STABLE, "", sec) : null;
    const cand =
      recording && (r.candidateEnd > 0 || r.experiment) ? meas.second(CANDIDATE, "", sec) : null;
    const labelled = recording && flags && r.flagEvaluated;
    const onRec = labelled ? meas.second(CANDIDATE, ON_LABEL, sec) : null;
    const offRec = labelled ? meas.second(CANDIDATE, OFF_LABEL, sec) : null;
    // Latencies matter to analysis, the experiment and the mirror only; the draws are taken
    // either way, so that the stream stays aligned across strategies.
    const needLatency = recording || r.mirror;
    // The second's streams (see `streams`): what a draw is does not depend on what was drawn
    // before, in this second or earlier ones, so the i-th request of second t is the same in
    // every run with this seed, and unneeded draws can be skipped.
    const rngUsers = stream(seed, t, 0);
    const rngError = stream(seed, t, 1);
    const rngAnswer = stream(seed, t, 2);
    const rngLatency = needLatency ? stream(seed, t, 3) : null;
    const rngConversion = r.experiment ? stream(seed, t, 4) : null;
    const rngMirror = r.mirror ? stream(seed, t, 5) : null;
    for (let i = 0; i < n; i++) {
      const u = (rngUsers() * U) | 0;
      // The request's own draws, whichever version serves it.
      const eDraw = rngError();
      const wDraw = rngAnswer();
      // Log-normal (Box-Muller), as `lognormalLatency` in sim/random.ts.
      const baseLatency =
        rngLatency !== null
          ? median *
            Math.exp(
              sigma *
                Math.sqrt(-2 * Math.log(1 - rngLatency())) *
                Math.cos(2 * Math.PI * rngLatency()),
            )
          : 0;
      const isCand = servesCandidate(ub, r, u);
      const featureOn = isCand && (!flags || flagOn(ub, flagOnEnd, u));
      const isBad = bad && featureOn;
      const errRate = isBad ? beh.errorRate : baseErr;
      const fail = eDraw < errRate;
      const latency = isBad ? baseLatency * beh.latencyFactor : baseLatency;
      const wrong = isBad && !fail && wDraw < beh.wrongRate;
      const rec = isCand ? cand : base;
      if (rec !== null) {
        rec.requests++;
        if (fail) rec.errors++;
        rec.latency.add(latency);
      }
      if (isCand && onRec !== null) {
        const lrec = featureOn ? onRec : (offRec as NonNullable<typeof offRec>);
        lrec.requests++;
        if (fail) lrec.errors++;
        lrec.latency.add(latency);
      }
      if (isCand && (bad ? isBad : true)) {
        if (exposed[u] === 0) {
          exposed[u] = 1;
          exposedCount++;
        }
        if (isBad) lastBadSec = t;
      }
      if (fail && eDraw >= baseErr) failedRequests++;
      if (wrong) wrongAnswers++;
      if (twinExposed !== null && twin && featureOn) {
        // As the `isBad` branches above would count them in `wrongPredictions`.
        if (twinExposed[u] === 0) {
          twinExposed[u] = 1;
          twinExposedCount++;
        }
        twinLastBadSec = t;
        if (!fail && wDraw < twinBeh.wrongRate) twinWrongAnswers++;
      }
      if (r.experiment) {
        const arm = isCand ? 1 : 0;
        const seen = expSeen[arm]!;
        if (seen[u] === 0) {
          seen[u] = 1;
          units[arm]!++;
          if (expConv[u]! > 0) expConv[u] = 0;
        }
        const a = armReq[arm]!;
        a.requests++;
        if (fail) a.errors++;
        a.lat += latency;
        a.lat2 += latency * latency;
        const factor = isCand ? beh.conversionFactor : 1;
        if (!fail && rngConversion!() < convRate * factor) {
          const k = expConv[u]!;
          expConv[u] = k + 1;
          const c = conv[arm]!;
          c.sum++;
          c.sumSquares += 2 * k + 1;
          if (k === 0) c.converted++;
        }
      }
      if (rngMirror !== null && shadowAgg !== null && rngMirror() * 100 < r.mirrorPercent) {
        // The copy on the new version: the same request, so the same draws.
        shadowAgg.sent();
        const sFail = eDraw < beh.errorRate;
        const sWrong = !sFail && wDraw < beh.wrongRate;
        const kind = fail
          ? sFail
            ? kinds.bothFailed
            : kinds.primaryFailed
          : sFail
            ? kinds.shadowFailed
            : sWrong
              ? kinds.wrong
              : kinds.same;
        shadowAgg.addPair(
          { ...kind, latencyMs: { primary: latency, shadow: baseLatency * beh.latencyFactor } },
          MIRROR_REQ,
        );
      }
    }

    // 6. Over? The rollout ended, the instances settled, and a bad version still serving has
    // been watched for the whole horizon.
    const st = status as ServiceStatus;
    const ended = st.canaryVersion === null && (last?.wakeAt ?? null) === null;
    const settled =
      runtime.count() === TRAFFIC.replicas &&
      runtime.byVersion.size === 1 &&
      Object.values(runtime.readiness(now + 1000)).every((x) => x.ready === TRAFFIC.replicas);
    const badServing = bad && (completedAt !== null || routing.candidateEnd > 0) && !featureOff;
    if (ended && settled && (!badServing || t + 1 >= TRAFFIC.horizonSeconds)) {
      const finished =
        outcome === "timeout" ? (completedAt !== null ? "completed" : "rolledBack") : outcome;
      if (twin) {
        // The good run ends here; the twin goes on as wrongPredictions while the version serves.
        results.push(resultOf(counters(), finished));
        exposed = twinExposed!;
        exposedCount = twinExposedCount;
        wrongAnswers = twinWrongAnswers;
        lastBadSec = twinLastBadSec;
        scenario = "wrongPredictions";
        beh = twinBeh;
        bad = true;
        twin = false;
        const stillServing = (completedAt !== null || routing.candidateEnd > 0) && !featureOff;
        if (stillServing && t + 1 < TRAFFIC.horizonSeconds) continue;
      }
      outcome = finished;
      break;
    }
  }
  if (twin) {
    // Out of time before the good run ended: the twin is out of time at the same second.
    results.push(resultOf(counters(), outcome));
    exposedCount = twinExposedCount;
    wrongAnswers = twinWrongAnswers;
    lastBadSec = twinLastBadSec;
    scenario = "wrongPredictions";
    bad = true;
  }
  results.push(resultOf(counters(), outcome));
  return results;

  function counters(): Counters {
    return {
      strategy,
      scenario,
      seed,
      bad,
      exposedCount,
      failedRequests,
      wrongAnswers,
      lastBadSec,
      detectAt,
      badServing: !featureOff && (routing.candidateEnd > 0 || routing.experiment),
      extra,
      manual,
      completedAt,
      message: (status as ServiceStatus).message,
      manualAfterDetect,
      restoreAt,
      events: events.slice(),
    };
  }

  /** The experiment's aggregates as the experiment store hands them to the controller. */
  function expData(name: string, now: number): ExperimentData {
    const requests = (i: number): MetricArmData => {
      const a = armReq[i]!;
      const mean = a.requests > 0 ? a.lat / a.requests : 0;
      const variance =
        a.requests > 1 ? Math.max(0, (a.lat2 - a.requests * mean * mean) / (a.requests - 1)) : 0;
      return { kind: "requests", requests: a.requests, errors: a.errors, mean, variance };
    };
    const sums = (i: number): MetricArmData => ({ kind: "sums", n: units[i]!, ...conv[i]! });
    return {
      experiment: name,
      units: { A: units[0]!, B: units[1]! },
      metrics: {
        conversion: { A: sums(0), B: sums(1) },
        errors: { A: requests(0), B: requests(1) },
        latency: { A: requests(0), B: requests(1) },
      },
      readAt: now,
    };
  }
}

interface Counters {
  strategy: StrategyName;
  scenario: ScenarioName;
  seed: number;
  bad: boolean;
  exposedCount: number;
  failedRequests: number;
  wrongAnswers: number;
  lastBadSec: number;
  detectAt: number | null;
  /** A bad version serves users at the end. */
  badServing: boolean;
  extra: number;
  manual: number;
  completedAt: number | null;
  message: string;
  manualAfterDetect: number;
  restoreAt: number | null;
  events: RunTrace["events"];
}

function resultOf(c: Counters, outcome: RunResult["outcome"]): RunTrace {
  const stillBad = c.bad && c.lastBadSec >= 0 && c.badServing;
  return {
    strategy: c.strategy,
    scenario: c.scenario,
    seed: c.seed,
    usersExposed: c.exposedCount,
    failedRequests: c.failedRequests,
    wrongAnswers: c.wrongAnswers,
    detectSeconds: c.bad || c.detectAt !== null ? c.detectAt : null,
    recoverSeconds: !c.bad ? null : c.lastBadSec < 0 ? 0 : stillBad ? null : c.lastBadSec + 1,
    extraInstanceSeconds: c.extra,
    manualActions: c.manual,
    totalSeconds: c.completedAt,
    outcome,
    message: c.message,
    manualAfterDetect: c.manualAfterDetect,
    restoreSeconds: c.restoreAt === null || c.detectAt === null ? null : c.restoreAt - c.detectAt,
    events: c.events,
  };
}

/** An event that says the new version is bad: a failing verdict or an automatic reaction. */
export function detects(e: EventDraft): boolean {
  if (e.type === "AnalysisVerdict") return e.data.outcome === "fail";
  if (e.type === "AnalysisFailed" || e.type === "FlagKilled") return true;
  // An experiment that ran out of time without a result keeps A, but detected nothing.
  if (e.type === "RolloutAborted") return e.data.verdict !== "inconclusive";
  return false;
}

function anyDue(s: ServiceStatus, now: number): boolean {
  const a = s.analysis;
  for (const run of [a?.step?.run, a?.background]) {
    if (run && dueMeasurements(run, now).length > 0) return true;
  }
  return false;
}

/** The measurements due now, taken as the analysis executor takes them. */
async function measure(
  provider: BuiltinProvider,
  s: ServiceStatus,
  now: number,
): Promise<AnalysisObservation[]> {
  const out: AnalysisObservation[] = [];
  if (s.canaryVersion == null) return out;
  const runs: ["step" | "background", RunState | null | undefined][] = [
    ["step", s.analysis?.step?.run],
    ["background", s.analysis?.background],
  ];
  for (const [kind, run] of runs) {
    if (!run) continue;
    for (const due of dueMeasurements(run, now)) {
      let observation: AnalysisObservation["observation"];
      try {
        observation = await provider.measure(
          {
            metric: due.metric,
            source: due.source,
            args: run.args,
            service: SERVICE,
            candidate: s.canaryVersion,
            ...(s.stableVersion ? { baseline: s.stableVersion } : {}),
            fromMs: due.fromMs,
            toMs: due.toMs,
            now,
          },
          NEVER_ABORTED,
        );
      } catch (err) {
        observation = { error: (err as Error).message, errorKind: "failed" };
      }
      out.push({
        run: kind,
        runStartedAt: run.startedAt,
        metric: due.metric,
        observation,
        fromMs: due.fromMs,
        toMs: due.toMs,
      });
    }
  }
  return out;
}

/**
 * The route table's selection for the next second, as `buildRouteTable` and the router's
 * `compileTable` make it: the candidate's sticky range only while it has ready endpoints (a
 * range whose owner has none falls back to the versions that do), the experiment's arms, the
 * mirror (to ready endpoints only), and the flag with the rollout's override laid over it.
 */
export function routingOf(out: ReconcileOutput, ready: Record<string, VersionReadiness>): Routing {
  const s = out.status;
  const w = out.weights.find((x) => x.version === CANDIDATE)?.weight ?? 0;
  const candReady = (ready[CANDIDATE]?.ready ?? 0) > 0;
  const x = s.experiment;
  const experiment = x != null && candReady;
  const aWeight = x?.arms.find((a) => a.version === STABLE)?.weight ?? 0;
  const totalWeight = x?.arms.reduce((n, a) => n + a.weight, 0) ?? 100;
  const flagOverride = s.flags?.[FLAG_KEY];
  let flagEnd = 0;
  if (flagOverride !== undefined) {
    const compiled = compileFlags([
      { key: FLAG_KEY, spec: effectiveSpec(FLAG_SPEC, flagOverride) },
    ]).get(FLAG_KEY)!;
    flagEnd = compiled.isDisabled || compiled.rolloutOn?.value !== true ? 0 : compiled.rolloutEnd;
  }
  const serving = (candReady && w > 0) || experiment;
  return {
    candidateEnd: candReady ? Math.round(w * 10_000) : 0,
    experiment,
    experimentEnd: Math.round((aWeight / totalWeight) * 1_000_000),
    mirror: s.shadow != null && candReady,
    mirrorPercent: s.shadow?.mirror.percent ?? 0,
    flagEvaluated: serving,
    flagEnd,
  };
}
