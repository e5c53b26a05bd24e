/**
 * The CLI's HTTP client. The server's URL and the token it is sent come from ONE source, so a
 * token never goes to a server it does not belong to:
 * - `--server URL` (env TURNOUT_SERVER) with `--token T` (env TURNOUT_TOKEN); or
 * - the data dir (`--data-dir`, env TURNOUT_DATA_DIR, default ./.turnout): the server record
 *   `server.json` and the `token` that `turnout up` writes there, and only while the record
 *   names a live server (its pid runs and has the recorded start time). A stale record, or
 *   none, is an error that sends nothing; there is no default URL to guess at.
 * With `--server` but no token, the data dir's token is used only when the data dir's live
 * server is that very server.
 *
 * HTTPS: the system's CAs are trusted, plus `--ca FILE` (env TURNOUT_CA) and, for the data
 * dir's own server, the certificate it recorded (a self-signed certificate is its own CA).
 * Verification is never turned off.
 */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { rootCertificates } from "node:tls";
import { Agent, type Dispatcher, request } from "undici";
import { lockIsLive, readServerRecord, type ServerRecord } from "../data-dir.js";
import { DEFAULT_DATA_DIR } from "../defaults.js";
import { type ErrorCode, type FieldError, TurnoutError } from "../errors.js";

export interface ClientOptions {
  server?: string;
  token?: string;
  dataDir?: string;
  actor?: string;
  /** A CA certificate file (PEM) to trust for an https server, besides the system's. */
  ca?: string;
}

/** An error the server sent back, with its code and field errors. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly path?: string,
    readonly errors?: FieldError[],
  ) {
    super(message);
  }
}

/** Where the server and token were found, in words for messages. */
export interface Target {
  server: string;
  token: string | undefined;
  /** "--server", "TURNOUT_SERVER" or "the server record of data dir D". */
  serverFrom: string;
  /** "--token", "TURNOUT_TOKEN", "D/token", or undefined when no token is sent. */
  tokenFrom: string | undefined;
  dataDir: string;
  /** Extra CA certificates (PEM) to trust for this server. */
  ca: string[];
}

type Env = Record<string, string | undefined>;

/**
 * Finds the server and token (see the top of this file). Throws TURNOUT_ERR_CLI_NO_SERVER
 * when the data dir names no live server, before anything is sent.
 */
export function resolveTarget(opts: ClientOptions, env: Env = process.env): Target {
  const dataDir = resolve(opts.dataDir ?? env.TURNOUT_DATA_DIR ?? DEFAULT_DATA_DIR);
  const record = readServerRecord(dataDir);
  const live = record !== undefined && lockIsLive(record);
  const explicitServer =
    opts.server !== undefined
      ? { url: opts.server, from: "--server" }
      : env.TURNOUT_SERVER
        ? { url: env.TURNOUT_SERVER, from: "TURNOUT_SERVER" }
        : undefined;
  const explicitToken =
    opts.token !== undefined
      ? { token: opts.token, from: "--token" }
      : env.TURNOUT_TOKEN
        ? { token: env.TURNOUT_TOKEN, from: "TURNOUT_TOKEN" }
        : undefined;
  const caFile = opts.ca ?? (env.TURNOUT_CA || undefined);
  const ca =
    caFile !== undefined ? [readCa(caFile, opts.ca !== undefined ? "--ca" : "TURNOUT_CA")] : [];
  const tokenFile = join(dataDir, "token");

  if (explicitServer !== undefined) {
    const server = trimSlash(checkServerUrl(explicitServer.url, explicitServer.from));
    const ours = live && sameOrigin(record.url, server);
    if (ours && record.tlsCert !== undefined) ca.push(...recordedCa(record));
    let token = explicitToken?.token;
    let tokenFrom = explicitToken?.from;
    if (token === undefined && ours) {
      token = readToken(tokenFile);
      if (token !== undefined) tokenFrom = tokenFile;
    }
    return { server, token, serverFrom: explicitServer.from, tokenFrom, dataDir, ca };
  }

  if (!live) throw noServer(dataDir, record);
  if (record.tlsCert !== undefined) ca.push(...recordedCa(record));
  const token = explicitToken?.token ?? readToken(tokenFile);
  return {
    server: trimSlash(record.url),
    token,
    serverFrom: `the server record of data dir ${dataDir}`,
    tokenFrom: explicitToken?.from ?? (token !== undefined ? tokenFile : undefined),
    dataDir,
    ca,
  };
}

/**
 * Who the history names for a CLI call: `cli:<user>`. $USER (or %USERNAME%, $LOGNAME) when
 * set, else the OS account: containers and CI jobs often leave $USER unset, and
 * `cli:unknown` in an audit trail answers nothing. A uid with no passwd entry (a container run
 * with `--user 1234`) makes userInfo() throw: then the uid itself.
 */
export function cliActor(
  env: Env = process.env,
  osUser: () => string = () => userInfo().username,
): string {
  const fromEnv = [env.USER, env.USERNAME, env.LOGNAME].find((v) => v !== undefined && v !== "");
  if (fromEnv !== undefined) return `cli:${fromEnv}`;
  try {
    const name = osUser();
    if (name) return `cli:${name}`;
  } catch {
    // No passwd entry for this uid: fall through to the uid.
  }
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  return uid !== undefined ? `cli:uid-${uid}` : "cli:unknown";
}

export class Client {
  readonly server: string;
  readonly target: Target;
  private readonly actor: string;
  private readonly dispatcher: Dispatcher | undefined;

  constructor(opts: ClientOptions) {
    this.target = resolveTarget(opts);
    this.server = this.target.server;
    this.actor = opts.actor ?? cliActor();
    this.dispatcher =
      this.target.ca.length > 0 && this.server.startsWith("https:")
        ? new Agent({ connect: { ca: [...rootCertificates, ...this.target.ca] } })
        : undefined;
  }

  async call<T = unknown>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<T> {
    const headers: Record<string, string> = { "x-turnout-actor": this.actor };
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.server}${path}`, {
        method,
        headers,
        body: payload,
        headersTimeout: 60_000,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
    } catch (err) {
      throw this.connectError(err);
    }
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError(
        res.statusCode,
        "TURNOUT_ERR_INTERNAL_BUG",
        `the server answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`,
      );
    }
    if (res.statusCode >= 400) {
      const e = (
        json as {
          error?: {
            code?: string;
            message?: string;
            path?: string;
            details?: { errors?: FieldError[] };
          };
        }
      )?.error;
      const code = e?.code ?? "TURNOUT_ERR_INTERNAL_BUG";
      let message = e?.message ?? `HTTP ${res.statusCode}`;
      if (code === "TURNOUT_ERR_AUTH_UNAUTHORIZED") message = this.authMessage(message);
      throw new ApiError(res.statusCode, code, message, e?.path, e?.details?.errors);
    }
    return json as T;
  }

  /** "wrong bearer token": which server, which token from where, and how to point elsewhere. */
  private authMessage(serverSaid: string): string {
    const t = this.target;
    const sent =
      t.tokenFrom !== undefined
        ? `refused the token from ${t.tokenFrom}`
        : `got no token (none from --token or TURNOUT_TOKEN${t.serverFrom.startsWith("the server record") ? `, and no ${t.dataDir}/token` : `; the token of data dir ${t.dataDir} is sent only to the server it records`})`;
    // The server's own hint ("<data dir>/token") names no data dir; the CLI knows which.
    const what = serverSaid.split(":")[0];
    return `${what}: Turnout at ${t.server} (from ${t.serverFrom}) ${sent}. ${POINT_ELSEWHERE}`;
  }

  private connectError(err: unknown): TurnoutError {
    const e = err as { code?: string; message?: string; cause?: { code?: string } };
    const code = e.code ?? e.cause?.code;
    if (code !== undefined && TLS_TRUST_CODES.has(code)) {
      return new TurnoutError(
        "TURNOUT_ERR_TLS_CONFIG",
        `the TLS certificate of Turnout at ${this.server} is not trusted (${code}: ${e.message}); trust its CA with --ca FILE (env TURNOUT_CA); verification is never turned off`,
      );
    }
    return new TurnoutError(
      "TURNOUT_ERR_CLI_NO_SERVER",
      `cannot reach Turnout at ${this.server} (from ${this.target.serverFrom}; ${code ?? e.message}); start it with \`turnout up\`, or ${POINT_ELSEWHERE_LC}`,
    );
  }
}

const POINT_ELSEWHERE_LC =
  "point the CLI at another Turnout with --data-dir DIR (env TURNOUT_DATA_DIR), or --server URL with --token T (env TURNOUT_SERVER, TURNOUT_TOKEN)";
const POINT_ELSEWHERE =
  "To use another Turnout, pass --data-dir DIR (env TURNOUT_DATA_DIR), or --server URL with --token T (env TURNOUT_SERVER, TURNOUT_TOKEN)";

const TLS_TRUST_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function noServer(dataDir: string, record: ServerRecord | undefined): TurnoutError {
  const why =
    record !== undefined
      ? `last seen at ${record.url}, pid ${record.pid}, which is no longer running`
      : "no server record there: none has started on it, or it stopped";
  return new TurnoutError(
    "TURNOUT_ERR_CLI_NO_SERVER",
    `no Turnout running for data dir ${dataDir} (${why}); nothing was sent. Start it with \`turnout up --data-dir ${dataDir}\`, or ${POINT_ELSEWHERE_LC}`,
    { dataDir, ...(record !== undefined ? { lastSeen: record.url } : {}) },
  );
}

function recordedCa(record: ServerRecord): string[] {
  try {
    return [readFileSync(record.tlsCert ?? "", "utf8")];
  } catch {
    // Moved or unreadable: the system's CAs (and --ca) may still verify it.
    return [];
  }
}

function readCa(file: string, from: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new TurnoutError(
      "TURNOUT_ERR_TLS_CONFIG",
      `cannot read the CA certificate ${file} (${from}): ${(err as Error).message}`,
      { path: file },
    );
  }
}

/**
 * `--server` (or TURNOUT_SERVER) must be an http(s) URL: anything else is a usage error naming
 * where it came from, not "cannot reach" a server nobody could reach.
 */
function checkServerUrl(url: string, from: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:"))
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `${from} must be an http:// or https:// URL such as http://127.0.0.1:4040, got ${JSON.stringify(url)}`,
    );
  return url;
}

/** Same scheme, host and port; "localhost" and 127.0.0.1 are not assumed to be the same. */
function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

function readToken(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

export type { ErrorCode };
