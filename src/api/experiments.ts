/**
 * The A/B experiments API:
 *
 *   POST /api/v1/events                    outcome events, batched (up to MAX_BATCH)
 *   GET  /api/v1/experiments               every experiment with its arms, units and state
 *   GET  /api/v1/experiments/:name/results the analysis `turnout experiment results` prints
 *
 * Events: `{"events": [{"idempotencyKey", "unit", "metric", "value"?, "timestamp"}]}`; value
 * defaults to 1 (a conversion); timestamp is epoch ms or an ISO 8601 string, no older than
 * MAX_AGE_MS and no further ahead than MAX_FUTURE_MS. A batch with any bad event is rejected
 * as a whole (400 TURNOUT_ERR_EVENTS_INVALID listing every bad event with its index and path),
 * so nothing is half-stored; a good batch is committed before the 200, and a repeated
 * idempotency key with the same payload is accepted and not counted again (`duplicates` in the
 * reply); with a different payload it is a conflict (422, nothing of the batch stored).
 */
import type { FastifyInstance } from "fastify";
import type { Clock } from "../core/clock.js";
import { analyzeExperiment, controlArm, type ExperimentResults } from "../core/experiment/index.js";
import { MAX_EVENTS_PER_REQUEST } from "../defaults.js";
import { type FieldError, TurnoutError } from "../errors.js";
import { closest } from "../resources/schema/messages.js";
import type { ExperimentStore, OutcomeEvent, StoredExperiment } from "../store/experiment-store.js";

/** Events per request. */
export const MAX_BATCH = MAX_EVENTS_PER_REQUEST;
/** Oldest timestamp accepted: 30 days. */
export const MAX_AGE_MS = 30 * 86_400_000;
/** Furthest future timestamp accepted (clock skew): 5 minutes. */
export const MAX_FUTURE_MS = 5 * 60_000;
const MAX_STRING = 256;
const METRIC = /^[A-Za-z0-9._:-]{1,100}$/;

export interface ExperimentApiOptions {
  experiments: ExperimentStore;
  clock: Clock;
}

/** Validates a body of events; returns the events or every problem found. */
export function parseEvents(
  body: unknown,
  now: number,
): { events: OutcomeEvent[] } | { errors: FieldError[] } {
  const errors: FieldError[] = [];
  const list =
    body !== null && typeof body === "object" && !Array.isArray(body)
      ? (body as { events?: unknown }).events
      : undefined;
  if (!Array.isArray(list)) {
    return {
      errors: [{ path: "events", message: 'must be an array of events: {"events": [...]}' }],
    };
  }
  if (list.length === 0) return { errors: [{ path: "events", message: "must not be empty" }] };
  if (list.length > MAX_BATCH) {
    return {
      errors: [
        { path: "events", message: `at most ${MAX_BATCH} events per request, got ${list.length}` },
      ],
    };
  }
  const events: OutcomeEvent[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw: unknown, i) => {
    const at = (field: string) => `events[${i}].${field}`;
    const bad = (field: string, message: string) =>
      errors.push({ path: at(field), message, index: i } as FieldError);
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      errors.push({ path: `events[${i}]`, message: "must be an object", index: i } as FieldError);
      return;
    }
    const e = raw as Record<string, unknown>;
    const allowed = ["idempotencyKey", "unit", "metric", "value", "timestamp"];
    for (const k of Object.keys(e))
      if (!allowed.includes(k)) bad(k, `unknown field; allowed: ${allowed.join(", ")}`);
    const str = (field: string): string | undefined => {
      const v = e[field];
      if (typeof v !== "string" || v.length === 0 || v.length > MAX_STRING) {
        bad(
          field,
          v === undefined
            ? "is required (a string)"
            : `must be a string of 1..${MAX_STRING} characters, got ${JSON.stringify(v)?.slice(0, 60)}`,
        );
        return undefined;
      }
      return v;
    };
    const key = str("idempotencyKey");
    const unit = str("unit");
    const metric = str("metric");
    if (metric !== undefined && !METRIC.test(metric))
      bad(
        "metric",
        `must be 1..100 characters of A-Z, a-z, 0-9, ".", "_", ":" and "-", got ${JSON.stringify(metric)}`,
      );
    let value = 1;
    if (e.value !== undefined) {
      if (typeof e.value !== "number" || !Number.isFinite(e.value))
        bad("value", `must be a finite number, got ${JSON.stringify(e.value)}`);
      else value = e.value;
    }
    let ts: number | undefined;
    const t = e.timestamp;
    if (typeof t === "number" && Number.isFinite(t)) ts = t;
    else if (typeof t === "string" && /^\d{4}-\d\d-\d\dT/.test(t) && !Number.isNaN(Date.parse(t)))
      ts = Date.parse(t);
    if (ts === undefined)
      bad(
        "timestamp",
        t === undefined
          ? "is required (epoch milliseconds or an ISO 8601 time)"
          : `must be epoch milliseconds or an ISO 8601 time, got ${JSON.stringify(t)}`,
      );
    else if (ts < now - MAX_AGE_MS)
      bad("timestamp", `is more than 30 days old (${new Date(ts).toISOString()})`);
    else if (ts > now + MAX_FUTURE_MS)
      bad("timestamp", `is more than 5 minutes in the future (${new Date(ts).toISOString()})`);
    if (key !== undefined) {
      const first = seen.get(key);
      if (first !== undefined)
        bad("idempotencyKey", `repeats the key of events[${first}] in the same batch`);
      else seen.set(key, i);
    }
    if (key && unit && metric && ts !== undefined)
      events.push({ idempotencyKey: key, unit, metric, value, timestamp: Math.round(ts) });
  });
  return errors.length > 0 ? { errors } : { events };
}

/** The analysis of a stored experiment, read now (or at its end). */
export async function experimentResults(
  x: ExperimentStore,
  e: StoredExperiment,
  now: number,
): Promise<
  ExperimentResults & {
    state: StoredExperiment["state"];
    service: string;
    startedAt: number;
    /** When the figures were read: the end for a concluded experiment, else now (live). */
    readAt: number;
    live: boolean;
    /** When the stored state last changed: for a held win, when it was decided. */
    decidedAt?: number;
  }
> {
  const at = e.state.endedAt ?? now;
  const data = await x.data(e, at);
  const control = controlArm(e.spec);
  return {
    ...analyzeExperiment(e.name, e.spec, e.arms, data, control),
    state: e.state,
    service: e.service,
    startedAt: e.startedAt,
    readAt: at,
    live: e.state.endedAt === undefined,
    ...(e.state.status !== "running" ? { decidedAt: e.state.endedAt ?? e.updatedAt } : {}),
  };
}

export function registerExperimentRoutes(app: FastifyInstance, opts: ExperimentApiOptions): void {
  const { experiments: x, clock } = opts;

  app.post("/api/v1/events", async (req, reply) => {
    const now = clock.now();
    const parsed = parseEvents(req.body, now);
    if ("errors" in parsed) {
      throw new TurnoutError(
        "TURNOUT_ERR_EVENTS_INVALID",
        `${parsed.errors.length} problem(s) in the batch; nothing was stored: ${parsed.errors
          .slice(0, 3)
          .map((e) => `${e.path}: ${e.message}`)
          .join("; ")}${parsed.errors.length > 3 ? "; ..." : ""}`,
        { path: parsed.errors[0]!.path, errors: parsed.errors },
      );
    }
    // Committed before the reply: an accepted event is durable.
    const r = await x.recordEvents(parsed.events, now, { rejectConflicts: true });
    if ("conflicts" in r) {
      const first = r.conflicts[0]!;
      throw new TurnoutError(
        "TURNOUT_ERR_EVENTS_IDEMPOTENCY_CONFLICT",
        `${r.conflicts.length} event(s) reuse an idempotency key already stored with a different payload; nothing was stored: events[${first.index}].idempotencyKey ${JSON.stringify(first.idempotencyKey)} differs in ${first.fields.join(", ")}`,
        { path: `events[${first.index}].idempotencyKey`, conflicts: r.conflicts },
      );
    }
    reply.code(200);
    // A misspelt metric ("clik") is stored but counts nowhere: say so in the answer, with the
    // names the experiments read and the closest of them.
    const known = new Set<string>();
    for (const e of await x.listExperiments()) {
      for (const m of e.spec.metrics) {
        if ("event" in m.source) known.add(m.source.event);
        if (m.covariate) known.add(m.covariate.event);
      }
    }
    const unknown = new Map<string, number>();
    for (const ev of parsed.events)
      if (!known.has(ev.metric)) unknown.set(ev.metric, (unknown.get(ev.metric) ?? 0) + 1);
    if (unknown.size === 0) return { received: parsed.events.length, ...r };
    const names = [...known].sort();
    return {
      received: parsed.events.length,
      ...r,
      unknownMetrics: [...unknown].map(([metric, events]) => {
        const guess = closest(metric, names);
        return { metric, events, ...(guess ? { didYouMean: guess } : {}) };
      }),
      warning: `${[...unknown.values()].reduce((a, b) => a + b, 0)} event(s) name a metric no experiment reads (${[...unknown.keys()].map((m) => JSON.stringify(m)).join(", ")}); they were stored but count in no result. Experiments read: ${names.length > 0 ? names.join(", ") : "none yet"}`,
    };
  });

  app.get("/api/v1/experiments", async () => {
    const all = await x.listExperiments();
    const now = clock.now();
    const items = [];
    for (const e of all) {
      const data = await x.data({ ...e, spec: { ...e.spec, metrics: [] } }, now);
      items.push({
        name: e.name,
        service: e.service,
        method: e.spec.method,
        arms: e.arms.map((a) => ({ ...a, units: data.units[a.name] ?? 0 })),
        state: e.state,
        startedAt: e.startedAt,
        updatedAt: e.updatedAt,
      });
    }
    return { items };
  });

  app.get<{ Params: { name: string } }>("/api/v1/experiments/:name/results", async (req) => {
    const e = await x.getExperiment(req.params.name);
    if (!e)
      throw new TurnoutError(
        "TURNOUT_ERR_EXPERIMENT_NOT_FOUND",
        `no experiment named ${JSON.stringify(req.params.name)}`,
      );
    return experimentResults(x, e, clock.now());
  });
}
