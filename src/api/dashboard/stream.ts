/**
 * `GET /api/v1/events/stream`: server-sent events for the dashboard, so the page holds no
 * polling loop. Messages (each `data:` is JSON):
 *
 *   status      {service, view}       the body of GET /api/v1/services/:name/status, when it
 *                                     changed (the router's live counters in it included)
 *   routeTable  {service, routeTable} when the table in force changed revision
 *   verdict     {service, run, metric, template, verdict}  each new recorded analysis verdict
 *   event       TurnoutEvent          each new entry of a service's (or flags') history
 *   removed     {service}             a service was deleted
 *   flags       the body of GET /api/v1/flags, when it changed
 *   ready       {services}            the first snapshot has been sent
 *
 * One hub per API computes the messages once for every client: it reads through the API's own
 * routes (`app.inject`, so the views are exactly what the JSON API answers), on every store
 * change (debounced) and every 2 s (the live traffic numbers, changes from other processes,
 * flag overrides). It runs only while a client is connected.
 *
 * Every message carries `id:` = the highest history event id seen. A client that reconnects
 * (EventSource does so by itself, also after a restart of `turnout up`) sends it back as
 * Last-Event-ID and gets the history events after it replayed, then a fresh snapshot.
 * A comment line every 15 s keeps proxies from closing an idle stream.
 */
import type { ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";
import type { TurnoutEvent } from "../../core/model.js";
import type { Store } from "../../store/store.js";

export const STREAM_PATH = "/api/v1/events/stream";
const HEARTBEAT_MS = 15_000;
const TICK_MS = 2_000;
const DEBOUNCE_MS = 50;

interface Client {
  res: ServerResponse;
  /** Highest history event id this client has been sent. */
  lastEventId: number;
  /** Still catching up (replay and first snapshot): live messages wait. */
  ready: boolean;
}

type Inject = (url: string) => Promise<unknown>;

interface RecordedVerdictLike {
  at: number;
  measurement: number;
  verdict: unknown;
}
interface MetricRunLike {
  name: string;
  template: string;
  verdicts?: RecordedVerdictLike[];
}

class Hub {
  readonly #clients = new Set<Client>();
  readonly #store: Store;
  readonly #inject: Inject;
  /** Last JSON sent per key ("status:svc", "routeTable:svc", "flags"). */
  readonly #last = new Map<string, string>();
  readonly #verdictsSeen = new Set<string>();
  /** Per service, the highest history event id read. */
  readonly #cursor = new Map<string, number>();
  #maxEventId = 0;
  #services: string[] = [];
  #timer: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #off: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #started: Promise<void> | null = null;

  constructor(store: Store, inject: Inject) {
    this.#store = store;
    this.#inject = inject;
  }

  async add(res: ServerResponse, lastEventId: number | null): Promise<void> {
    await this.#start();
    const c: Client = { res, lastEventId: lastEventId ?? this.#maxEventId, ready: false };
    this.#clients.add(c);
    res.on("close", () => this.#remove(c));
    res.write(`retry: 1000\n\n`);
    // Replay the history the client missed while disconnected.
    if (lastEventId !== null) {
      for (const service of ["", ...this.#services]) {
        const events = await this.#store.listEvents(service, { afterId: lastEventId, limit: 1000 });
        for (const e of events) this.#sendEvent(c, e);
      }
    }
    // A snapshot of everything the hub knows now.
    for (const [key, json] of this.#last) {
      const [type, ...rest] = key.split(":");
      const service = rest.join(":");
      if (type === "flags") this.#write(c, "flags", json);
      else if (type === "status")
        this.#write(c, "status", `{"service":${JSON.stringify(service)},"view":${json}}`);
      else if (type === "routeTable")
        this.#write(c, "routeTable", `{"service":${JSON.stringify(service)},"routeTable":${json}}`);
    }
    c.ready = true;
    this.#write(c, "ready", JSON.stringify({ services: this.#services }));
  }

  stopAll(): void {
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
    this.#stop();
  }

  #remove(c: Client): void {
    this.#clients.delete(c);
    if (this.#clients.size === 0) this.#stop();
  }

  #start(): Promise<void> {
    this.#started ??= (async () => {
      // The cursors start at the end of every history: a new client does not get all of it.
      const names = await this.#serviceNames();
      for (const s of ["", ...names]) {
        let after = 0;
        for (;;) {
          const page = await this.#store.listEvents(s, { afterId: after, limit: 1000 });
          if (page.length === 0) break;
          after = page[page.length - 1]!.id;
        }
        this.#cursor.set(s, after);
        if (after > this.#maxEventId) this.#maxEventId = after;
      }
      await this.#refresh(true);
      this.#off = this.#store.onChange(() => this.#schedule());
      this.#timer = setInterval(() => this.#schedule(), TICK_MS);
      this.#heartbeat = setInterval(() => {
        for (const c of this.#clients) c.res.write(": heartbeat\n\n");
      }, HEARTBEAT_MS);
      this.#timer.unref();
      this.#heartbeat.unref();
    })();
    return this.#started;
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#off?.();
    this.#timer = this.#heartbeat = this.#debounce = null;
    this.#off = null;
    this.#started = null;
    this.#last.clear();
    this.#verdictsSeen.clear();
    this.#cursor.clear();
  }

  #schedule(): void {
    if (this.#debounce !== null || this.#started === null) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      void this.#run();
    }, DEBOUNCE_MS);
  }

  /** One refresh at a time; a change during one asks for another after it. */
  async #run(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#refresh(false)
      .catch(() => undefined) // a closing store: the next change or tick tries again
      .finally(() => {
        this.#running = null;
        if (this.#again) {
          this.#again = false;
          void this.#run();
        }
      });
    await this.#running;
  }

  async #serviceNames(): Promise<string[]> {
    return (await this.#store.listResources("Service")).map((s) => s.name).sort();
  }

  async #refresh(initial: boolean): Promise<void> {
    const names = await this.#serviceNames();
    for (const gone of this.#services.filter((s) => !names.includes(s))) {
      this.#last.delete(`status:${gone}`);
      this.#last.delete(`routeTable:${gone}`);
      this.#broadcast("removed", JSON.stringify({ service: gone }));
    }
    this.#services = names;
    for (const service of names) {
      const view = (await this.#inject(
        `/api/v1/services/${encodeURIComponent(service)}/status`,
      )) as Record<string, unknown> | null;
      if (view === null) continue;
      const { now: _now, ...rest } = view;
      const json = JSON.stringify(rest);
      if (this.#last.get(`status:${service}`) !== json) {
        this.#last.set(`status:${service}`, json);
        if (!initial)
          this.#broadcast("status", `{"service":${JSON.stringify(service)},"view":${json}}`);
      }
      const rt = JSON.stringify(rest.routeTable ?? null);
      if (this.#last.get(`routeTable:${service}`) !== rt) {
        this.#last.set(`routeTable:${service}`, rt);
        if (!initial)
          this.#broadcast(
            "routeTable",
            `{"service":${JSON.stringify(service)},"routeTable":${rt}}`,
          );
      }
      this.#verdicts(service, rest.status as Record<string, unknown> | null, initial);
      // New history; a service applied since the hub started reads its history from the start.
      const after = this.#cursor.get(service) ?? 0;
      const events = await this.#store.listEvents(service, { afterId: after, limit: 1000 });
      this.#newEvents(service, events, after, initial && !this.#cursor.has(service));
    }
    const flagEvents = await this.#store.listEvents("", {
      afterId: this.#cursor.get("") ?? 0,
      limit: 1000,
    });
    this.#newEvents("", flagEvents, this.#cursor.get("") ?? 0, false);
    const flags = await this.#inject("/api/v1/flags");
    if (flags !== null) {
      const json = JSON.stringify(flags);
      if (this.#last.get("flags") !== json) {
        this.#last.set("flags", json);
        if (!initial) this.#broadcast("flags", json);
      }
    }
  }

  #newEvents(service: string, events: TurnoutEvent[], after: number, silent: boolean): void {
    let last = after;
    for (const e of events) {
      if (e.id > last) last = e.id;
      if (e.id > this.#maxEventId) this.#maxEventId = e.id;
      if (!silent) for (const c of this.#clients) if (c.ready) this.#sendEvent(c, e);
    }
    this.#cursor.set(service, last);
  }

  #verdicts(service: string, status: Record<string, unknown> | null, initial: boolean): void {
    const analysis = status?.analysis as
      | {
          step?: { run?: { metrics?: MetricRunLike[] } } | null;
          background?: { metrics?: MetricRunLike[] } | null;
        }
      | undefined;
    const runs: [string, MetricRunLike[] | undefined][] = [
      ["step", analysis?.step?.run?.metrics],
      ["background", analysis?.background?.metrics],
    ];
    for (const [run, metrics] of runs) {
      for (const m of metrics ?? []) {
        for (const v of m.verdicts ?? []) {
          const key = `${service}\u0000${run}\u0000${m.template}\u0000${m.name}\u0000${v.at}\u0000${v.measurement}`;
          if (this.#verdictsSeen.has(key)) continue;
          this.#verdictsSeen.add(key);
          if (!initial)
            this.#broadcast(
              "verdict",
              JSON.stringify({ service, run, metric: m.name, template: m.template, verdict: v }),
            );
        }
      }
    }
  }

  #sendEvent(c: Client, e: TurnoutEvent): void {
    if (e.id <= c.lastEventId) return;
    c.lastEventId = e.id;
    this.#write(c, "event", JSON.stringify(e));
  }

  #broadcast(type: string, json: string): void {
    for (const c of this.#clients) if (c.ready) this.#write(c, type, json);
  }

  #write(c: Client, type: string, json: string): void {
    const id = Math.max(c.lastEventId, 0);
    c.res.write(`id: ${id}\nevent: ${type}\ndata: ${json}\n\n`);
  }
}

export function registerStreamRoute(
  app: FastifyInstance,
  opts: { store: Store; token: string },
): void {
  const inject: Inject = async (url) => {
    const r = await app.inject({
      method: "GET",
      url,
      headers: { authorization: `Bearer ${opts.token}` },
    });
    return r.statusCode === 200 ? r.json() : null;
  };
  const hub = new Hub(opts.store, inject);
  app.addHook("preClose", async () => hub.stopAll());
  app.get<{ Querystring: { lastEventId?: string } }>(STREAM_PATH, async (req, reply) => {
    // The header when EventSource reconnects by itself; the query when the page makes a new one.
    const h = req.headers["last-event-id"] ?? req.query.lastEventId;
    const raw = Array.isArray(h) ? h[0] : h;
    const lastEventId = raw !== undefined && /^\d{1,15}$/.test(raw) ? Number(raw) : null;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
    await hub.add(res, lastEventId).catch(() => res.end());
  });
}
