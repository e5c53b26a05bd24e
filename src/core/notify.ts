/**
 * Notifiers (pure): the `Notifier` resource's types, the events a person can subscribe to and
 * the catalogue event types each stands for, and which notifiers want a given event. The store
 * calls `notifiersFor` inside the transaction that appends the event (the outbox,
 * `src/store/outbox-store.ts`); delivery is `src/notify/`.
 */
import type { EventType } from "./events.js";
import type { Metadata } from "./model.js";

/**
 * The events a Notifier subscribes to, each mapped to the catalogue types it stands for.
 * "paused" is every way a rollout comes to wait for a person: an indefinite pause step
 * (`AwaitingPromotion`), `turnout pause` (`Paused`) and an inconclusive analysis, which holds
 * the rollout until someone promotes or aborts (`AnalysisInconclusive`), and a timed pause held
 * because the analysis has seen nothing of the candidate (`StepHeld`: it goes on by itself once
 * data comes, and a quiet service may need a person to promote). "rolloutAborted" is
 * every rollback, automatic or by a person. "flagKilled" is a rollout turning its flags off and
 * a person using the kill switch (`turnout flags disable`, which has no event of its own).
 * "dataPlane" is a data plane that cannot put a service's route table in force (a port taken,
 * a table HAProxy refused: the service is Degraded and its rollout holds), and its recovery.
 */
export const NOTIFIER_EVENTS = {
  rolloutStarted: ["RolloutStarted"],
  paused: ["AwaitingPromotion", "Paused", "AnalysisInconclusive", "StepHeld"],
  rolloutCompleted: ["RolloutCompleted"],
  rolloutAborted: ["RolloutAborted"],
  analysisFailed: ["AnalysisFailed"],
  experimentConcluded: ["ExperimentConcluded"],
  flagKilled: ["FlagKilled"],
  dataPlane: ["DataPlaneNotServing", "DataPlaneServing"],
} as const satisfies Record<string, readonly EventType[]>;

export type NotifierEvent = keyof typeof NOTIFIER_EVENTS;
export const NOTIFIER_EVENT_NAMES = Object.keys(NOTIFIER_EVENTS) as NotifierEvent[];

/** Catalogue type -> the subscription it belongs to (each type belongs to at most one). */
const BY_TYPE = new Map<string, NotifierEvent>(
  NOTIFIER_EVENT_NAMES.flatMap((n) => NOTIFIER_EVENTS[n].map((t) => [t, n] as const)),
);

/** The subscription an event type belongs to, or undefined when no Notifier can want it. */
export function notifierEventOf(type: string): NotifierEvent | undefined {
  return BY_TYPE.get(type);
}

/** Where a secret comes from: the environment of `turnout up`, or a file it can read. */
export type SecretRef = { env: string } | { file: string };

export interface WebhookTarget {
  url: string;
  /** The shared secret for the HMAC-SHA256 signature; exactly one of secret and secretRef. */
  secret?: string;
  secretRef?: SecretRef;
  /** Extra request headers (an API key of the receiver...). */
  headers?: Record<string, string>;
}

export interface SlackTarget {
  /** A Slack incoming-webhook URL (https://hooks.slack.com/services/...). */
  url: string;
}

export interface NotifierSpec {
  /** Exactly one of webhook and slack. */
  webhook?: WebhookTarget;
  slack?: SlackTarget;
  events: NotifierEvent[];
  /** Service names or `*` globs; absent: every service, and events of no service. */
  services?: string[];
  description?: string;
}

export interface NotifierResource {
  apiVersion: "turnout.dev/v1";
  kind: "Notifier";
  metadata: Metadata;
  spec: NotifierSpec;
}

/** `*` matches any run of characters; everything else is literal. */
export function serviceMatches(pattern: string, service: string): boolean {
  if (!pattern.includes("*")) return pattern === service;
  const parts = pattern.split("*");
  const re = new RegExp(
    `^${parts.map((p) => p.replace(/[.+?^${}()|[\]\\-]/g, "\\$&")).join(".*")}$`,
  );
  return re.test(service);
}

/**
 * Whether a notifier wants an event of `type` about `service` ("" for events of no service,
 * e.g. a person's kill switch). A `services` selector names services, so it never matches "".
 */
export function notifierWants(spec: NotifierSpec, type: string, service: string): boolean {
  const sub = notifierEventOf(type);
  if (sub === undefined || !spec.events.includes(sub)) return false;
  if (spec.services === undefined) return true;
  if (service === "") return false;
  return spec.services.some((p) => serviceMatches(p, service));
}
