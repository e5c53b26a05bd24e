/**
 * The reconcile loop: read the store, ask the pure core what to do, carry it out, persist.
 *
 * The controller is the only writer of rollout status, route tables and experiment state
 * (DESIGN invariant 1). Everything it decides comes from `core/rollout.ts`; this file only does
 * I/O: it claims and checks the writer epoch, reads specs, statuses and commands, reads
 * readiness from the runtime, runs each service's tick (`tick.ts`, shared with the simulator:
 * due -> measure -> reconcile -> one commit, only when something changed), then starts the
 * measurements now due and tells the runtime which versions to run. Besides the commits, a
 * tick writes only the epoch claim (its first tick) and the events of services deleted
 * meanwhile, which have no commit to ride with.
 *
 * Ticks are driven by an injected clock: tests call `tick()` themselves; `start()` runs a loop
 * that ticks on store or runtime changes, at the next timed wake-up, and every `resyncMs`.
 */
import type { Clock } from "../core/clock.js";
import type {
  AnalysisTemplateSpec,
  EventDraft,
  Resource,
  ServiceResource,
  ServiceStatus,
} from "../core/model.js";
import type { VersionReadiness } from "../core/rollout.js";
import type { ShadowReport } from "../core/shadow/aggregate.js";
import { TurnoutError } from "../errors.js";
import type { ProviderDeps } from "../metrics/providers/index.js";
import { formatPath, validateDocument } from "../resources/schema/index.js";
import type { Instance, Runtime } from "../runtime/runtime.js";
import type { ExperimentStore } from "../store/experiment-store.js";
import { ROUTER_LIVE_MS, type Store, type StoredResource } from "../store/store.js";
import { AnalysisExecutor } from "./analysis-executor.js";
import { type DataPlaneReport, dataPlanesOf } from "./data-plane.js";
import { controllerHolder, DEFAULT_LEASE_MS, Elector } from "./lease.js";
import { ReleaseGate } from "./release-gate.js";
import { type TickPorts, tickService } from "./tick.js";

export interface ControllerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: ControllerLogger = { info() {}, warn() {}, error() {} };

export interface ControllerOptions {
  store: Store;
  runtime: Runtime;
  clock: Clock;
  logger?: ControllerLogger;
  /** Upper bound between two ticks when nothing signals a change (other processes' writes). */
  resyncMs?: number;
  /**
   * What analysis measurements need (the router's measurements for builtin metrics, HTTP
   * dispatchers...). Without it, analysis runs get error verdicts for builtin metrics.
   */
  providers?: ProviderDeps;
  /**
   * A/B experiments' data (exposures, events, measurements) for `experiment` steps, read only:
   * the experiments' rows are written by the tick's commit.
   */
  experiments?: Pick<ExperimentStore, "data" | "getExperiment">;
  /** Shadow phases' reports (the shadow store), for `shadow` steps' gates. */
  shadowReports?: (service: string, id: string) => Promise<ShadowReport | null>;
  /** Who claims the writer epoch, for other writers' error messages. Default pid and host. */
  holder?: string;
  /**
   * How long the stop of an instance waits for every live router to confirm a table without it
   * before it goes ahead anyway (with a `DrainTimedOut` event). Default 10 s.
   */
  releaseTimeoutMs?: number;
  /**
   * A router whose last heartbeat is older than this is not waited for, and its report that it
   * cannot serve a service no longer holds that service's rollout. Default 5 s.
   */
  routerLiveMs?: number;
  /**
   * Several controllers on one store (`--roles controller` on PostgreSQL): lead by a lease
   * (lease.ts) instead of claiming the writer epoch outright. Only the leader ticks; the others
   * stand by and take over when its lease runs out. Without it, the first tick claims the
   * epoch and a controller superseded by another stops for good.
   */
  lease?: { leaseMs?: number; intervalMs?: number };
  /** Called when this controller starts or stops leading (with a lease). */
  onLeadership?: (leading: boolean) => void;
}

export interface TickReport {
  services: number;
  /** Services whose status, route table or events were written this tick. */
  written: string[];
  /** Earliest clock ms at which a service needs a tick by itself. */
  wakeAt: number | null;
  /** With a lease: this controller does not lead, so the tick did nothing. */
  standby?: boolean;
}

export class Controller {
  private readonly store: Store;
  private readonly runtime: Runtime;
  private readonly clock: Clock;
  private readonly log: ControllerLogger;
  private readonly resyncMs: number;
  private readonly routerLiveMs: number;
  private known = new Set<string>();
  /** Services this controller has reconciled since it started (for the restart event). */
  private seen = new Set<string>();
  private running: Promise<TickReport> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private unsubscribe: (() => void)[] = [];
  private readonly analysis: AnalysisExecutor;
  /** Where a tick reads and writes (tick.ts); built once. */
  private readonly ports: TickPorts;
  /**
   * Fencing (DESIGN invariant 7): the writer epoch claimed at the first tick, carried by every
   * commit. Once another controller claims a newer one, the store refuses this one's commits
   * and the controller stops for good (`fenced`): it never retries as if nothing happened.
   * With a lease (several controllers), the claim moves to the election; the rest stays.
   */
  private epoch: number | null = null;
  private fenced: TurnoutError | null = null;
  private readonly holder: string;
  /** Holds stops of instances until every live router serves a table without them. */
  readonly release: ReleaseGate;
  /** Events from outside a tick (a stop that timed out), written with the service's next commit. */
  private pendingEvents = new Map<string, EventDraft[]>();
  /** The election, when several controllers share the store (`lease`). */
  readonly elector: Elector | null;
  /** `validated`'s results, by kind/name, for the stored version they were made from. */
  private validatedCache = new Map<string, { stamp: string; resource: Resource | null }>();

  constructor(opts: ControllerOptions) {
    this.store = opts.store;
    this.runtime = opts.runtime;
    this.clock = opts.clock;
    this.log = opts.logger ?? silent;
    this.resyncMs = opts.resyncMs ?? 1000;
    this.routerLiveMs = opts.routerLiveMs ?? ROUTER_LIVE_MS;
    const { experiments, shadowReports } = opts;
    this.ports = {
      observations: (service) => this.analysis.take(service),
      routeTable: (service) => this.store.getRouteTable(service),
      ...(experiments
        ? {
            experimentData: (e, now) => experiments.data(e, now),
            storedExperiment: (name) => experiments.getExperiment(name),
          }
        : {}),
      ...(shadowReports ? { shadowReport: shadowReports } : {}),
      commit: (c) => this.store.commit(c),
    };
    this.holder = opts.holder ?? controllerHolder();
    this.analysis = new AnalysisExecutor(
      opts.providers ?? {},
      () => {
        if (!this.stopped) this.schedule(0);
      },
      this.log,
    );
    this.release = new ReleaseGate({
      store: this.store,
      clock: this.clock,
      ...(opts.releaseTimeoutMs !== undefined ? { timeoutMs: opts.releaseTimeoutMs } : {}),
      ...(opts.routerLiveMs !== undefined ? { liveMs: opts.routerLiveMs } : {}),
      onTimeout: (event) => {
        const list = this.pendingEvents.get(event.service) ?? [];
        list.push(event);
        this.pendingEvents.set(event.service, list);
        this.schedule(0);
      },
      logger: this.log,
    });
    // Installed at once, not at start(): tests that tick by hand stop instances too.
    this.runtime.setStopGate?.(this.release.gate);
    const onLeadership = opts.onLeadership;
    this.elector = opts.lease
      ? new Elector({
          store: this.store,
          clock: this.clock,
          holder: this.holder,
          leaseMs: opts.lease.leaseMs ?? DEFAULT_LEASE_MS,
          ...(opts.lease.intervalMs !== undefined ? { intervalMs: opts.lease.intervalMs } : {}),
          logger: this.log,
          onChange: (epoch) => {
            this.leadershipChanged(epoch);
            onLeadership?.(epoch !== null);
          },
        })
      : null;
  }

  /**
   * The lease was won or lost. A new lead starts from the store alone: services are seen
   * afresh (each gets a ControllerStarted event saying where its rollout resumes) and the
   * analysis measurements of the previous lead are dropped (the runs' state in the store says
   * which are due). Losing it aborts the measurements in flight: a standby queries nothing.
   */
  private leadershipChanged(epoch: number | null): void {
    this.epoch = epoch;
    this.seen.clear();
    this.known = new Set();
    if (epoch === null) {
      this.analysis.stop();
      return;
    }
    this.analysis.resume();
    this.schedule(0);
  }

  /** Who leads, with a lease: this controller's epoch (null: standing by) and the lease read. */
  get leadership(): { holder: string; epoch: number | null; lease: Elector["lease"] } | null {
    if (this.elector === null) return null;
    return { holder: this.holder, epoch: this.epoch, lease: this.elector.lease };
  }

  /**
   * Waits until the analysis measurements in flight have been taken and recorded; for tests
   * that drive ticks by hand with a fake clock.
   */
  async settleAnalysis(): Promise<void> {
    await this.analysis.idle();
  }

  /**
   * One pass over every service. Ticks never overlap: a tick requested while one runs is
   * folded into one more pass right after it.
   */
  async tick(): Promise<TickReport> {
    if (this.fenced) throw this.fenced;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.tickOnce();
    try {
      let report = await this.running;
      while (this.again) {
        this.again = false;
        this.running = this.tickOnce();
        report = await this.running;
      }
      return report;
    } finally {
      this.running = null;
    }
  }

  /** The writer epoch this controller holds; null before its first tick. */
  get writerEpoch(): number | null {
    return this.epoch;
  }

  /** True once another controller took over; this one then does nothing more. */
  get isFenced(): boolean {
    return this.fenced !== null;
  }

  private async tickOnce(): Promise<TickReport> {
    try {
      return await this.tickFenced();
    } catch (err) {
      if (err instanceof TurnoutError && err.code === "TURNOUT_ERR_STORE_FENCED") {
        // With a lease another controller took over: stand by (the election learns who leads).
        if (this.elector !== null) {
          this.log.warn({ err: { code: err.code, message: err.message } }, "controller deposed");
          void this.elector.step();
          return { services: 0, written: [], wakeAt: null, standby: true };
        }
        this.fence(err);
      }
      throw err;
    }
  }

  /**
   * Claims the epoch on the first tick; later ticks check it is still ours before touching
   * the runtime, so a superseded controller neither commits nor starts or stops instances
   * (a claim made during a tick is caught by that tick's commit, in its transaction).
   */
  private async tickFenced(): Promise<TickReport> {
    if (this.elector !== null) {
      // With a lease the election claims the epoch; a tick only checks it may still act.
      if (this.elector.acting() === null || this.epoch === null)
        return { services: 0, written: [], wakeAt: null, standby: true };
    } else if (this.epoch === null) {
      this.epoch = await this.store.acquireWriterEpoch(this.holder, this.clock.now());
      this.log.info({ epoch: this.epoch, holder: this.holder }, "controller claimed writer epoch");
    } else {
      const current = await this.store.currentWriterEpoch();
      if (current?.epoch !== this.epoch) {
        throw new TurnoutError(
          "TURNOUT_ERR_STORE_FENCED",
          `writer epoch ${this.epoch} is no longer current (${current ? `epoch ${current.epoch} is held by ${current.holder}` : "no writer holds one"}); this controller stops acting`,
          { epoch: this.epoch, currentEpoch: current?.epoch ?? null },
        );
      }
    }
    const services = await this.store.listResources("Service");
    const commands = await this.store.pendingCommands();
    const storedTemplates = await this.store.listResources("AnalysisTemplate");
    this.forgetValidated([...services, ...storedTemplates]);
    const templates: Record<string, AnalysisTemplateSpec> = {};
    for (const t of storedTemplates) {
      const valid = this.validated(t);
      if (valid !== null) templates[t.name] = valid.spec;
    }
    // The services a live router cannot serve: their status says so and their rollouts hold.
    const dataPlanes = dataPlanesOf(
      await this.store.listRouters(),
      this.clock.now(),
      this.routerLiveMs,
    );
    const report: TickReport = { services: services.length, written: [], wakeAt: null };
    const names = new Set(services.map((s) => s.name));

    // Services deleted since the last tick: stop their instances. The runtime's own list adds
    // services deleted while Turnout was down, whose instances it adopted on start.
    for (const name of new Set([...this.known, ...(this.runtime.serviceNames?.() ?? [])])) {
      if (!names.has(name)) {
        await this.runtime
          .remove(name)
          .catch((err: unknown) => this.log.error({ err, service: name }, "remove failed"));
      }
    }
    this.known = names;
    // Events of services deleted meanwhile have no commit to ride with.
    for (const [service, events] of this.pendingEvents) {
      if (names.has(service)) continue;
      this.pendingEvents.delete(service);
      await this.store.appendEvents(events);
    }

    for (const stored of services) {
      // Not acted on (its instances left running, its route table in force) until it is valid.
      const valid = this.validated(stored);
      if (valid === null) continue;
      const svc = { ...stored, resource: valid };
      try {
        const wrote = await this.reconcileService(
          svc,
          commands.filter((c) => c.service === svc.name),
          templates,
          report,
          dataPlanes.get(svc.name),
        );
        if (wrote) report.written.push(svc.name);
      } catch (err) {
        // Fenced: no other service may be acted on either.
        if (err instanceof TurnoutError && err.code === "TURNOUT_ERR_STORE_FENCED") throw err;
        // Its status changed under the tick (a Flag deleted meanwhile): nothing is wrong, and
        // the change woke the controller, whose next tick decides from the stored status.
        if (err instanceof TurnoutError && err.code === "TURNOUT_ERR_STORE_CONFLICT") {
          this.log.info({ service: svc.name }, err.message);
          continue;
        }
        // One broken service must not stop the others from progressing.
        this.log.error({ err, service: svc.name }, "reconcile failed");
      }
    }
    return report;
  }

  /**
   * The resource as validation leaves it, defaults filled in (`listen.host`, the probes'
   * timings, judges' alpha...), from what the store holds; null when it does not validate. The
   * API stores only validated resources, but one written by an older Turnout (before a field
   * and its default existed) or straight into the store lacks them, and acting on it raw goes
   * wrong quietly: a route table without a listen host (a router listening on every interface,
   * HAProxy's configuration failing), rebuilt differently from its stored copy. Validated once
   * per stored version; an invalid one is logged once, with every problem and its path.
   */
  private validated<R extends Resource>(r: StoredResource<R>): R | null {
    const key = `${r.kind}/${r.name}`;
    const stamp = `${r.generation}:${r.createdAt}:${r.updatedAt}`;
    const cached = this.validatedCache.get(key);
    if (cached?.stamp === stamp) return cached.resource as R | null;
    const result = validateDocument(r.resource);
    const resource = result.resource?.kind === r.kind ? (result.resource as R) : null;
    this.validatedCache.set(key, { stamp, resource });
    if (resource === null) {
      this.log.error(
        {
          resource: key,
          issues: result.issues.map((i) => `${formatPath(i.path)}: ${i.message}`),
        },
        `${key} as stored does not validate; the controller leaves it alone until it is applied again`,
      );
    }
    return resource;
  }

  /** Drops `validated`'s results for resources no longer stored. */
  private forgetValidated(stored: readonly StoredResource[]): void {
    const keys = new Set(stored.map((r) => `${r.kind}/${r.name}`));
    for (const key of this.validatedCache.keys())
      if (!keys.has(key)) this.validatedCache.delete(key);
  }

  private async reconcileService(
    svc: StoredResource<ServiceResource>,
    commands: Awaited<ReturnType<Store["pendingCommands"]>>,
    templates: Record<string, AnalysisTemplateSpec>,
    report: TickReport,
    dataPlane: DataPlaneReport | undefined,
  ): Promise<boolean> {
    const name = svc.name;
    const spec = svc.resource.spec;
    const now = this.clock.now();
    const status = await this.store.getStatus(name);
    const instances = this.runtime.instances(name);
    const readiness: Record<string, VersionReadiness> = {};
    for (const inst of instances) {
      const r = readiness[inst.version] ?? { ready: 0, failed: 0 };
      if (inst.state === "ready") r.ready += 1;
      if (inst.state === "failed") {
        r.failed += 1;
        if (inst.message) r.message = inst.message;
      }
      readiness[inst.version] = r;
    }

    // A controller (re)started over a stored status says so in the history, with what it found
    // running: after a crash this is where the resumed rollout and adopted instances show.
    const leadingEvents: EventDraft[] = [];
    const firstSight = !this.seen.has(name);
    if (firstSight) {
      this.seen.add(name);
      if (status)
        leadingEvents.push(
          startedEvent(
            name,
            status,
            instances,
            now,
            this.elector !== null && this.epoch !== null
              ? { holder: this.holder, epoch: this.epoch }
              : undefined,
          ),
        );
    }
    const pending = this.pendingEvents.get(name);
    if (pending) {
      this.pendingEvents.delete(name);
      leadingEvents.push(...pending);
    }

    // Steps 1 to 5 of the tick (tick.ts): due -> measure -> reconcile -> one commit. A tick
    // that fails has written nothing: the events it was to carry wait for the next one.
    const { out, commit } = await tickService(
      {
        now,
        service: { name, generation: svc.generation, spec },
        status,
        commands: commands.map(({ result: _r, handledAt: _h, ...c }) => c),
        readiness,
        templates,
        endpoints: (version) =>
          instances.filter((i) => i.version === version && i.state === "ready").map((i) => i.url),
        leadingEvents,
        ...(this.epoch !== null ? { epoch: this.epoch } : {}),
        ...(dataPlane !== undefined ? { dataPlane } : {}),
      },
      this.ports,
    ).catch((err: unknown) => {
      if (pending)
        this.pendingEvents.set(name, [...pending, ...(this.pendingEvents.get(name) ?? [])]);
      if (firstSight) this.seen.delete(name);
      throw err;
    });
    if (out.wakeAt !== null)
      report.wakeAt = report.wakeAt === null ? out.wakeAt : Math.min(report.wakeAt, out.wakeAt);
    if (commit)
      for (const e of out.events)
        this.log.info({ service: name, event: e.type, data: e.data }, e.message);

    // A lease that ran short during the tick: its commit went through (the store checked the
    // epoch), but side effects outside the store are the next leader's.
    if (this.elector !== null && this.elector.acting() === null) return commit !== null;
    // Measurements due now start after the commit, so a crash never records one twice.
    this.analysis.schedule(name, out.status, now);
    // Stops begin here, but an instance is signalled only once every live router serves a table
    // without it (the runtime waits on `this.release`; the next tick writes that table).
    await this.runtime.ensure(name, spec.runtime, out.targets);
    return commit !== null;
  }

  /** Runs ticks until `stop()`: on changes, at wake-ups, and every `resyncMs` at the least. */
  start(): void {
    if (!this.stopped || this.fenced) return;
    this.stopped = false;
    const poke = () => this.schedule(0);
    this.unsubscribe.push(
      // Its own writes and routers' reports (the stop gate watches those) need no tick.
      this.store.onChange(
        (what) => what !== "status" && what !== "routeTables" && what !== "routers" && poke(),
      ),
    );
    this.unsubscribe.push(this.runtime.onChange(poke));
    this.elector?.start();
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.loop(), Math.max(0, delayMs));
  }

  private async loop(): Promise<void> {
    this.timer = null;
    let next = this.resyncMs;
    try {
      const report = await this.tick();
      if (report.wakeAt !== null)
        next = Math.min(next, Math.max(0, report.wakeAt - this.clock.now()));
    } catch (err) {
      if (this.fenced) return;
      this.log.error({ err }, "controller tick failed; retrying");
    }
    if (!this.timer) this.schedule(next);
  }

  /** Stops the loop for good, from inside a tick (so without waiting for that tick). */
  private fence(err: TurnoutError): void {
    if (this.fenced) return;
    this.fenced = err;
    this.log.error(
      { err: { code: err.code, message: err.message }, epoch: this.epoch },
      "another controller took over the store; this controller stops acting",
    );
    this.stopped = true;
    this.analysis.stop();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.analysis.stop();
    // Its routers stop with it (one process) or carry on with the last tables; either way no
    // stop may hang on a controller that is gone.
    this.runtime.setStopGate?.(null);
    this.release.close();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    if (this.running) await this.running.catch(() => undefined);
    // Released last, once no tick of ours can commit: a standby leads at once.
    await this.elector?.stop();
  }
}

/** "controller started: resuming rollout 2 at step 2 (Paused); found running: v1 2, v2 2". */
function startedEvent(
  service: string,
  status: ServiceStatus,
  instances: Instance[],
  now: number,
  leader?: { holder: string; epoch: number },
): EventDraft {
  const byVersion: Record<string, number> = {};
  for (const i of instances) byVersion[i.version] = (byVersion[i.version] ?? 0) + 1;
  const found = Object.entries(byVersion)
    .map(([v, n]) => `${v} ${n}`)
    .join(", ");
  const where =
    status.canaryVersion !== null
      ? `resuming rollout ${status.rolloutNumber} (${status.stableVersion} -> ${status.canaryVersion}) at step ${(status.stepIndex ?? 0) + 1} (${status.phase})`
      : `${status.stableVersion} stable (${status.phase})`;
  return {
    service,
    type: "ControllerStarted",
    actor: "controller",
    message: `${leader ? `${leader.holder} leads (epoch ${leader.epoch})` : "controller started"}: ${where}; instances found running: ${found || "none"}`,
    data: {
      ...(leader ? { holder: leader.holder, epoch: leader.epoch } : {}),
      phase: status.phase,
      stepIndex: status.stepIndex,
      rollout: status.rolloutNumber,
      instances: instances.map((i) => ({
        id: i.id,
        version: i.version,
        url: i.url,
        state: i.state,
      })),
    },
    time: now,
  };
}
