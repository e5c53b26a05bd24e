/**
 * `GET /api/v1/notifiers` and `GET /api/v1/notifiers/:name`: each Notifier with where it
 * sends (secrets never shown: the webhook's query string and a Slack URL's path are secrets
 * too), what it subscribes to, and how its deliveries stand (pending, delivered, given up,
 * the last error), from the outbox. `turnout get notifiers` prints them.
 */
import type { FastifyInstance } from "fastify";
import type { NotifierResource } from "../core/notify.js";
import { TurnoutError } from "../errors.js";
import type { OutboxEntry, OutboxStore, OutboxSummary } from "../store/outbox-store.js";
import type { Store } from "../store/store.js";

export interface NotifierApiOptions {
  store: Store;
  outbox: OutboxStore;
}

export interface NotifierView {
  name: string;
  generation: number;
  target: "webhook" | "slack";
  /** The URL without what could be a secret. */
  url: string;
  events: string[];
  services: string[] | null;
  /** "inline", "env NAME" or "file PATH": where the signing secret comes from. */
  secret: string | null;
  delivery: Omit<OutboxSummary, "notifier">;
}

/** Origin and path of a webhook; only the origin of a Slack URL (its path is the token). */
export function redactUrl(url: string, target: "webhook" | "slack"): string {
  try {
    const u = new URL(url);
    if (target === "slack") return `${u.origin}/…`;
    return `${u.origin}${u.pathname}${u.search ? "?…" : ""}`;
  } catch {
    return "(invalid URL)";
  }
}

const EMPTY: Omit<OutboxSummary, "notifier"> = {
  pending: 0,
  delivered: 0,
  failed: 0,
  oldestPendingAt: null,
  lastDeliveredAt: null,
  lastError: null,
};

export function notifierView(
  r: { name: string; generation: number; resource: NotifierResource },
  summary: OutboxSummary | undefined,
): NotifierView {
  const spec = r.resource.spec;
  const target = spec.slack ? "slack" : "webhook";
  const w = spec.webhook;
  const ref = w?.secretRef;
  const { notifier: _n, ...delivery } = summary ?? { notifier: r.name, ...EMPTY };
  return {
    name: r.name,
    generation: r.generation,
    target,
    url: redactUrl(spec.slack?.url ?? w?.url ?? "", target),
    events: spec.events,
    services: spec.services ?? null,
    secret:
      w === undefined
        ? null
        : ref === undefined
          ? "inline"
          : "env" in ref
            ? `env ${ref.env}`
            : `file ${ref.file}`,
    delivery,
  };
}

/** One outbox entry as people see it (no body: it may quote private data). */
function entryView(e: OutboxEntry) {
  return {
    id: e.id,
    service: e.service === "" ? null : e.service,
    event: e.eventType,
    eventId: e.eventId,
    idempotencyKey: e.idempotencyKey,
    state: e.state,
    attempts: e.attempts,
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
    nextAttemptAt: e.state === "pending" ? e.nextAttemptAt : null,
    lastStatus: e.lastStatus,
    lastError: e.lastError,
  };
}

export function registerNotifierRoutes(app: FastifyInstance, o: NotifierApiOptions): void {
  app.get("/api/v1/notifiers", async () => {
    const [items, summary] = await Promise.all([
      o.store.listResources("Notifier"),
      o.outbox.summary(),
    ]);
    const by = new Map(summary.map((s) => [s.notifier, s]));
    return { items: items.map((r) => notifierView(r, by.get(r.name))) };
  });

  app.get<{ Params: { name: string } }>("/api/v1/notifiers/:name", async (req) => {
    const name = req.params.name;
    const r = await o.store.getResource("Notifier", name);
    if (r === null)
      throw new TurnoutError(
        "TURNOUT_ERR_RESOURCE_NOT_FOUND",
        `no Notifier named ${JSON.stringify(name)}`,
        {
          kind: "Notifier",
          name,
        },
      );
    const summary = (await o.outbox.summary()).find((s) => s.notifier === name);
    const recent = await o.outbox.list({ notifier: name, limit: 20 });
    return { ...notifierView(r, summary), recent: recent.map(entryView) };
  });
}
