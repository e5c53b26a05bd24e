/**
 * The catalogue of events: every `type` that goes into a service's history, once, with a
 * one-line summary and the shape of its `data`. Emitting goes through these types (`emit` in
 * `rollout.ts`, `ctx.emit` for step kinds, `eventDraft` elsewhere), so a misspelt type or data
 * field fails `tsc`; readers that pick events out of a history use `isEvent`, never a string
 * compared by hand. `docs/events.md` documents the same table, and `events.test.ts` keeps code
 * and docs in step (as `errors.test.ts` does for errors).
 *
 * To add an event: its data type in `EventData`, its entry in `EVENTS` (summary, where it comes
 * from, a line per data field), and its row in `docs/events.md`.
 */
import type { Outcome, Verdict } from "./analysis/judges.js";
import type { EventDraft, MatchRule } from "./model.js";

/** The conditions of a header or mirror route (a match rule without its target). */
export type MatchConditions = Omit<MatchRule, "to">;

// ---------------------------------------------------------------------------------------
// Data shapes shared by several events
// ---------------------------------------------------------------------------------------

/** The summary of an analysis run that ended (AnalysisSucceeded/Failed/Inconclusive). */
export type AnalysisEndData = {
  /** "background analysis" or "analysis at step 2/5". */
  run: string;
  phase: string;
  metrics: {
    name: string;
    phase: string;
    dryRun: boolean;
    counters: unknown;
    last: {
      outcome: Outcome;
      explanation: string;
      pValue: number | null;
      statistic: number | null;
      bound: NonNullable<Verdict["bound"]> | null;
      effect: NonNullable<Verdict["effect"]> | null;
      inputs: Verdict["inputs"];
    } | null;
  }[];
};

/** Where a rolling update stands (BatchScaled, StepCompleted, RolloutAborted). */
export type RollingNumbers = {
  version: string;
  newReplicas: number;
  oldReplicas: number;
  available: number;
  replicas: number;
  maxSurge: number;
  maxUnavailable: number;
};

/** The numbers of an experiment's results (ExperimentConcluded). */
export type ExperimentNumbers = {
  experiment: string;
  verdict: string;
  method?: string;
  units?: Record<string, number>;
  srm?: { pValue: number | null; mismatch: boolean };
  metrics?: unknown[];
  reasons?: string[];
};

/** The verdict of a shadow gate (ShadowPassed; a failed one is in RolloutAborted). */
export type ShadowVerdictData = {
  step: number;
  id: string;
  version: string;
  verdict: string;
  reasons: string[];
  report: Record<string, unknown> | null;
};

// ---------------------------------------------------------------------------------------
// The data of each event type
// ---------------------------------------------------------------------------------------

/** The `data` of every event type, by type. */
export interface EventData {
  // Rollouts (src/core/rollout.ts)
  StableVersionSet: { version: string };
  RolloutStarted: {
    rollout: number;
    from: string | null;
    to: string;
    replaced: string | null;
    steps: number;
    rollbackWindow: boolean;
    generation: number;
  };
  RolloutCompleted: { rollout: number; from: string | null; to: string; tookMs: number };
  /** Plus the numbers of the cause (`AbortCause`). */
  RolloutAborted: {
    version: string | null;
    stable: string | null;
    fromWeight: number;
  } & AbortCause;
  RolloutCancelled: { version: string | null; stable: string };
  Recovered: { stable: string };
  Paused: { stepIndex: number | null; weight: number };
  AwaitingPromotion: { step: number; version: string | null; weight: number };
  Resumed: { stepIndex: number | null; heldMs: number | null };
  Promoted: { full: boolean; fromStep: number | null; weight: number };
  Retried: { version: string };
  // Analysis (src/core/rollout.ts)
  AnalysisStarted: { run: "step" | "background"; step?: number; templates: string[] };
  AnalysisVerdict: {
    run: "step" | "background";
    metric: string;
    outcome: Outcome;
    pValue: number | null;
    statistic: number | null;
    effect: NonNullable<Verdict["effect"]> | null;
    window: { fromMs: number; toMs: number };
  };
  AnalysisSucceeded: AnalysisEndData;
  AnalysisFailed: AnalysisEndData;
  AnalysisInconclusive: AnalysisEndData;
  FlagKilled: { flags: string[]; version: string | null; reason: string };
  // Step kinds (src/core/steps/)
  WeightChanged: {
    version: string | null;
    from: number;
    to: number;
    step: number;
    ready?: Record<string, number>;
  };
  StepCompleted: { step: number } & Partial<RollingNumbers>;
  BatchScaled: {
    step: number;
    from: { newReplicas: number; oldReplicas: number };
  } & RollingNumbers;
  HeaderRouteSet: { step: number; match: MatchConditions | null };
  FlagChanged: {
    flag: string;
    step: number;
    state?: string;
    percentage?: number;
    variant?: string;
  };
  Switched: { version: string; from: number; to: number; previous: string | null; step: number };
  ShadowStarted: {
    step: number;
    id: string;
    version: string;
    percent: number;
    gate: unknown;
    noise: boolean;
  };
  ShadowPassed: ShadowVerdictData;
  MirrorRouteSet: {
    step: number;
    id: string;
    version: string;
    percent: number;
    match: MatchConditions | null;
  };
  MirrorRouteRemoved: { step: number };
  ExperimentStarted: {
    step: number;
    experiment: string;
    arms: { name: string; version: string; weight: number }[];
    method: string;
    fromWeight: number;
  };
  ExperimentConcluded: ExperimentNumbers;
  // The controller (src/controller/)
  ControllerStarted: {
    /** With a lease (several controllers): the new leader and its epoch. */
    holder?: string;
    epoch?: number;
    phase: string;
    stepIndex: number | null;
    rollout: number;
    instances: { id: string; version: string; url: string; state: string }[];
  };
  DrainTimedOut: {
    instance: string;
    version: string;
    url: string;
    revision: number | null;
    waitedMs: number;
    routers: unknown[];
  };
  // The store and the API (src/store/, src/api/)
  ResourceApplied: { kind: string; name: string; generation: number; action: string };
  ResourceDeleted: { kind: string; name: string; generation: number; rejectedCommands?: number[] };
  Undo: { from: string; to: string; generation: number | null };
  // Notifications (src/notify/)
  NotificationFailed: {
    notifier: string;
    event: string;
    eventId: number | null;
    idempotencyKey: string;
    attempts: number;
    status: number | null;
    error: string;
  };
}

/**
 * The numbers of whatever aborted a rollout, merged into RolloutAborted's data: `analysis`
 * (the run that failed), `ready`/`failed`/`wanted` (instances), `deadlineSeconds`, a rolling
 * update's numbers, `experiment`/`verdict`/`winners`, a shadow gate's verdict and report,
 * `versions` (arm versions that failed to start).
 */
export type AbortCause = Record<string, unknown>;

/** Every event type. */
export type EventType = keyof EventData;

/** An event's data fields, without the open-ended part (`AbortCause`). */
type KnownKeys<T> = keyof {
  [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K];
};

/** Who writes events of a type into the history. */
export type EventSource = "rollout" | "step" | "controller" | "store" | "api" | "notify";

export interface EventInfo<T extends EventType> {
  /** One line for people: when the event happens. */
  readonly summary: string;
  readonly source: EventSource;
  /** Every data field, each with a line for people. */
  readonly fields: { readonly [K in KnownKeys<EventData[T]>]-?: string };
  /** What else `data` may hold, for types with an open part (RolloutAborted's cause). */
  readonly more?: string;
}

/** The catalogue: every event type, its summary, its source and its data fields. */
export const EVENTS: { readonly [T in EventType]: EventInfo<T> } = {
  StableVersionSet: {
    summary: "A service seen for the first time: its version is stable at once, no rollout.",
    source: "rollout",
    fields: { version: "the stable version" },
  },
  RolloutStarted: {
    summary: "The desired version changed: a rollout to it starts.",
    source: "rollout",
    fields: {
      rollout: "the rollout's number (1, 2, ...)",
      from: "the stable version",
      to: "the new version",
      replaced: "a candidate replaced mid-rollout, or null",
      steps: "the number of steps",
      rollbackWindow: "true when the version is a recent stable one (no steps)",
      generation: "the Service's generation",
    },
  },
  RolloutCompleted: {
    summary: "The new version is stable and serves 100%.",
    source: "rollout",
    fields: {
      rollout: "the rollout's number",
      from: "the previous stable version",
      to: "the new stable version",
      tookMs: "how long the rollout took",
    },
  },
  RolloutAborted: {
    summary: "A rollout ended with all traffic back on the stable version (a failure or a person).",
    source: "rollout",
    fields: {
      version: "the candidate that was aborted",
      stable: "the version serving 100%",
      fromWeight: "the candidate's weight before the abort",
    },
    more: "the numbers of the cause: `analysis` (the run that failed), `ready`/`failed`/`wanted` (instances), `deadlineSeconds`, a rolling update's numbers, `experiment`/`verdict`/`winners`, a shadow gate's verdict and report, `versions` (arm versions that failed to start)",
  },
  RolloutCancelled: {
    summary: "The desired version went back to the stable one during a rollout.",
    source: "rollout",
    fields: { version: "the candidate of the cancelled rollout", stable: "the stable version" },
  },
  Recovered: {
    summary: "A degraded service's desired version is back to the stable one.",
    source: "rollout",
    fields: { stable: "the stable version" },
  },
  Paused: {
    summary: "A person paused the rollout.",
    source: "rollout",
    fields: { stepIndex: "the current step", weight: "the candidate's weight" },
  },
  AwaitingPromotion: {
    summary: "An indefinite pause step was reached: the rollout waits until a person promotes.",
    source: "step",
    fields: {
      step: "the pause step",
      version: "the candidate",
      weight: "the candidate's weight while it waits",
    },
  },
  Resumed: {
    summary: "A person resumed a paused rollout.",
    source: "rollout",
    fields: {
      stepIndex: "the current step",
      heldMs: "how long it was paused, or null when not known",
    },
  },
  Promoted: {
    summary: "A person promoted the rollout: past the current step, or (full) to 100%.",
    source: "rollout",
    fields: {
      full: "true: all remaining steps skipped",
      fromStep: "the step promoted from",
      weight: "the candidate's weight then",
    },
  },
  Retried: {
    summary: "A person asked for an aborted rollout to run again.",
    source: "rollout",
    fields: { version: "the version retried" },
  },
  AnalysisStarted: {
    summary: "An analysis run started: a step's gate or the background analysis.",
    source: "rollout",
    fields: {
      run: '"step" or "background"',
      step: "the step index (step runs only)",
      templates: "the AnalysisTemplates run",
    },
  },
  AnalysisVerdict: {
    summary: "A counted measurement did not pass (fail, inconclusive or error), with its numbers.",
    source: "rollout",
    fields: {
      run: '"step" or "background"',
      metric: "the metric's name",
      outcome: "fail, inconclusive or error",
      pValue: "the test's p-value, or null",
      statistic: "the test statistic, or null",
      effect: "the measured effect, or null",
      window: "the measured window {fromMs, toMs}",
    },
  },
  AnalysisSucceeded: {
    summary: "An analysis run passed.",
    source: "rollout",
    fields: {
      run: "which run",
      phase: "Successful",
      metrics: "each metric's phase, counters and last verdict",
    },
  },
  AnalysisFailed: {
    summary: "An analysis run failed or errored; the rollout rolls back (or its flags go off).",
    source: "rollout",
    fields: {
      run: "which run",
      phase: "Failed or Error",
      metrics: "each metric's phase, counters and last verdict",
    },
  },
  AnalysisInconclusive: {
    summary: "An analysis run was inconclusive; the rollout waits for a person.",
    source: "rollout",
    fields: {
      run: "which run",
      phase: "Inconclusive",
      metrics: "each metric's phase, counters and last verdict",
    },
  },
  FlagKilled: {
    summary: "Blue-green with flags: the feature failed, its flags are off, the version stays.",
    source: "rollout",
    fields: {
      flags: "the flags turned off",
      version: "the version that keeps serving",
      reason: "why",
    },
  },
  WeightChanged: {
    summary: "The candidate's share of traffic changed.",
    source: "step",
    fields: {
      version: "the candidate",
      from: "the weight before, percent",
      to: "the weight after, percent",
      step: "the step index",
      ready: "ready instances by version (rolling updates)",
    },
  },
  StepCompleted: {
    summary: "A pause or a rolling update step is done.",
    source: "step",
    fields: {
      step: "the step index",
      version: "rolling update: the new version",
      newReplicas: "rolling update: instances of the new version",
      oldReplicas: "rolling update: instances of the old version",
      available: "rolling update: new instances available",
      replicas: "rolling update: the replica count",
      maxSurge: "rolling update: the surge, in instances",
      maxUnavailable: "rolling update: the unavailability, in instances",
    },
  },
  BatchScaled: {
    summary: "A rolling update scaled the next batch.",
    source: "step",
    fields: {
      step: "the step index",
      from: "the replica counts before {newReplicas, oldReplicas}",
      version: "the new version",
      newReplicas: "instances of the new version",
      oldReplicas: "instances of the old version",
      available: "new instances available",
      replicas: "the replica count",
      maxSurge: "the surge, in instances",
      maxUnavailable: "the unavailability, in instances",
    },
  },
  HeaderRouteSet: {
    summary: "A header route to the candidate was set or removed.",
    source: "step",
    fields: { step: "the step index", match: "the conditions, or null when removed" },
  },
  FlagChanged: {
    summary: "A setFlag step changed a flag.",
    source: "step",
    fields: {
      flag: "the flag",
      step: "the step index",
      state: "ENABLED or DISABLED, when set",
      percentage: "the rollout percentage, when set",
      variant: "the variant, when set",
    },
  },
  Switched: {
    summary: "Blue-green's switch: the candidate serves 100% in one route-table swap.",
    source: "step",
    fields: {
      version: "the candidate",
      from: "its weight before",
      to: "100",
      previous: "the version that stays warm",
      step: "the step index",
    },
  },
  ShadowStarted: {
    summary: "A shadow phase started: requests are mirrored to the candidate.",
    source: "step",
    fields: {
      step: "the step index",
      id: "the shadow phase's id",
      version: "the shadow version",
      percent: "the share mirrored",
      gate: "the gate",
      noise: "whether copies also go to a second stable instance",
    },
  },
  ShadowPassed: {
    summary: "A shadow gate passed, with its report.",
    source: "step",
    fields: {
      step: "the step index",
      id: "the shadow phase's id",
      version: "the shadow version",
      verdict: "pass",
      reasons: "why",
      report: "the comparison report's numbers",
    },
  },
  MirrorRouteSet: {
    summary: "A setMirrorRoute step mirrors a share of requests to the candidate.",
    source: "step",
    fields: {
      step: "the step index",
      id: "the mirror's id",
      version: "the mirror's target",
      percent: "the share mirrored",
      match: "the conditions, or null",
    },
  },
  MirrorRouteRemoved: {
    summary: "A setMirrorRoute step removed the mirror.",
    source: "step",
    fields: { step: "the step index" },
  },
  ExperimentStarted: {
    summary: "An A/B experiment started.",
    source: "step",
    fields: {
      step: "the step index",
      experiment: "the experiment's name",
      arms: "the arms {name, version, weight}",
      method: "sequential, fixedHorizon or bayesian",
      fromWeight: "the candidate's weight before",
    },
  },
  ExperimentConcluded: {
    summary: "An A/B experiment reached a decision (win, lose, inconclusive).",
    source: "step",
    fields: {
      experiment: "the experiment's name",
      verdict: "its verdict",
      method: "the method",
      units: "units per arm",
      srm: "the sample ratio mismatch check {pValue, mismatch}",
      metrics: "each metric's values and comparisons",
      reasons: "why, in words",
    },
  },
  ControllerStarted: {
    summary: "A controller took over the service (a start, or a new leader).",
    source: "controller",
    fields: {
      holder: "with a lease (several controllers): the controller that leads now",
      epoch: "with a lease: its writer epoch, which its commits carry",
      phase: "the service's phase",
      stepIndex: "the current step",
      rollout: "the rollout's number",
      instances: "the instances found running {id, version, url, state}",
    },
  },
  DrainTimedOut: {
    summary: "An instance was stopped before every router confirmed a table without it.",
    source: "controller",
    fields: {
      instance: "the instance",
      version: "its version",
      url: "its URL",
      revision: "the table revision waited for, or null",
      waitedMs: "how long it waited",
      routers: "the routers that lagged {id, revision}",
    },
  },
  ResourceApplied: {
    summary: "A resource was created or changed.",
    source: "store",
    fields: {
      kind: "its kind",
      name: "its name",
      generation: "its new generation",
      action: "created or configured",
    },
  },
  ResourceDeleted: {
    summary: "A resource was deleted.",
    source: "store",
    fields: {
      kind: "its kind",
      name: "its name",
      generation: "its last generation",
      rejectedCommands: "ids of the service's pending commands, rejected",
    },
  },
  Undo: {
    summary: "A person went back to the previous stable version (`turnout undo`).",
    source: "api",
    fields: {
      from: "the desired version before",
      to: "the version gone back to",
      generation: "the Service's new generation",
    },
  },
  NotificationFailed: {
    summary:
      "A notification was given up: its receiver refused it (4xx) or stayed unreachable too long.",
    source: "notify",
    fields: {
      notifier: "the Notifier",
      event: "the type of the event it carried",
      eventId: "the event's id, or null (a person's kill switch)",
      idempotencyKey: "the notification's idempotency key",
      attempts: "how many times it was sent",
      status: "the receiver's last HTTP status, or null (no answer)",
      error: "why it was given up",
    },
  },
};

/** Every event type, in the catalogue's order. */
export const EVENT_TYPES = Object.keys(EVENTS) as EventType[];

/** An event of type `T` with its typed data. */
export type EventOf<T extends EventType> = Omit<EventDraft, "type" | "data"> & {
  type: T;
  data: EventData[T];
};

/** An event draft, typed by the catalogue: for emit sites outside the rollout core. */
export function eventDraft<T extends EventType>(e: EventOf<T>): EventDraft {
  return e as EventDraft;
}

/**
 * True when `e` is an event of type `type`; its data is then typed. What readers of a history
 * use instead of comparing `e.type` with a string.
 */
export function isEvent<T extends EventType, E extends { type: string; data: unknown }>(
  e: E,
  type: T,
): e is E & { type: T; data: EventData[T] } {
  return e.type === type;
}
