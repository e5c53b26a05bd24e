/**
 * The fleet's side of the CLI: the shared admin token of `turnout up` (`--token-file`,
 * `TURNOUT_TOKEN`), the `--store` URL check, and `turnout get routers`.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { stringify as toYaml } from "yaml";
import { TurnoutError } from "../errors.js";
import { parsePostgresUrl } from "../store/postgres/postgres-store.js";
import type { RouterBuffers, RouterNotServing } from "../store/store.js";
import type { Client } from "./client.js";
import { dim, green, red } from "./color.js";
import { table } from "./format.js";

type Output = "text" | "json" | "yaml";

/**
 * The admin token `turnout up` serves: the file's first line with `--token-file`, else
 * `TURNOUT_TOKEN`, else undefined (the data dir's token). A fleet gives every process the same.
 */
export function fleetToken(tokenFile: string | undefined): string | undefined {
  if (tokenFile !== undefined) {
    const path = resolve(tokenFile);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new TurnoutError(
        "TURNOUT_ERR_CLI_USAGE",
        `cannot read --token-file ${path}: ${(err as Error).message}`,
        { path: "token-file" },
      );
    }
    const token = text.split("\n")[0]?.trim() ?? "";
    if (token.length < 16)
      throw new TurnoutError(
        "TURNOUT_ERR_CLI_USAGE",
        `--token-file ${path} must hold the admin token on its first line, at least 16 characters (make one with: openssl rand -base64 24)`,
        { path: "token-file" },
      );
    return token;
  }
  const env = process.env.TURNOUT_TOKEN?.trim();
  if (env === undefined || env === "") return undefined;
  if (env.length < 16)
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      "TURNOUT_TOKEN must be at least 16 characters to serve as the admin token of turnout up (make one with: openssl rand -base64 24)",
      { path: "TURNOUT_TOKEN" },
    );
  return env;
}

/**
 * `--metrics-address HOST:PORT` (`[::1]:9464` for IPv6; port 0 picks a free one). The host is
 * required: whether metrics are served beyond this machine is said, never assumed.
 *
 * @example parseMetricsAddress("0.0.0.0:9464") // { host: "0.0.0.0", port: 9464 }
 */
export function parseMetricsAddress(text: string): { host: string; port: number } {
  const usage = (why: string) =>
    new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `--metrics-address ${JSON.stringify(text)}: ${why}; write HOST:PORT, e.g. 127.0.0.1:9464, 0.0.0.0:9464 for every interface, [::1]:9464`,
      { path: "metrics-address" },
    );
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (m === null) {
    if (/^:\d+$/.test(text)) throw usage("the host is missing");
    throw usage(text.includes(":") ? "not a HOST:PORT" : "the port is missing");
  }
  const host = m[1] ?? m[2] ?? "";
  if (m[1] !== undefined && isIP(host) !== 6) throw usage(`${host} is not an IPv6 address`);
  const port = Number(m[3]);
  if (port > 65535) throw usage(`port ${port} is not 0..65535`);
  return { host, port };
}

/** Throws TURNOUT_ERR_STORE_URL_INVALID (exit 2) for a `--store` that is not a PostgreSQL URL. */
export function checkStoreUrl(url: string): void {
  parsePostgresUrl(url);
}

/** One router as `GET /api/v1/routers` shows it. */
export interface RouterView {
  id: string;
  address: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
  /** Milliseconds since its last heartbeat, by the API's clock. */
  heartbeatAgeMs: number;
  live: boolean;
  revisions: Record<string, number>;
  /** Rows held for the store and dropped since start, per kind, at its last heartbeat. */
  buffers?: RouterBuffers;
  /** Services it was given but cannot serve, with why (`RouterReport.notServing`). */
  notServing?: RouterNotServing;
}

/** "0" when nothing is held, else the total and the kinds that hold something. */
function bufferCell(b: RouterBuffers | undefined, field: "buffered" | "dropped"): string {
  if (b === undefined) return "-";
  const parts = Object.entries(b).filter(([, v]) => v[field] > 0);
  if (parts.length === 0) return "0";
  const total = parts.reduce((n, [, v]) => n + v[field], 0);
  return `${total} (${parts.map(([k, v]) => `${k} ${v[field]}`).join(", ")})`;
}

function print(data: unknown, output: Output, human: () => string): void {
  if (output === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (output === "yaml") process.stdout.write(toYaml(data));
  else process.stdout.write(`${human()}\n`);
}

/** `turnout get routers`: the router registry, live or not. */
export async function getRouters(c: Client, id: string | undefined, output: Output) {
  const res = await c.call<{ items: RouterView[] }>("GET", "/api/v1/routers");
  const items = id !== undefined ? res.items.filter((r) => r.id === id) : res.items;
  if (id !== undefined && items.length === 0)
    throw new TurnoutError("TURNOUT_ERR_CLI_USAGE", `no router with id ${JSON.stringify(id)}`);
  print(id !== undefined ? items[0] : { items }, output, () =>
    items.length === 0
      ? dim("no routers registered")
      : table([
          [
            "ID",
            "STATE",
            "PID",
            "STARTED",
            "HEARTBEAT",
            "REVISIONS",
            "BUFFERED",
            "DROPPED",
            "NOT SERVING",
            "ADDRESS",
          ],
          ...items.map((r) => [
            r.id,
            r.live ? green("live") : red("silent"),
            String(r.pid),
            new Date(r.startedAt).toISOString(),
            `${(r.heartbeatAgeMs / 1000).toFixed(1)}s ago`,
            Object.entries(r.revisions)
              .map(([s, v]) => `${s}@${v}`)
              .join(",") || "-",
            bufferCell(r.buffers, "buffered"),
            bufferCell(r.buffers, "dropped"),
            // The reasons are long: in each service's status and in -o json.
            Object.keys(r.notServing ?? {}).join(",") || "-",
            r.address,
          ]),
        ]),
  );
}
