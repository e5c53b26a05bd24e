/**
 * HAProxy as Turnout's data plane (`spec.traffic: {haproxy: {...}}`): the `TrafficProvider` that
 * puts route tables in force in HAProxy, and takes HAProxy's request log back in as the same
 * measurement rows the built-in router writes.
 *
 * Two modes, chosen per table by its `traffic.haproxy`:
 *
 * - **Managed** (`{haproxy: {}}`, optionally `binary`, `protocol`): Turnout runs **one HAProxy
 *   per service**, with its config, maps and Lua in `<dataDir>/haproxy/<service>/` and its runtime
 *   API socket in a short temp dir (unix socket paths are limited to 107 bytes). One per service
 *   rather than one for all: a config HAProxy refuses, a reload or a crash touches one service
 *   only; a service's structural change (a new preview port) reloads only its own process; and
 *   each process's maps, slots and counters belong to one table, which keeps config.ts simple.
 *   The price is one master and one worker per service (a few MB each).
 *   - The first table starts HAProxy (supervisor.ts). Later tables change it **live** over the
 *     runtime API whenever `structuralConfig` is unchanged: servers are added first (`add
 *     server`), then each changed map is replaced atomically (`backends`, `override`, `rules`,
 *     `sticky`, `split`, `preview`, and `meta` with the revision last), then servers that left
 *     the table are drained (`set server ... state drain`: no new request, the ones in flight
 *     finish); a reaper deletes a drained server once it has no connection left. A version that
 *     leaves the table keeps its slot until its servers are gone.
 *   - A structural change (listener, preview port, stickiness source, policy, more slots) is a
 *     hitless reload (`HaproxySupervisor.reload`). A config HAProxy refuses leaves the old
 *     worker, its maps and its files in force, and the table's outcome is `ok: false` with the
 *     TURNOUT_ERR_HAPROXY_* error.
 *   - `ok: true` only once HAProxy reads back what was asked: every changed map (`show map`) and
 *     every server's admin state (`show servers state`).
 *   - The files on disk always hold the state in force (maps and servers), so a restart after a
 *     crash comes back with it without Turnout's help.
 * - **Attach** (`{haproxy: {runtimeApi: "unix:/path.sock", backend: NAME}}`): someone else runs
 *   HAProxy; Turnout changes only that backend: one server per endpoint (a server already there
 *   with the endpoint's address is reused, others are added as `turnout-<address>`), server
 *   weights giving each version its share, servers that left the table drained (Turnout's own
 *   then deleted). Split only: the frontend belongs to its owner, so matches, stickiness, the
 *   override and the preview cannot be carried and are refused. Weights are integers 1..256 per
 *   server, so a share is carried to within about 0.4 %. Measurements are not taken in attach
 *   mode (the owner's log is not Turnout's): the analysis sees no data and says inconclusive.
 *
 * Measurements: every managed HAProxy logs to one `LogIntake` (intake.ts) whose recorder flushes
 * through the router's `MeasurementFlusher` into the same rows, so judges, experiments'
 * metrics and `/metrics` read HAProxy's traffic unchanged. `intakeStats()` counts lines lost.
 *
 * A/B experiments (managed mode): HAProxy assigns arms in the router's order (forced arm, unit
 * key, the arms' bucket ranges with the experiment's salt) with its own hash (hash.ts,
 * `haproxy-xxh32-v1`, as for sticky keys) and logs the arm a request exposed; the provider
 * turns those lines into first exposures (`ExposureLog`, the router's) for `exposures`.
 *
 * Not carried (refused at apply with TURNOUT_ERR_TRAFFIC_UNSUPPORTED naming the feature):
 * `mirror` (shadow comparison), `edgeFlags`, and `experimentResponseHeaders` (A/B metrics read
 * from response headers: the log carries no per-unit header values).
 */
import { lookup } from "node:dns/promises";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HaproxyTrafficSpec, RouteTable } from "../../core/model.js";
import { type RouteFeature, TRAFFIC_MODES } from "../../core/traffic.js";
import { TurnoutError } from "../../errors.js";
import { ExposureLog, type ExposureSink } from "../../router/exposures.js";
import {
  MeasurementFlusher,
  type MeasurementRecorder,
  type RouterMeasurementOptions,
} from "../../router/stats.js";
import type { TableOutcome, TrafficProvider } from "../provider.js";
import { unsupportedTableError } from "../tables.js";
import {
  assignSlots,
  type HaproxyProtocol,
  isPreviewTable,
  MAP_NAMES,
  type MapFiles,
  type MapName,
  mapText,
  planService,
  type RenderOptions,
  renderConfig,
  renderMaps,
  type ServerPlan,
  type ServicePlan,
  serverArgs,
  serverOf,
  slotName,
  structuralConfig,
} from "./config.js";
import { type IntakeStats, LogIntake } from "./intake.js";
import { RuntimeApi, type ServerStateRow } from "./runtime-api.js";
import {
  checkHaproxy,
  HaproxySupervisor,
  type SupervisorLogger,
  type SupervisorStatus,
} from "./supervisor.js";

/** What a managed HAProxy carries: core/traffic.ts's table, which apply checks too. */
export const HAPROXY_MANAGED_FEATURES: ReadonlySet<RouteFeature> = TRAFFIC_MODES.haproxy.features;
/** What an attached HAProxy's backend carries: weights only. */
export const HAPROXY_ATTACH_FEATURES: ReadonlySet<RouteFeature> =
  TRAFFIC_MODES.haproxyAttach.features;

/** The features a table's `traffic.haproxy` allows (attach mode when it names a runtime API). */
export function haproxyFeatures(spec: HaproxyTrafficSpec | undefined): ReadonlySet<RouteFeature> {
  return spec?.runtimeApi !== undefined ? HAPROXY_ATTACH_FEATURES : HAPROXY_MANAGED_FEATURES;
}

/** Admin-state bits of `show servers state` (HAProxy's SRV_ADMF_*): maintenance and drain. */
const ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const ADMIN_DRAIN = 0x08 | 0x10;
/** The largest weight HAProxy gives a server. */
const MAX_SERVER_WEIGHT = 256;
/** Prefix of the servers Turnout adds to an attached backend. */
const ATTACH_PREFIX = "turnout-";

export interface HaproxyProviderOptions {
  /** Turnout's data dir: managed services get `<dataDir>/haproxy/<service>/`. */
  dataDir: string;
  logger?: SupervisorLogger;
  /**
   * Where HAProxy's measurements go: the same options as the built-in router's `measurements`
   * (the store as `sink`, flush interval, retention, window). `routerId` defaults to
   * `haproxy@<hostname>:<pid>` so its rows never overwrite the built-in router's.
   */
  measurements?: RouterMeasurementOptions;
  /**
   * Where A/B exposures go (the experiment store, as the router's `exposures`): each unit's
   * first exposure per experiment, from the arm HAProxy logged. Without one, none are kept.
   */
  exposures?: ExposureSink;
  /** HAProxy threads per managed service (default 1). */
  threads?: number;
  /** Restart back-off of a managed HAProxy that died (supervisor.ts defaults). */
  restartInitialMs?: number;
  restartMaxMs?: number;
  /** How often drained servers without connections are deleted (default 1000 ms). */
  reapIntervalMs?: number;
}

/** A managed service's state, for `status`. */
export interface HaproxyServiceStatus {
  service: string;
  mode: "managed" | "attach";
  revision: number | null;
  /** Managed: the process. */
  process?: SupervisorStatus;
  /** Servers drained and waiting for their connections to end. */
  draining: number;
}

const quietLogger: SupervisorLogger = { debug() {}, info() {}, warn() {}, error() {} };

interface Carrier {
  readonly mode: "managed" | "attach";
  /** The spec it was made for: another spec needs another carrier. */
  readonly specKey: string;
  readonly api: RuntimeApi;
  apply(table: RouteTable): Promise<void>;
  reap(): Promise<void>;
  stop(): Promise<void>;
  status(): Omit<HaproxyServiceStatus, "service" | "revision">;
}

/**
 * The HAProxy traffic provider. See the module comment.
 *
 * @example
 * const hx = new HaproxyProvider({ dataDir, logger, measurements: { sink: store } });
 * await hx.start();
 * const outcomes = await hx.apply(tables.filter((t) => t.traffic && "haproxy" in t.traffic));
 * await hx.stop();
 */
export class HaproxyProvider implements TrafficProvider {
  readonly kind = "haproxy" as const;
  readonly features = HAPROXY_MANAGED_FEATURES;
  readonly #o: HaproxyProviderOptions;
  readonly #logger: SupervisorLogger;
  readonly #intake: LogIntake;
  readonly #flusher: MeasurementFlusher;
  readonly #exposures: ExposureLog;
  readonly #carriers = new Map<string, Carrier>();
  readonly #inForce = new Map<string, number>();
  /** The table in force per service (to bring a previous carrier back). */
  readonly #tables = new Map<string, RouteTable>();
  #intakeAddr: { host: string; port: number } | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #reapTimer: NodeJS.Timeout | null = null;
  #started = false;

  constructor(opts: HaproxyProviderOptions) {
    this.#o = opts;
    this.#logger = opts.logger ?? quietLogger;
    const m = opts.measurements ?? {};
    const { sink, flushIntervalMs, retentionSeconds, ...recorder } = m;
    this.#intake = new LogIntake({
      ...recorder,
      routerId: recorder.routerId ?? `haproxy@${hostname()}:${process.pid}`,
    });
    this.#exposures = new ExposureLog({ sink: opts.exposures, logger: this.#logger as never });
    this.#intake.onLines = (lines) => {
      for (const l of lines) {
        if (l.arm === null || l.unit === null) continue;
        const name = this.#tables.get(l.series)?.experiment?.name;
        if (name !== undefined) this.#exposures.expose(name, l.unit, l.arm);
      }
    };
    this.#flusher = new MeasurementFlusher({
      recorder: this.#intake.recorder,
      sink,
      logger: this.#logger as never,
      ...(flushIntervalMs !== undefined ? { intervalMs: flushIntervalMs } : {}),
      ...(retentionSeconds !== undefined ? { retentionSeconds } : {}),
    });
  }

  /** The recorder HAProxy's measurements go to (windows, totals for /metrics). */
  get measurements(): MeasurementRecorder {
    return this.#intake.recorder;
  }

  /** The log intake's counts: lines measured, lost, late, unparsable, unrouted. */
  intakeStats(): IntakeStats {
    return this.#intake.stats();
  }

  /** Writes every measured second and buffered exposure now (tests, shutdown). */
  async flushMeasurements(): Promise<void> {
    await this.#flusher.flush(true);
    await this.#exposures.flush();
  }

  /** The runtime API Turnout drives for a service (its own HAProxy's, or the attached one). */
  runtimeApi(service: string): RuntimeApi | undefined {
    return this.#carriers.get(service)?.api;
  }

  status(): HaproxyServiceStatus[] {
    return [...this.#carriers.entries()].map(([service, c]) => ({
      service,
      revision: this.#inForce.get(service) ?? null,
      ...c.status(),
    }));
  }

  async start(): Promise<void> {
    if (this.#started) return;
    mkdirSync(join(this.#o.dataDir, "haproxy"), { recursive: true });
    this.#intakeAddr = await this.#intake.listen("127.0.0.1", 0);
    this.#flusher.start();
    this.#exposures.start();
    this.#reapTimer = setInterval(() => void this.#reapAll(), this.#o.reapIntervalMs ?? 1000);
    this.#reapTimer.unref();
    this.#started = true;
  }

  async stop(): Promise<void> {
    await this.#serial(async () => {
      if (this.#reapTimer !== null) clearInterval(this.#reapTimer);
      this.#reapTimer = null;
      await Promise.all([...this.#carriers.values()].map((c) => c.stop()));
      this.#carriers.clear();
      this.#inForce.clear();
      this.#tables.clear();
      if (this.#started) {
        await this.#flusher.stop();
        await this.#exposures.stop();
        await this.#intake.close();
      }
      this.#started = false;
    });
  }

  inForce(): ReadonlyMap<string, number> {
    return new Map(this.#inForce);
  }

  apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    return this.#serial(() => this.#apply(tables));
  }

  /** Runs `fn` after every earlier apply, reap or stop: one writer of HAProxy's state at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  async #apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    if (!this.#started) await this.start();
    const main = tables.filter((t) => !isPreviewTable(t));
    const wanted = new Set(main.map((t) => t.service));
    // Services gone: stop their HAProxy (managed); an attached backend is left as it is.
    for (const [service, c] of this.#carriers) {
      if (wanted.has(service)) continue;
      await c.stop();
      this.#carriers.delete(service);
      this.#inForce.delete(service);
      this.#tables.delete(service);
      this.#intake.recorder.retire(service);
      this.#intake.recorder.retire(`${service}:preview`);
    }
    const outcomes = await Promise.all(main.map((t) => this.#applyOne(t)));
    // A preview table handed in beside its service (`expandPreviews`) shares its outcome.
    const byService = new Map(outcomes.map((o) => [o.service, o]));
    const out: TableOutcome[] = [];
    for (const t of tables) {
      if (!isPreviewTable(t)) {
        out.push(byService.get(t.service)!);
        continue;
      }
      const base = byService.get(t.service.slice(0, -":preview".length));
      out.push(
        base === undefined
          ? {
              service: t.service,
              revision: t.revision,
              ok: false,
              error: new TurnoutError(
                "TURNOUT_ERR_HAPROXY_UNSUPPORTED",
                `preview table ${t.service} without its service: the haproxy provider serves previews from the service's own table`,
              ),
            }
          : base.ok
            ? { service: t.service, revision: t.revision, ok: true }
            : { service: t.service, revision: t.revision, ok: false, error: base.error },
      );
    }
    return out;
  }

  async #applyOne(table: RouteTable): Promise<TableOutcome> {
    const { service, revision } = table;
    try {
      const spec =
        table.traffic !== undefined && "haproxy" in table.traffic ? table.traffic.haproxy : {};
      refuseUnsupported(table, spec);
      const key = JSON.stringify(spec);
      const old = this.#carriers.get(service);
      if (old !== undefined && old.specKey === key) {
        // The router role hands over every table at each change of any: one already in force
        // in a running HAProxy is left alone (an attached one is re-asserted: its owner may
        // have restarted it).
        const same =
          old.mode === "managed" &&
          old.status().process?.running === true &&
          sameTable(this.#tables.get(service), table);
        if (!same) await old.apply(table);
      } else {
        // Another binary, mode or protocol: a fresh carrier. Made first, so a binary that is
        // missing or too old is refused while the old one serves; the old one then stops (a
        // managed HAProxy frees its port) and comes back if the new one cannot start.
        const next: Carrier =
          spec.runtimeApi !== undefined
            ? new AttachedService(service, spec, key)
            : new ManagedService(service, spec, key, this.#managedOptions(service));
        if (old !== undefined) await old.stop();
        try {
          await next.apply(table);
        } catch (err) {
          await next.stop().catch(() => {});
          const last = this.#tables.get(service);
          if (old !== undefined && last !== undefined) {
            await old.apply(last).catch((e) => {
              this.#logger.error(
                { service, err: e },
                "haproxy: the previous data plane did not come back",
              );
              this.#carriers.delete(service);
              this.#inForce.delete(service);
            });
          }
          throw err;
        }
        this.#carriers.set(service, next);
      }
      this.#tables.set(service, table);
      this.#inForce.set(service, revision);
      return { service, revision, ok: true };
    } catch (err) {
      const error =
        err instanceof TurnoutError
          ? err
          : new TurnoutError(
              "TURNOUT_ERR_HAPROXY_START_FAILED",
              `HAProxy for ${service}: ${(err as Error).message}`,
            );
      this.#logger.warn({ service, revision, err: error }, "haproxy: table not put in force");
      return { service, revision, ok: false, error };
    }
  }

  #managedOptions(service: string): ManagedOptions {
    return {
      dataDir: this.#o.dataDir,
      intake: this.#intakeAddr!,
      logger: this.#logger,
      threads: this.#o.threads ?? 1,
      ...(this.#o.restartInitialMs !== undefined
        ? { restartInitialMs: this.#o.restartInitialMs }
        : {}),
      ...(this.#o.restartMaxMs !== undefined ? { restartMaxMs: this.#o.restartMaxMs } : {}),
      service,
    };
  }

  #reapAll(): Promise<void> {
    return this.#serial(async () => {
      for (const c of this.#carriers.values()) {
        try {
          await c.reap();
        } catch (err) {
          this.#logger.debug({ err }, "haproxy: reaping drained servers failed; retrying later");
        }
      }
    });
  }
}

function sameTable(a: RouteTable | undefined, b: RouteTable): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Refuses a table that uses a feature the mode does not carry, naming it and the provider, with
 * the error every provider uses for it (TURNOUT_ERR_TRAFFIC_UNSUPPORTED, src/traffic/tables.ts).
 */
function refuseUnsupported(table: RouteTable, spec: HaproxyTrafficSpec): void {
  const mode = spec.runtimeApi !== undefined ? "attach mode (runtimeApi)" : "managed mode";
  const err = unsupportedTableError(
    table,
    `the haproxy provider in ${mode}`,
    haproxyFeatures(spec),
  );
  if (err) throw err;
}

/** Host names of a table's endpoints resolved to addresses (HAProxy servers take addresses). */
async function resolver(table: RouteTable): Promise<(host: string) => string | undefined> {
  const hosts = new Set<string>();
  for (const b of table.backends) {
    for (const e of b.endpoints) {
      try {
        const h = new URL(e).hostname;
        if (!/^[\d.]+$/.test(h) && !h.startsWith("[")) hosts.add(h);
      } catch {}
    }
  }
  const out = new Map<string, string>();
  await Promise.all(
    [...hosts].map(async (h) => {
      try {
        // One address per server: IPv4 first, as upstreams most often listen on 127.0.0.1
        // while "localhost" may resolve to ::1 first.
        const all = await lookup(h, { all: true });
        const pick = all.find((a) => a.family === 4) ?? all[0];
        if (pick !== undefined) out.set(h, pick.address);
      } catch {}
    }),
  );
  return (h) => out.get(h);
}

// ---------------------------------------------------------------------------------------
// Managed mode
// ---------------------------------------------------------------------------------------

interface ManagedOptions {
  dataDir: string;
  intake: { host: string; port: number };
  logger: SupervisorLogger;
  threads: number;
  restartInitialMs?: number;
  restartMaxMs?: number;
  service: string;
}

/** A server Turnout put in a slot, and whether it is draining. */
interface PlacedServer {
  server: ServerPlan;
  draining: boolean;
}

const LUA_SOURCE = fileURLToPath(new URL("./turnout.lua", import.meta.url));

/** A service name as a directory name (service names are DNS labels; this keeps any safe). */
function dirName(service: string): string {
  return service.replace(/[^A-Za-z0-9._-]/g, "_");
}

class ManagedService implements Carrier {
  readonly mode = "managed" as const;
  readonly #dir: string;
  readonly #socketDir: string;
  readonly #sup: HaproxySupervisor;
  readonly #protocol: HaproxyProtocol;
  readonly #o: ManagedOptions;
  #plan: ServicePlan | null = null;
  #slots: (string | null)[] = [];
  #structural: string | null = null;
  #maps: MapFiles | null = null;
  /** Servers in HAProxy per slot (by name). */
  #placed = new Map<number, Map<string, PlacedServer>>();

  constructor(
    readonly service: string,
    spec: HaproxyTrafficSpec,
    readonly specKey: string,
    opts: ManagedOptions,
  ) {
    this.#o = opts;
    const binary = checkHaproxy(spec.binary ?? "haproxy");
    this.#protocol = spec.protocol ?? "http";
    this.#dir = join(opts.dataDir, "haproxy", dirName(service));
    mkdirSync(this.#dir, { recursive: true });
    this.#socketDir = mkdtempSync(join(tmpdir(), "thx-"));
    this.#sup = new HaproxySupervisor({
      binary,
      dir: this.#dir,
      socketDir: this.#socketDir,
      logger: opts.logger,
      name: service,
      // After any (re)start or reload the process holds what the files say: no draining server.
      onStart: () => {
        for (const placed of this.#placed.values())
          for (const [name, p] of placed) if (p.draining) placed.delete(name);
      },
      ...(opts.restartInitialMs !== undefined ? { restartInitialMs: opts.restartInitialMs } : {}),
      ...(opts.restartMaxMs !== undefined ? { restartMaxMs: opts.restartMaxMs } : {}),
    });
  }

  /** The runtime API of this service's HAProxy (tests read it back). */
  get api(): RuntimeApi {
    return this.#sup.api;
  }

  status(): Omit<HaproxyServiceStatus, "service" | "revision"> {
    let draining = 0;
    for (const m of this.#placed.values()) for (const p of m.values()) if (p.draining) draining++;
    return { mode: this.mode, process: this.#sup.status(), draining };
  }

  #renderOptions(): RenderOptions {
    return {
      dir: this.#dir,
      socketDir: this.#socketDir,
      intake: this.#o.intake,
      protocol: this.#protocol,
      threads: this.#o.threads,
    };
  }

  async apply(table: RouteTable): Promise<void> {
    const plan = planService(table, { resolve: await resolver(table) });
    if (plan.refusals.length > 0) {
      throw new TurnoutError(
        "TURNOUT_ERR_HAPROXY_UNSUPPORTED",
        `service ${table.service}: ${plan.refusals.join("; ")}`,
        { provider: "haproxy" },
      );
    }
    for (const p of plan.problems) this.#o.logger.warn({ service: this.service }, `haproxy: ${p}`);
    // Versions still draining keep their slot until their servers are gone.
    const draining = [...this.#placed.entries()]
      .filter(([, m]) => m.size > 0)
      .map(([i]) => this.#slots[i])
      .filter((v): v is string => v !== null && v !== undefined);
    const needed = [...new Set([...plan.versions.map((v) => v.version), ...draining])];
    const slots = assignSlots(this.#slots, needed);
    const opts = this.#renderOptions();
    const structural = structuralConfig({ plan, slots }, opts);
    const maps = renderMaps(plan, slots);
    if (
      this.#structural === null ||
      structural !== this.#structural ||
      !this.#sup.status().running
    ) {
      await this.#restartWith(plan, slots, maps, structural);
    } else {
      await this.#live(plan, slots, maps);
    }
  }

  /** First start, or a structural change: files, then start or hitless reload. */
  async #restartWith(
    plan: ServicePlan,
    slots: (string | null)[],
    maps: MapFiles,
    structural: string,
  ): Promise<void> {
    const opts = this.#renderOptions();
    const cfg = renderConfig({ plan, slots }, opts);
    copyFileSync(LUA_SOURCE, join(this.#dir, "turnout.lua"));
    mkdirSync(this.#socketDir, { recursive: true, mode: 0o700 });
    const before = this.#maps;
    this.#writeMaps(maps);
    try {
      if (this.#structural === null || !this.#sup.status().running) await this.#sup.start(cfg);
      else await this.#sup.reload(cfg);
    } catch (err) {
      // The old worker (if any) keeps serving with the maps it has; the files go back to them.
      if (before !== null) this.#writeMaps(before);
      throw err;
    }
    this.#plan = plan;
    this.#slots = slots;
    this.#structural = structural;
    this.#maps = maps;
    this.#placed = new Map();
    slots.forEach((v, i) => {
      const servers = plan.versions.find((x) => x.version === v)?.servers ?? [];
      this.#placed.set(i, new Map(servers.map((s) => [s.name, { server: s, draining: false }])));
    });
    await this.#verify(this.#loadedMaps());
  }

  /** The maps the config in force refers to (HAProxy loads only those). */
  #loadedMaps(): MapName[] {
    const text = this.#structural ?? "";
    return MAP_NAMES.filter((n) => text.includes(`${join(this.#dir, n)})`));
  }

  /** A change that needs no reload: servers and maps over the runtime API. */
  async #live(plan: ServicePlan, slots: (string | null)[], maps: MapFiles): Promise<void> {
    const api = this.#sup.api;
    const opts = this.#renderOptions();
    // 1. Servers that appear (or come back from draining).
    for (const [i, version] of slots.entries()) {
      let placed = this.#placed.get(i);
      if (placed === undefined) {
        placed = new Map();
        this.#placed.set(i, placed);
      }
      // A slot given to another version: whatever drained there is gone by now (reaped).
      const want = plan.versions.find((v) => v.version === version)?.servers ?? [];
      for (const s of want) {
        const p = placed.get(s.name);
        if (p === undefined) {
          await api.addServer(slotName(i), s.name, serverArgs(plan, opts, s));
          placed.set(s.name, { server: s, draining: false });
        } else if (p.draining) {
          await api.setServerState(slotName(i), s.name, "ready");
          p.draining = false;
        }
      }
    }
    // 2. Maps, each replaced atomically; the revision last.
    const changed: MapName[] = [];
    for (const name of this.#loadedMaps()) {
      if (name === "meta.map") continue;
      if (this.#maps !== null && sameLines(this.#maps[name], maps[name])) continue;
      await api.replaceMap(join(this.#dir, name), maps[name]);
      changed.push(name);
    }
    // 3. Servers that left: drained, deleted by the reaper once idle.
    for (const [i, placed] of this.#placed) {
      const version = slots[i] ?? null;
      const want = new Set(
        (plan.versions.find((v) => v.version === version)?.servers ?? []).map((s) => s.name),
      );
      for (const [name, p] of placed) {
        if (want.has(name) || p.draining) continue;
        await api.setServerState(slotName(i), name, "drain");
        p.draining = true;
      }
    }
    await api.replaceMap(join(this.#dir, "meta.map"), maps["meta.map"]);
    changed.push("meta.map");
    this.#plan = plan;
    this.#slots = slots;
    this.#maps = maps;
    this.#writeFiles();
    await this.#verify(changed);
  }

  /** The maps and the config with the servers in force, so a restart comes back as it was. */
  #writeFiles(): void {
    if (this.#plan === null || this.#maps === null) return;
    this.#writeMaps(this.#maps);
    const servers = new Map<number, ServerPlan[]>();
    for (const [i, placed] of this.#placed) {
      servers.set(
        i,
        [...placed.values()].filter((p) => !p.draining).map((p) => p.server),
      );
    }
    const cfg = renderConfig(
      { plan: this.#plan, slots: this.#slots, servers },
      this.#renderOptions(),
    );
    const tmp = `${this.#sup.configPath}.tmp`;
    writeFileSync(tmp, cfg);
    // rename is atomic: a restart reads the old file or the new one.
    renameAtomic(tmp, this.#sup.configPath);
  }

  #writeMaps(maps: MapFiles): void {
    for (const name of MAP_NAMES) {
      const tmp = join(this.#dir, `${name}.tmp`);
      writeFileSync(tmp, mapText(maps[name]));
      renameAtomic(tmp, join(this.#dir, name));
    }
  }

  /** Reads back the maps named and every slot's servers; throws when HAProxy disagrees. */
  async #verify(maps: readonly MapName[]): Promise<void> {
    const api = this.#sup.api;
    for (const name of maps) {
      const have = await api.showMap(join(this.#dir, name));
      const want = this.#maps![name];
      if (!sameLines(have, want)) {
        throw new TurnoutError(
          "TURNOUT_ERR_HAPROXY_RUNTIME_API",
          `HAProxy for ${this.service}: ${name} reads back ${JSON.stringify(have)}, not ${JSON.stringify(want)}`,
        );
      }
    }
    const rows = await api.serversState();
    for (const [i, placed] of this.#placed) {
      for (const [name, p] of placed) {
        const row = rows.find((r) => r.be_name === slotName(i) && r.srv_name === name);
        if (row === undefined && p.draining) {
          // Deleted already (a restart from the files): nothing left to drain.
          placed.delete(name);
          continue;
        }
        const admin = row === undefined ? -1 : Number(row.srv_admin_state);
        const ok =
          admin >= 0 &&
          (admin & ADMIN_MAINT) === 0 &&
          (p.draining ? (admin & ADMIN_DRAIN) !== 0 : (admin & ADMIN_DRAIN) === 0);
        if (!ok) {
          throw new TurnoutError(
            "TURNOUT_ERR_HAPROXY_RUNTIME_API",
            `HAProxy for ${this.service}: server ${slotName(i)}/${name} is ${row === undefined ? "missing" : `in admin state ${admin}`}, not ${p.draining ? "draining" : "ready"}`,
          );
        }
      }
    }
  }

  /** Deletes drained servers that have no connection left. */
  async reap(): Promise<void> {
    if (!this.#sup.status().running) return;
    let any = false;
    for (const placed of this.#placed.values())
      for (const p of placed.values()) if (p.draining) any = true;
    if (!any) return;
    const stat = await this.#sup.api.stat();
    for (const [i, placed] of this.#placed) {
      for (const [name, p] of placed) {
        if (!p.draining) continue;
        const row = stat.find((r) => r.pxname === slotName(i) && r.svname === name);
        if (row === undefined) {
          // Gone already: HAProxy restarted from the files, which hold no draining server.
          placed.delete(name);
          continue;
        }
        if (Number(row.scur) > 0) continue;
        try {
          await this.#sup.api.delServer(slotName(i), name);
          placed.delete(name);
        } catch {
          // Connections still attached (idle ones included): next time. Back to drain so it
          // is not left in maintenance with requests in flight.
          await this.#sup.api.setServerState(slotName(i), name, "drain").catch(() => {});
        }
      }
    }
  }

  async stop(): Promise<void> {
    const { masterPid, workerPid } = this.#sup.status();
    await this.#sup.stop();
    // The master can exit a moment before its worker has closed the listeners: stopped means
    // the port is free, so wait for every process of it to be gone.
    await waitGone([masterPid, workerPid].filter((p): p is number => p !== null));
    rmSync(this.#socketDir, { recursive: true, force: true });
  }
}

/** Whether a process runs (a zombie, exited but not reaped, does not). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    // No /proc (not Linux): kill(0) said it exists.
    return true;
  }
}

/** Waits until the processes are gone; SIGKILL after `graceMs`. */
async function waitGone(pids: readonly number[], graceMs = 5000): Promise<void> {
  const deadline = Date.now() + graceMs;
  while (pids.some(running)) {
    if (Date.now() > deadline) {
      for (const p of pids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {}
      }
      if (Date.now() > deadline + 2000) return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** rename(2) replaces `to` atomically: a reader sees the old file or the new one. */
function renameAtomic(from: string, to: string): void {
  renameSync(from, to);
}

function sameLines(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((l, i) => l === y[i]);
}

// ---------------------------------------------------------------------------------------
// Attach mode
// ---------------------------------------------------------------------------------------

/** `unix:/path` or an absolute path -> the socket path; anything else is refused. */
function socketPathOf(runtimeApi: string): string {
  const path = runtimeApi.startsWith("unix:") ? runtimeApi.slice(5) : runtimeApi;
  if (!path.startsWith("/")) {
    throw new TurnoutError(
      "TURNOUT_ERR_HAPROXY_RUNTIME_API",
      `spec.traffic.haproxy.runtimeApi ${JSON.stringify(runtimeApi)}: expected "unix:/absolute/path.sock"`,
      { path: "spec.traffic.haproxy.runtimeApi" },
    );
  }
  return path;
}

/**
 * Integer server weights (1..256, 0 for a version at 0 %) giving each version its share of the
 * backend: the largest scale at which no server's weight exceeds 256, so shares are carried as
 * finely as HAProxy allows.
 */
export function attachWeights(
  versions: readonly { version: string; weight: number; servers: number }[],
): Map<string, number> {
  let scale = Number.POSITIVE_INFINITY;
  for (const v of versions) {
    if (v.weight > 0 && v.servers > 0) {
      scale = Math.min(scale, (MAX_SERVER_WEIGHT * v.servers * 100) / v.weight);
    }
  }
  const out = new Map<string, number>();
  for (const v of versions) {
    if (v.servers === 0) continue;
    const w = v.weight > 0 ? ((v.weight / 100) * scale) / v.servers : 0;
    out.set(v.version, v.weight > 0 ? Math.max(1, Math.min(MAX_SERVER_WEIGHT, Math.round(w))) : 0);
  }
  return out;
}

class AttachedService implements Carrier {
  readonly mode = "attach" as const;
  readonly api: RuntimeApi;
  readonly #backend: string;
  /** Turnout's servers drained, to delete once idle. */
  #draining = new Set<string>();

  constructor(
    readonly service: string,
    spec: HaproxyTrafficSpec,
    readonly specKey: string,
  ) {
    this.api = new RuntimeApi(socketPathOf(spec.runtimeApi!));
    if (spec.backend === undefined || spec.backend === "") {
      throw new TurnoutError(
        "TURNOUT_ERR_HAPROXY_BACKEND_NOT_FOUND",
        `service ${service}: spec.traffic.haproxy.backend is required with runtimeApi`,
        { path: "spec.traffic.haproxy.backend" },
      );
    }
    this.#backend = spec.backend;
  }

  status(): Omit<HaproxyServiceStatus, "service" | "revision"> {
    return { mode: this.mode, draining: this.#draining.size };
  }

  async apply(table: RouteTable): Promise<void> {
    const api = this.api;
    const be = this.#backend;
    const backends = await api.backends();
    if (!backends.includes(be)) {
      throw new TurnoutError(
        "TURNOUT_ERR_HAPROXY_BACKEND_NOT_FOUND",
        `service ${table.service}: HAProxy at ${api.socketPath} has no backend ${JSON.stringify(be)} (it has ${backends.join(", ") || "none"})`,
        { path: "spec.traffic.haproxy.backend", backend: be },
      );
    }
    const resolve = await resolver(table);
    const want = new Map<string, { version: string; server: ServerPlan }>();
    const counts: { version: string; weight: number; servers: number }[] = [];
    for (const b of table.backends) {
      let n = 0;
      for (const url of b.endpoints) {
        const s = serverOf(url, { resolve });
        if (typeof s === "string" || want.has(s.address)) continue;
        want.set(s.address, { version: b.version, server: s });
        n++;
      }
      counts.push({ version: b.version, weight: b.weight, servers: n });
    }
    const weights = attachWeights(counts);
    const rows = await api.serversState(be);
    const byAddress = new Map<string, ServerStateRow>();
    for (const r of rows) byAddress.set(addressOf(r), r);
    const expected = new Map<string, { weight: number; drain: boolean }>();
    // Endpoints: reuse the server with that address, else add one.
    for (const [address, w] of want) {
      const weight = weights.get(w.version) ?? 0;
      const row = byAddress.get(address);
      if (row === undefined) {
        const name = `${ATTACH_PREFIX}${w.server.name.slice(2)}`;
        await api.addServer(be, name, `${address} weight ${weight}`);
        expected.set(name, { weight, drain: false });
        this.#draining.delete(name);
      } else {
        const name = row.srv_name!;
        await api.setServerWeight(be, name, weight);
        if (Number(row.srv_admin_state) !== 0) await api.setServerState(be, name, "ready");
        expected.set(name, { weight, drain: false });
        this.#draining.delete(name);
      }
    }
    // Servers not in the table: drained (Turnout's own deleted later; others left drained).
    for (const r of rows) {
      const name = r.srv_name!;
      if (expected.has(name)) continue;
      if ((Number(r.srv_admin_state) & ADMIN_DRAIN) === 0)
        await api.setServerState(be, name, "drain");
      if (name.startsWith(ATTACH_PREFIX)) this.#draining.add(name);
      expected.set(name, { weight: -1, drain: true });
    }
    // Read back.
    const after = await api.serversState(be);
    for (const [name, e] of expected) {
      const r = after.find((x) => x.srv_name === name);
      const admin = r === undefined ? -1 : Number(r.srv_admin_state);
      const ok =
        r !== undefined &&
        (admin & ADMIN_MAINT) === 0 &&
        (e.drain ? (admin & ADMIN_DRAIN) !== 0 : admin === 0 && Number(r.srv_uweight) === e.weight);
      if (!ok) {
        throw new TurnoutError(
          "TURNOUT_ERR_HAPROXY_RUNTIME_API",
          `HAProxy at ${api.socketPath}: server ${be}/${name} reads back ${r === undefined ? "missing" : `weight ${r.srv_uweight}, admin state ${admin}`}, not ${e.drain ? "draining" : `weight ${e.weight}, ready`}`,
        );
      }
    }
  }

  async reap(): Promise<void> {
    if (this.#draining.size === 0) return;
    const stat = await this.api.stat();
    for (const name of [...this.#draining]) {
      const row = stat.find((r) => r.pxname === this.#backend && r.svname === name);
      if (row === undefined) {
        this.#draining.delete(name);
        continue;
      }
      if (Number(row.scur) > 0) continue;
      try {
        await this.api.delServer(this.#backend, name);
        this.#draining.delete(name);
      } catch {
        await this.api.setServerState(this.#backend, name, "drain").catch(() => {});
      }
    }
  }

  async stop(): Promise<void> {
    // Someone else's HAProxy: it keeps running with the servers and weights it has.
  }
}

/** A `show servers state` row's address as `ip:port` (IPv6 in brackets). */
function addressOf(r: ServerStateRow): string {
  const ip = r.srv_addr ?? "";
  return ip.includes(":") ? `[${ip}]:${r.srv_port}` : `${ip}:${r.srv_port}`;
}
