/**
 * Attach mode (`{haproxy: {runtimeApi: "unix:/path.sock", backend: NAME}}`): someone else runs
 * HAProxy, and Turnout changes only that backend, over its runtime API (live.ts):
 *
 * 1. One server per endpoint: a server already there with the endpoint's address is reused,
 *    others are added as `turnout-<address>`.
 * 2. Server weights give each version its share (`attachWeights`). Weights are integers 1..256
 *    per server, so a share is carried to within about 0.4 %.
 * 3. Servers not in the table are drained; Turnout's own are deleted once idle, the owner's are
 *    left drained.
 * 4. Every server's weight and admin state is read back before the table counts as in force.
 *
 * Split only: the frontend belongs to its owner, so matches, stickiness, the override and the
 * preview cannot be carried and are refused (carrier.ts). Stopping leaves the owner's HAProxy
 * running with the servers and weights it has.
 */
import type { HaproxyTrafficSpec, RouteTable } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import { type Carrier, type HaproxyServiceStatus, resolver } from "./carrier.js";
import { type ServerPlan, serverOf } from "./config.js";
import { ADMIN_DRAIN, ADMIN_MAINT, adminState, reapDrained } from "./live.js";
import { RuntimeApi, type ServerStateRow } from "./runtime-api.js";

/** The largest weight HAProxy gives a server. */
const MAX_SERVER_WEIGHT = 256;
/** Prefix of the servers Turnout adds to an attached backend. */
const ATTACH_PREFIX = "turnout-";

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

/** One backend of someone else's HAProxy, carrying a service's split. See the module comment. */
export class AttachedService implements Carrier {
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
    // 1, 2. Endpoints: reuse the server with that address, else add one; weights.
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
    // 3. Servers not in the table: drained (Turnout's own deleted later; others left drained).
    for (const r of rows) {
      const name = r.srv_name!;
      if (expected.has(name)) continue;
      if ((Number(r.srv_admin_state) & ADMIN_DRAIN) === 0)
        await api.setServerState(be, name, "drain");
      if (name.startsWith(ATTACH_PREFIX)) this.#draining.add(name);
      expected.set(name, { weight: -1, drain: true });
    }
    // 4. Read back.
    const after = await api.serversState(be);
    for (const [name, e] of expected) {
      const r = after.find((x) => x.srv_name === name);
      const admin = adminState(r);
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
    for (const name of await reapDrained(this.api, stat, this.#backend, [...this.#draining])) {
      this.#draining.delete(name);
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
