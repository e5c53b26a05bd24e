/**
 * What one reconcile takes and returns, and the working state its stages share. `Work` stays
 * inside `core/rollout/`; the rest is re-exported by `../rollout.ts`.
 */
import type { Observation } from "../analysis/observation.js";
import type { ExperimentData } from "../experiment/types.js";
import type {
  AnalysisTemplateSpec,
  Command,
  CommandResult,
  EventDraft,
  RolloutStep,
  ServiceSpec,
  ServiceStatus,
} from "../model.js";
import type { ShadowReport } from "../shadow/aggregate.js";
import type { CompiledStrategy } from "../strategies/index.js";

/** What the runtime reports for one version of the service. */
export interface VersionReadiness {
  /** Instances that pass their readiness probe. */
  ready: number;
  /** Instances that failed (exited, or never became ready in time). */
  failed: number;
  /** Why the last failed instance failed. */
  message?: string;
}

export interface ReconcileInput {
  now: number;
  service: { name: string; generation: number; spec: ServiceSpec };
  /** Null for a service the controller has never seen. */
  status: ServiceStatus | null;
  /** Pending commands for this service, oldest first. */
  commands: Command[];
  /** Per version; a version the runtime does not run is absent. */
  readiness: Record<string, VersionReadiness>;
  /** AnalysisTemplates by name, for analysis steps and background analysis. */
  templates?: Record<string, AnalysisTemplateSpec>;
  /** Measurements the controller took for this service's analysis runs since the last tick. */
  observations?: AnalysisObservation[];
  /** Aggregated exposures and outcomes of the running experiment (the `experiment` step reads it). */
  experimentData?: ExperimentData;
  /** The report of the mirror phase in `status.shadow` (the `shadow` step's gate reads it). */
  shadowReport?: { id: string; report: ShadowReport } | null;
  /**
   * What the router registry says of the service's data plane: `serving: false` while a live
   * router reports that it cannot put the service's route table in force, with its reason.
   * Absent: serving (nothing reported otherwise).
   */
  dataPlane?: { serving: boolean; reason?: string };
  /**
   * `compileStrategy(service.spec)`, when the caller has compiled it already (the controller's
   * tick compiles once for the decision, the route table and the experiment); compiled here
   * otherwise.
   */
  strategy?: CompiledStrategy;
}

/** One measurement taken for a metric of an analysis run, with the window it covered. */
export interface AnalysisObservation {
  run: "step" | "background";
  /** The run's `startedAt`: a result for a run that has since been replaced is dropped. */
  runStartedAt: number;
  metric: string;
  observation: Observation;
  fromMs: number;
  toMs: number;
}

export interface VersionWeight {
  version: string;
  /** Percent, 0..100; the list sums to 100. */
  weight: number;
}

export interface ReconcileOutput {
  status: ServiceStatus;
  events: EventDraft[];
  commandResults: CommandResult[];
  /** The traffic split to put in force. */
  weights: VersionWeight[];
  /** Versions the runtime must run, with their instance counts. */
  targets: { version: string; replicas: number }[];
  /** Clock ms at which something will change by itself (a timed pause ends); null if none. */
  wakeAt: number | null;
}

export type StageOutcome = "continue" | "stop";

/** Mutable working state of one reconcile; never escapes it. */
export interface Work {
  readonly input: ReconcileInput;
  readonly now: number;
  readonly name: string;
  readonly spec: ServiceSpec;
  readonly strategy: CompiledStrategy;
  readonly steps: RolloutStep[];
  status: ServiceStatus;
  events: EventDraft[];
  results: CommandResult[];
  wakeAt: number | null;
}

export interface Stage {
  name: string;
  run(w: Work): StageOutcome;
}
