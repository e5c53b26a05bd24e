/**
 * Managed mode (`{haproxy: {}}`, optionally `binary`, `protocol`): Turnout runs **one HAProxy
 * per service**, with its config, maps and Lua in `<dataDir>/haproxy/<service>/` and its runtime
 * API socket in a short temp dir (unix socket paths are limited to 107 bytes). One per service
 * rather than one for all: a config HAProxy refuses, a reload or a crash touches one service
 * only; a service's structural change (a new preview port) reloads only its own process; and
 * each process's maps, slots and counters belong to one table, which keeps config.ts simple.
 * The price is one master and one worker per service (a few MB each).
 *
 * - The first table starts HAProxy (supervisor.ts). Later tables change it **live** over the
 *   runtime API whenever `structuralConfig` is unchanged (live.ts): servers are added first
 *   (`add server`), then each changed map is replaced atomically (`backends`, `override`,
 *   `rules`, `sticky`, `split`, `preview`, and `meta` with the revision last), then servers that
 *   left the table are drained (`set server ... state drain`: no new request, the ones in flight
 *   finish); a reaper deletes a drained server once it has no connection left. A version that
 *   leaves the table keeps its slot until its servers are gone.
 * - A structural change (listener, preview port, stickiness source, policy, more slots) is a
 *   hitless reload (`HaproxySupervisor.reload`). A config HAProxy refuses leaves the old
 *   worker, its maps and its files in force, and the table's outcome is `ok: false` with the
 *   TURNOUT_ERR_HAPROXY_* error.
 * - In force only once HAProxy reads back what was asked: every changed map (`show map`) and
 *   every server's admin state (`show servers state`).
 * - The files on disk always hold the state in force (maps and servers), so a restart after a
 *   crash comes back with it without Turnout's help.
 */
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { HaproxyTrafficSpec, RouteTable } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import { isRunning } from "../../runtime/process/proc.js";
import { type Carrier, type HaproxyServiceStatus, resolver } from "./carrier.js";
import {
  assignSlots,
  frontendName,
  type HaproxyProtocol,
  MAP_NAMES,
  type MapFiles,
  type MapName,
  mapText,
  planService,
  type RenderOptions,
  renderConfig,
  renderMaps,
  type ServicePlan,
  slotName,
  structuralConfig,
} from "./config.js";
import { replaceChangedMaps, SlotServers, verifyMaps } from "./live.js";
import { OldWorkerLines } from "./old-worker.js";
import type { RuntimeApi } from "./runtime-api.js";
import { checkHaproxy, HaproxySupervisor, type SupervisorLogger } from "./supervisor.js";

export interface ManagedOptions {
  dataDir: string;
  intake: { host: string; port: number };
  logger: SupervisorLogger;
  threads: number;
  /** Lines of a reload's old worker read over its runtime API (old-worker.ts). */
  onOldWorkerLines?: (batch: string) => void;
  restartInitialMs?: number;
  restartMaxMs?: number;
  service: string;
}

const LUA_SOURCE = fileURLToPath(new URL("./turnout.lua", import.meta.url));

/** A service name as a directory name (service names are DNS labels; this keeps any safe). */
function dirName(service: string): string {
  return service.replace(/[^A-Za-z0-9._-]/g, "_");
}

/** One service's own HAProxy process. See the module comment. */
export class ManagedService implements Carrier {
  readonly mode = "managed" as const;
  readonly #dir: string;
  readonly #socketDir: string;
  readonly #sup: HaproxySupervisor;
  readonly #protocol: HaproxyProtocol;
  readonly #o: ManagedOptions;
  #plan: ServicePlan | null = null;
  #slots: (string | null)[] = [];
  #structural: string | null = null;
  /** Sessions reading reloads' old workers (closed on stop). */
  readonly #drains = new Set<OldWorkerLines>();
  #maps: MapFiles | null = null;
  /** Servers in HAProxy per slot. */
  readonly #servers = new SlotServers();

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
      onStart: () => this.#servers.forgetDraining(),
      ...(opts.restartInitialMs !== undefined ? { restartInitialMs: opts.restartInitialMs } : {}),
      ...(opts.restartMaxMs !== undefined ? { restartMaxMs: opts.restartMaxMs } : {}),
    });
  }

  slotVersion(slot: string): string | null {
    const i = this.#slots.findIndex((_, j) => slotName(j) === slot);
    return i < 0 ? null : (this.#slots[i] ?? null);
  }

  /** The runtime API of this service's HAProxy (tests read it back). */
  get api(): RuntimeApi {
    return this.#sup.api;
  }

  status(): Omit<HaproxyServiceStatus, "service" | "revision"> {
    return { mode: this.mode, process: this.#sup.status(), draining: this.#servers.draining() };
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
    const draining = this.#servers
      .occupied()
      .map((i) => this.#slots[i])
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
      else await this.#reload(cfg, plan);
    } catch (err) {
      // The old worker (if any) keeps serving with the maps it has; the files go back to them.
      if (before !== null) this.#writeMaps(before);
      throw err;
    }
    this.#plan = plan;
    this.#slots = slots;
    this.#structural = structural;
    this.#maps = maps;
    this.#servers.reset(plan, slots);
    await this.#verify(this.#loadedMaps());
  }

  /**
   * A hitless reload whose old worker is read to its last log line (old-worker.ts). Without
   * the session (the socket does not answer) the reload goes on: the old worker's last lines
   * may then be lost, as with any HAProxy forwarding its ring.
   */
  async #reload(cfg: string, plan: ServicePlan): Promise<void> {
    const oldPid = this.#sup.status().workerPid;
    const witness = new OldWorkerLines(this.#sup.api.socketPath, (batch) =>
      this.#o.onOldWorkerLines?.(batch),
    );
    const open = await witness.opened().then(
      () => true,
      () => false,
    );
    try {
      await this.#sup.reload(cfg);
    } catch (err) {
      witness.close();
      throw err;
    }
    if (!open || oldPid === null) {
      witness.close();
      return;
    }
    const frontends = [frontendName(plan.service, "main"), frontendName(plan.service, "preview")];
    this.#drains.add(witness);
    void witness
      .drain(this.#sup.master, oldPid, frontends)
      .finally(() => this.#drains.delete(witness));
  }

  /** The maps the config in force refers to (HAProxy loads only those). */
  #loadedMaps(): MapName[] {
    const text = this.#structural ?? "";
    return MAP_NAMES.filter((n) => text.includes(`${join(this.#dir, n)})`));
  }

  /** A change that needs no reload: servers and maps over the runtime API. */
  async #live(plan: ServicePlan, slots: (string | null)[], maps: MapFiles): Promise<void> {
    const api = this.#sup.api;
    // 1. Servers that appear (or come back from draining).
    await this.#servers.add(api, plan, slots, this.#renderOptions());
    // 2. Maps, each replaced atomically; the revision last.
    const changed = await replaceChangedMaps(
      api,
      this.#dir,
      this.#loadedMaps().filter((name) => name !== "meta.map"),
      this.#maps,
      maps,
    );
    // 3. Servers that left: drained, deleted by the reaper once idle.
    await this.#servers.drainLeft(api, plan, slots);
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
    const cfg = renderConfig(
      { plan: this.#plan, slots: this.#slots, servers: this.#servers.inConfig() },
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
    await verifyMaps(this.#sup.api, this.#dir, maps, this.#maps!, this.service);
    await this.#servers.verify(this.#sup.api, this.service);
  }

  /** Deletes drained servers that have no connection left. */
  async reap(): Promise<void> {
    if (!this.#sup.status().running) return;
    await this.#servers.reap(this.#sup.api);
  }

  async stop(): Promise<void> {
    for (const d of this.#drains) d.close();
    const { masterPid, workerPid } = this.#sup.status();
    await this.#sup.stop();
    // The master can exit a moment before its worker has closed the listeners: stopped means
    // the port is free, so wait for every process of it to be gone.
    await waitGone([masterPid, workerPid].filter((p): p is number => p !== null));
    rmSync(this.#socketDir, { recursive: true, force: true });
  }
}

/** Waits until the processes are gone; SIGKILL after `graceMs`. */
async function waitGone(pids: readonly number[], graceMs = 5000): Promise<void> {
  const deadline = Date.now() + graceMs;
  // A zombie (exited, not reaped yet) holds no port: it counts as gone.
  while (pids.some(isRunning)) {
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
