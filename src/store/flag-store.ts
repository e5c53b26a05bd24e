/**
 * The feature flags' store: what people change on top of Flag resources (the kill switch,
 * `turnout flags set`), its history, and the snapshot every evaluator works from.
 *
 * Where each part of a flag lives (the store stays the one source of truth):
 * - the definition: the `Flag` resource (and `Segment`s), applied like any resource, versioned
 *   in `resource_revisions`;
 * - a person's override (`flags enable|disable|set`): `flag_overrides`, one row per flag, and
 *   one `flag_history` row per change, with who and why;
 * - a rollout's override (setFlag steps, and the kill after a rollback): the service's status
 *   (`status.flags`), written by the controller only.
 *
 * The effective flag is the resource with the overrides laid over it, oldest first (so the
 * latest change of a field wins), except that a person's DISABLED always wins: a rollout never
 * turns back on a flag a person killed. `FlagSnapshotCache` keeps the compiled result for the
 * OFREP server and the router, reloading on every write in this process (at once) and by
 * polling (other processes).
 */
import { createHash } from "node:crypto";
import type { Kysely } from "kysely";
import {
  compileFlags,
  effectiveSpec,
  type FlagDefinition,
  type FlagSet,
} from "../core/flags/evaluate.js";
import type { FlagOverride, FlagSpec, FlagStepOverride, SegmentSpec } from "../core/flags/types.js";
import { canonicalJson } from "./json.js";
import { enqueueNotifications, flagKillEvent } from "./outbox-store.js";
import type { SqlStore } from "./sql-store.js";
import type { Store } from "./store.js";

interface FlagOverridesTable {
  flag: string;
  body: string;
  actor: string;
  reason: string | null;
  updated_at: number;
}

interface FlagHistoryTable {
  id: number;
  flag: string;
  time: number;
  actor: string;
  action: string;
  message: string;
  data: string;
}

interface FlagTables {
  flag_overrides: FlagOverridesTable;
  flag_history: Omit<FlagHistoryTable, "id"> & { id?: number };
}

/** A person's override of one flag. */
export interface StoredFlagOverride {
  flag: string;
  override: FlagOverride;
  actor: string;
  reason: string | null;
  updatedAt: number;
}

/** One entry of a flag's history, oldest first. */
export interface FlagHistoryEntry {
  time: number;
  actor: string;
  /** "applied" (a new generation of the resource), "enable", "disable", "set", "reset", "rollout". */
  action: string;
  message: string;
  data: Record<string, unknown>;
}

/** What every evaluator works from: the effective flags, compiled, and their ETag. */
export interface FlagSnapshot {
  /** Strong validator of the effective definitions: changes whenever any evaluation could. */
  etag: string;
  flags: FlagSet;
  /** The effective definitions (resource + overrides), by key order: for sync and listing. */
  definitions: FlagDefinition[];
  segments: Record<string, SegmentSpec>;
}

export const EMPTY_FLAG_SNAPSHOT: FlagSnapshot = {
  etag: '"empty"',
  flags: new Map(),
  definitions: [],
  segments: {},
};

function tables(db: Kysely<unknown>): Kysely<FlagTables> {
  return db as unknown as Kysely<FlagTables>;
}

export class FlagStore {
  readonly #sql: SqlStore;

  constructor(store: SqlStore) {
    this.#sql = store;
  }

  /** The store the flags are in (resources, statuses). */
  get store(): Store {
    return this.#sql;
  }

  async listOverrides(): Promise<StoredFlagOverride[]> {
    return this.#sql.query(async (db) => {
      const rows = await tables(db as Kysely<unknown>)
        .selectFrom("flag_overrides")
        .selectAll()
        .orderBy("flag")
        .execute();
      return rows.map(mapOverride);
    });
  }

  async getOverride(flag: string): Promise<StoredFlagOverride | null> {
    return this.#sql.query(async (db) => {
      const row = await tables(db as Kysely<unknown>)
        .selectFrom("flag_overrides")
        .selectAll()
        .where("flag", "=", flag)
        .executeTakeFirst();
      return row === undefined ? null : mapOverride(row);
    });
  }

  /**
   * Merges `patch` into the flag's override (`null` removes it: the resource and rollouts
   * decide again) and appends a history entry, in one transaction. Tells this process's
   * listeners that resources changed, so that snapshots reload at once.
   */
  async changeOverride(
    flag: string,
    patch: FlagOverride | null,
    opts: { actor: string; reason?: string; now: number; action: string; message: string },
  ): Promise<StoredFlagOverride | null> {
    return this.#sql.transact(async (trx, changed) => {
      const t = tables(trx as unknown as Kysely<unknown>);
      const row = await t
        .selectFrom("flag_overrides")
        .selectAll()
        .where("flag", "=", flag)
        .executeTakeFirst();
      const before = row === undefined ? {} : (JSON.parse(row.body) as FlagOverride);
      let after: FlagOverride | null = null;
      if (patch !== null) {
        after = { ...before, ...patch };
        // A variant alone and a percentage are two different things: the newer wins.
        if (patch.variant !== undefined && patch.percentage === undefined) delete after.percentage;
        for (const k of Object.keys(after) as (keyof FlagOverride)[])
          if (after[k] === undefined) delete after[k];
      }
      if (after === null) {
        await t.deleteFrom("flag_overrides").where("flag", "=", flag).execute();
      } else {
        const values = {
          flag,
          body: canonicalJson(after),
          actor: opts.actor,
          reason: opts.reason ?? null,
          updated_at: opts.now,
        };
        await t
          .insertInto("flag_overrides")
          .values(values)
          .onConflict((oc) =>
            oc.column("flag").doUpdateSet({
              body: values.body,
              actor: values.actor,
              reason: values.reason,
              updated_at: values.updated_at,
            }),
          )
          .execute();
      }
      await t
        .insertInto("flag_history")
        .values({
          flag,
          time: opts.now,
          actor: opts.actor,
          action: opts.action,
          message: opts.message,
          data: canonicalJson({ before, after, reason: opts.reason ?? null }),
        })
        .execute();
      // The kill switch: notifiers hear of it as of a rollout's FlagKilled (no event row).
      if (after?.state === "DISABLED" && before.state !== "DISABLED")
        await enqueueNotifications(trx, [flagKillEvent(flag, opts)]);
      changed.add("resources");
      return after === null
        ? null
        : {
            flag,
            override: after,
            actor: opts.actor,
            reason: opts.reason ?? null,
            updatedAt: opts.now,
          };
    });
  }

  /**
   * The flag's history, oldest first: every generation of its resource, every change a person
   * made, and what rollouts did to it (from the services' histories: setFlag steps and the
   * kills after a rollback).
   */
  async history(flag: string, limit = 200): Promise<FlagHistoryEntry[]> {
    const out: FlagHistoryEntry[] = [];
    await this.#sql.query(async (db) => {
      const revisions = await db
        .selectFrom("resource_revisions")
        .selectAll()
        .where("kind", "=", "Flag")
        .where("name", "=", flag)
        .orderBy("id")
        .execute();
      for (const r of revisions) {
        out.push({
          time: Number(r.applied_at),
          actor: r.actor,
          action: "applied",
          message: `Flag/${flag} generation ${Number(r.generation)} applied`,
          data: { generation: Number(r.generation), resource: JSON.parse(r.body) },
        });
      }
      const rows = await tables(db as Kysely<unknown>)
        .selectFrom("flag_history")
        .selectAll()
        .where("flag", "=", flag)
        .orderBy("id")
        .execute();
      for (const r of rows) {
        out.push({
          time: Number(r.time),
          actor: r.actor,
          action: r.action,
          message: r.message,
          data: JSON.parse(r.data) as Record<string, unknown>,
        });
      }
      // What rollouts did: the services' FlagChanged events, and the kills recorded in their
      // statuses (a rollback turns flags off in the same write as the RolloutAborted event).
      const events = await db
        .selectFrom("events")
        .selectAll()
        .where("type", "=", "FlagChanged")
        .orderBy("id")
        .execute();
      for (const e of events) {
        const data = JSON.parse(e.data) as Record<string, unknown>;
        if (data.flag !== flag) continue;
        out.push({
          time: Number(e.time),
          actor: `${e.actor} (service ${e.service})`,
          action: "rollout",
          message: e.message,
          data,
        });
      }
    });
    for (const s of await this.#sql.listResources("Service")) {
      const st = await this.#sql.getStatus(s.name);
      const e = st?.flags?.[flag];
      if (e?.state === "DISABLED" && e.reason.startsWith("turned off:")) {
        out.push({
          time: e.at,
          actor: `controller (service ${s.name})`,
          action: "rollout-kill",
          message: `flag ${flag} ${e.reason}`,
          data: { ...e, service: s.name },
        });
      }
    }
    out.sort((a, b) => a.time - b.time);
    return out.slice(-limit);
  }

  /** Loads and compiles the effective flags (see the module comment for the layering). */
  async loadSnapshot(): Promise<FlagSnapshot> {
    const [flagResources, segmentResources, services, overrides] = await Promise.all([
      this.#sql.listResources("Flag"),
      this.#sql.listResources("Segment"),
      this.#sql.listResources("Service"),
      this.listOverrides(),
    ]);
    const stepOverrides = new Map<string, FlagStepOverride[]>();
    for (const s of services) {
      const st = await this.#sql.getStatus(s.name);
      for (const [key, e] of Object.entries(st?.flags ?? {})) {
        const list = stepOverrides.get(key) ?? [];
        list.push(e);
        stepOverrides.set(key, list);
      }
    }
    const manual = new Map(overrides.map((o) => [o.flag, o]));
    const definitions: FlagDefinition[] = flagResources.map((r) => ({
      key: r.name,
      spec: layer(r.resource.spec, manual.get(r.name), stepOverrides.get(r.name) ?? []),
      generation: r.generation,
    }));
    const segments: Record<string, SegmentSpec> = {};
    for (const s of segmentResources) segments[s.name] = s.resource.spec;
    const etag = `"${createHash("sha256")
      .update(canonicalJson({ definitions, segments }))
      .digest("base64url")
      .slice(0, 27)}"`;
    return { etag, flags: compileFlags(definitions, segments), definitions, segments };
  }
}

/** The resource with rollout and manual overrides applied, oldest first; a person's DISABLED wins. */
export function layer(
  spec: FlagSpec,
  manual: StoredFlagOverride | undefined,
  steps: readonly FlagStepOverride[],
): FlagSpec {
  const layers: { at: number; o: FlagOverride }[] = steps.map((s) => ({ at: s.at, o: s }));
  if (manual !== undefined) layers.push({ at: manual.updatedAt, o: manual.override });
  layers.sort((a, b) => a.at - b.at);
  let out = spec;
  for (const l of layers) {
    const o: FlagOverride = {};
    if (l.o.state !== undefined) o.state = l.o.state;
    if (l.o.percentage !== undefined) o.percentage = l.o.percentage;
    if (l.o.variant !== undefined) o.variant = l.o.variant;
    out = effectiveSpec(out, o);
  }
  if (manual?.override.state === "DISABLED" && out.state !== "DISABLED")
    out = { ...out, state: "DISABLED" };
  return out;
}

function mapOverride(row: FlagOverridesTable): StoredFlagOverride {
  return {
    flag: row.flag,
    override: JSON.parse(row.body) as FlagOverride,
    actor: row.actor,
    reason: row.reason,
    updatedAt: Number(row.updated_at),
  };
}

/**
 * The current snapshot, kept fresh: reloaded at once after any write through the same store
 * instance, and every `pollMs` (writes by other processes). A failed reload keeps the last
 * snapshot (as routers keep their last route table).
 */
export class FlagSnapshotCache {
  readonly #flags: FlagStore;
  readonly #pollMs: number;
  #current: FlagSnapshot = EMPTY_FLAG_SNAPSHOT;
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;
  #loading: Promise<FlagSnapshot> | null = null;
  readonly #listeners = new Set<(s: FlagSnapshot) => void>();
  /** Last reload error, for diagnostics. */
  lastError: unknown = null;

  constructor(flags: FlagStore, opts: { pollMs?: number } = {}) {
    this.#flags = flags;
    this.#pollMs = opts.pollMs ?? 1000;
  }

  /** The snapshot in force; read it once per request and use it to the end. */
  get current(): FlagSnapshot {
    return this.#current;
  }

  /** Calls `fn` whenever the ETag changes. */
  onUpdate(fn: (s: FlagSnapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#flags.store.onChange((what) => {
      if (what === "resources" || what === "status") void this.refresh().catch(() => undefined);
    });
    await this.refresh().catch(() => undefined);
    const tick = () => {
      this.#timer = setTimeout(() => {
        void this.refresh()
          .catch(() => undefined)
          .finally(() => {
            if (this.#timer !== null) tick();
          });
      }, this.#pollMs);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /**
   * Reloads now; resolves once a load that started after this call has finished, so a caller
   * that just wrote sees its write (the kill switch answers only when it is in force).
   */
  refresh(): Promise<FlagSnapshot> {
    // A load in flight may have read before the caller's write: wait for it, then load again.
    if (this.#loading !== null) return this.#loading.then(() => this.refresh());
    this.#loading = this.#flags
      .loadSnapshot()
      .then((s) => {
        this.lastError = null;
        if (s.etag !== this.#current.etag) {
          this.#current = s;
          for (const fn of this.#listeners) fn(s);
        }
        return this.#current;
      })
      .catch((err: unknown) => {
        this.lastError = err;
        throw err;
      })
      .finally(() => {
        this.#loading = null;
      });
    return this.#loading;
  }
}
