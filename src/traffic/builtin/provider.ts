/**
 * The built-in router as a traffic provider: Turnout's own proxy (src/router/), which carries
 * every route-table feature, including mirroring with comparison and edge flags. It drives the
 * unchanged `Router` through its public API: the tables it is given go into an in-memory
 * source (`TableFeed`), the Router reloads from it, and `apply` resolves once the Router's
 * reload after that change is done, so every outcome it reports is in force.
 */
import type { RouteTable } from "../../core/model.js";
import { PREVIEW_SUFFIX } from "../../core/routes.js";
import { ROUTE_FEATURES, type RouteFeature, TRAFFIC_MODES } from "../../core/traffic.js";
import { TurnoutError } from "../../errors.js";
import { type ListenerInfo, Router, type RouterOptions } from "../../router/router.js";
import type { TableOutcome, TrafficProvider } from "../provider.js";
import { unsupportedTableError } from "../tables.js";
import { TableFeed } from "./feed.js";

export type BuiltinProviderOptions = Omit<RouterOptions, "source">;

export class BuiltinProvider implements TrafficProvider {
  readonly kind = "builtin" as const;
  /**
   * Every feature, when the Router evaluates flags (`edgeFlags`, as `turnout up` gives it); a
   * Router without it would pass a table's flags by unevaluated, so it does not claim them.
   */
  readonly features: ReadonlySet<RouteFeature>;
  readonly #feed = new TableFeed();
  readonly #router: Router;
  /** The tables in the feed now, by service: what a refused table leaves in force. */
  #current = new Map<string, RouteTable>();
  #started = false;
  /** `apply` calls run one at a time, in call order. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: BuiltinProviderOptions = {}) {
    this.#router = new Router({ ...opts, source: this.#feed });
    this.features = new Set(
      opts.edgeFlags !== undefined
        ? ROUTE_FEATURES
        : ROUTE_FEATURES.filter((f) => f !== "edgeFlags"),
    );
  }

  /** The Router itself: its stats, measurements, mirrors and endpoints. */
  get router(): Router {
    return this.#router;
  }

  /** Every listener (a preview listener as `<service>:preview`), with its bound port. */
  listeners(): ListenerInfo[] {
    return this.#router.listeners();
  }

  async start(): Promise<void> {
    if (this.#started) throw new Error("BuiltinProvider.start() called twice");
    this.#started = true;
    await this.#router.start();
  }

  async stop(): Promise<void> {
    await this.#queue.catch(() => undefined);
    await this.#router.stop();
  }

  apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    if (!this.#started) return Promise.reject(new Error("BuiltinProvider.apply() before start()"));
    const run = this.#queue.then(() => this.#apply(tables));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  inForce(): ReadonlyMap<string, number> {
    return new Map(Object.entries(this.#router.revisions()));
  }

  async #apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    const outcomes: TableOutcome[] = [];
    const next = new Map<string, RouteTable>();
    const name =
      this.features.size === ROUTE_FEATURES.length
        ? TRAFFIC_MODES.builtin.name
        : `${TRAFFIC_MODES.builtin.name} (without edge flag evaluation)`;
    for (const t of tables) {
      if (next.has(t.service)) {
        outcomes.push({
          service: t.service,
          revision: t.revision,
          ok: false,
          error: new Error(`two route tables for ${t.service}; the first is in force`),
        });
        continue;
      }
      const refused = unsupportedTableError(t, name, this.features);
      if (refused !== null) {
        // The service keeps what it had (or stays without a listener).
        const previous = this.#current.get(t.service);
        if (previous !== undefined) next.set(t.service, previous);
        outcomes.push({ service: t.service, revision: t.revision, ok: false, error: refused });
        continue;
      }
      next.set(t.service, t);
      outcomes.push({ service: t.service, revision: t.revision, ok: true });
    }
    this.#current = next;
    await this.#inForce(this.#feed.replace([...next.values()]));

    // A table the Router holds but cannot listen for (a port taken) is not serving: say so.
    // The Router retries the bind at each poll and serves as soon as it can.
    const errors = new Map<string, string>();
    for (const l of this.#router.listeners())
      if (l.error !== undefined) errors.set(l.service, l.error);
    return outcomes.map((o) => {
      if (!o.ok) return o;
      const why = errors.get(o.service) ?? errors.get(`${o.service}${PREVIEW_SUFFIX}`);
      if (why === undefined) return o;
      const t = next.get(o.service);
      const preview = !errors.has(o.service);
      const where = preview
        ? `its preview port ${t?.preview?.listen.port}`
        : `port ${t?.listen.port}`;
      return {
        service: o.service,
        revision: o.revision,
        ok: false,
        error: new TurnoutError(
          "TURNOUT_ERR_TRAFFIC_LISTEN",
          `the built-in router cannot listen for ${o.service} on ${where}: ${why}; it retries at each poll`,
          { service: o.service, revision: o.revision },
        ),
      };
    });
  }

  /** Resolves once the Router's reload that read feed version `version` (or later) is done. */
  #inForce(version: number): Promise<void> {
    return new Promise((resolve) => {
      // Reloads run one at a time and each emits after it applied what it read, so the first
      // event after a read of `version` is the one that put it in force.
      const off = this.#router.onReload((e) => {
        if (!e.ok || this.#feed.readVersion < version) return;
        off();
        resolve();
      });
    });
  }
}
