/**
 * Changes to a running HAProxy over its runtime API, and reading them back: the servers Turnout
 * placed (added, made ready, drained, deleted once idle) and the maps it replaced. Used by both
 * modes: managed.ts for its slots and maps, attach.ts for the one backend it may touch.
 *
 * Nothing here counts as done until HAProxy says so: a managed table is in force only once
 * every changed map reads back as written (`show map`) and every server's admin state is what
 * was asked (`show servers state`); a mismatch is TURNOUT_ERR_HAPROXY_RUNTIME_API.
 */
import { join } from "node:path";
import { TurnoutError } from "../../errors.js";
import {
  type MapFiles,
  type MapName,
  type RenderOptions,
  type ServerPlan,
  type ServicePlan,
  serverArgs,
  slotName,
} from "./config.js";
import type { RuntimeApi, ServerStateRow, StatRow } from "./runtime-api.js";

/** Admin-state bits of `show servers state` (HAProxy's SRV_ADMF_*): maintenance and drain. */
export const ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
export const ADMIN_DRAIN = 0x08 | 0x10;

/** A `show servers state` row's admin state, -1 when the server is missing. */
export function adminState(row: ServerStateRow | undefined): number {
  return row === undefined ? -1 : Number(row.srv_admin_state);
}

/**
 * Deletes the drained servers `names` of `backend` that have no connection left (`stat`: the
 * `show stat` rows read just before). Returns the names that are gone: deleted now, or missing
 * already (HAProxy restarted from files that hold no draining server). One that will not go
 * (idle connections still attached) is put back to drain, so it is not left in maintenance with
 * requests in flight, and tried again next time.
 */
export async function reapDrained(
  api: RuntimeApi,
  stat: readonly StatRow[],
  backend: string,
  names: Iterable<string>,
): Promise<string[]> {
  const gone: string[] = [];
  for (const name of names) {
    const row = stat.find((r) => r.pxname === backend && r.svname === name);
    if (row === undefined) {
      gone.push(name);
      continue;
    }
    if (Number(row.scur) > 0) continue;
    try {
      await api.delServer(backend, name);
      gone.push(name);
    } catch {
      await api.setServerState(backend, name, "drain").catch(() => {});
    }
  }
  return gone;
}

/** A server Turnout put in a slot, and whether it is draining. */
interface PlacedServer {
  server: ServerPlan;
  draining: boolean;
}

/** The servers a version wants in a slot's backend (none for an empty slot). */
function wanted(plan: ServicePlan, version: string | null | undefined): ServerPlan[] {
  return plan.versions.find((v) => v.version === version)?.servers ?? [];
}

/**
 * The servers Turnout placed in a managed HAProxy's slots (one backend per slot, `slotName`),
 * by slot and name, and whether each is draining. A version that leaves the table keeps its slot
 * until its servers are gone.
 */
export class SlotServers {
  readonly #placed = new Map<number, Map<string, PlacedServer>>();

  /** After any (re)start or reload the process holds what the files say: no draining server. */
  forgetDraining(): void {
    for (const placed of this.#placed.values())
      for (const [name, p] of placed) if (p.draining) placed.delete(name);
  }

  /** Servers drained and waiting for their connections to end. */
  draining(): number {
    let n = 0;
    for (const m of this.#placed.values()) for (const p of m.values()) if (p.draining) n++;
    return n;
  }

  /** The slots that still hold a server. */
  occupied(): number[] {
    return [...this.#placed.entries()].filter(([, m]) => m.size > 0).map(([i]) => i);
  }

  /** Exactly the plan's servers, as a start or reload from the rendered config has them. */
  reset(plan: ServicePlan, slots: readonly (string | null)[]): void {
    this.#placed.clear();
    slots.forEach((v, i) => {
      this.#placed.set(
        i,
        new Map(wanted(plan, v).map((s) => [s.name, { server: s, draining: false }])),
      );
    });
  }

  /** The servers per slot a restart should come back with (draining ones are left out). */
  inConfig(): Map<number, ServerPlan[]> {
    const servers = new Map<number, ServerPlan[]>();
    for (const [i, placed] of this.#placed) {
      servers.set(
        i,
        [...placed.values()].filter((p) => !p.draining).map((p) => p.server),
      );
    }
    return servers;
  }

  /** Adds the servers that appear, and makes ready again those that come back from draining. */
  async add(
    api: RuntimeApi,
    plan: ServicePlan,
    slots: readonly (string | null)[],
    opts: RenderOptions,
  ): Promise<void> {
    for (const [i, version] of slots.entries()) {
      let placed = this.#placed.get(i);
      if (placed === undefined) {
        placed = new Map();
        this.#placed.set(i, placed);
      }
      // A slot given to another version: whatever drained there is gone by now (reaped).
      for (const s of wanted(plan, version)) {
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
  }

  /** Drains the servers that left the table; `reap` deletes them once idle. */
  async drainLeft(
    api: RuntimeApi,
    plan: ServicePlan,
    slots: readonly (string | null)[],
  ): Promise<void> {
    for (const [i, placed] of this.#placed) {
      const want = new Set(wanted(plan, slots[i] ?? null).map((s) => s.name));
      for (const [name, p] of placed) {
        if (want.has(name) || p.draining) continue;
        await api.setServerState(slotName(i), name, "drain");
        p.draining = true;
      }
    }
  }

  /** Reads back every slot's servers; throws when HAProxy disagrees. */
  async verify(api: RuntimeApi, service: string): Promise<void> {
    const rows = await api.serversState();
    for (const [i, placed] of this.#placed) {
      for (const [name, p] of placed) {
        const row = rows.find((r) => r.be_name === slotName(i) && r.srv_name === name);
        if (row === undefined && p.draining) {
          // Deleted already (a restart from the files): nothing left to drain.
          placed.delete(name);
          continue;
        }
        const admin = adminState(row);
        const ok =
          admin >= 0 &&
          (admin & ADMIN_MAINT) === 0 &&
          (p.draining ? (admin & ADMIN_DRAIN) !== 0 : (admin & ADMIN_DRAIN) === 0);
        if (!ok) {
          throw new TurnoutError(
            "TURNOUT_ERR_HAPROXY_RUNTIME_API",
            `HAProxy for ${service}: server ${slotName(i)}/${name} is ${row === undefined ? "missing" : `in admin state ${admin}`}, not ${p.draining ? "draining" : "ready"}`,
          );
        }
      }
    }
  }

  /** Deletes drained servers that have no connection left. */
  async reap(api: RuntimeApi): Promise<void> {
    if (this.draining() === 0) return;
    const stat = await api.stat();
    for (const [i, placed] of this.#placed) {
      const draining = [...placed].filter(([, p]) => p.draining).map(([name]) => name);
      for (const name of await reapDrained(api, stat, slotName(i), draining)) placed.delete(name);
    }
  }
}

/** Whether two maps hold the same lines (HAProxy lists a map's entries in its own order). */
export function sameLines(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((l, i) => l === y[i]);
}

/**
 * Replaces, each atomically, the maps `names` (files in `dir`) whose lines differ from
 * `before`; returns the names replaced.
 */
export async function replaceChangedMaps(
  api: RuntimeApi,
  dir: string,
  names: readonly MapName[],
  before: MapFiles | null,
  after: MapFiles,
): Promise<MapName[]> {
  const changed: MapName[] = [];
  for (const name of names) {
    if (before !== null && sameLines(before[name], after[name])) continue;
    await api.replaceMap(join(dir, name), after[name]);
    changed.push(name);
  }
  return changed;
}

/** Reads back the maps named; throws when HAProxy disagrees with `maps`. */
export async function verifyMaps(
  api: RuntimeApi,
  dir: string,
  names: readonly MapName[],
  maps: MapFiles,
  service: string,
): Promise<void> {
  for (const name of names) {
    const have = await api.showMap(join(dir, name));
    const want = maps[name];
    if (!sameLines(have, want)) {
      throw new TurnoutError(
        "TURNOUT_ERR_HAPROXY_RUNTIME_API",
        `HAProxy for ${service}: ${name} reads back ${JSON.stringify(have)}, not ${JSON.stringify(want)}`,
      );
    }
  }
}
