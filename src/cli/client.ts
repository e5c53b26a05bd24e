/**
 * The CLI's HTTP client. It finds the server and token by itself: flags, then environment
 * (TURNOUT_SERVER, TURNOUT_TOKEN), then the data dir that `turnout up` writes
 * (`server.json` and `token` in TURNOUT_DATA_DIR or ./.turnout).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { request } from "undici";
import { DEFAULT_DATA_DIR, DEFAULT_PORT } from "../defaults.js";
import { type ErrorCode, type FieldError, TurnoutError } from "../errors.js";

export interface ClientOptions {
  server?: string;
  token?: string;
  dataDir?: string;
  actor?: string;
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

export class Client {
  readonly server: string;
  private readonly token: string | undefined;
  private readonly actor: string;

  constructor(opts: ClientOptions) {
    const dataDir = resolve(opts.dataDir ?? process.env.TURNOUT_DATA_DIR ?? DEFAULT_DATA_DIR);
    this.server = (
      opts.server ??
      process.env.TURNOUT_SERVER ??
      readServerUrl(dataDir) ??
      `http://127.0.0.1:${DEFAULT_PORT}`
    ).replace(/\/+$/, "");
    this.token = opts.token ?? process.env.TURNOUT_TOKEN ?? readToken(dataDir);
    this.actor = opts.actor ?? `cli:${process.env.USER ?? process.env.USERNAME ?? "unknown"}`;
  }

  async call<T = unknown>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    body?: unknown,
  ): Promise<T> {
    const headers: Record<string, string> = { "x-turnout-actor": this.actor };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
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
      });
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new TurnoutError(
        "TURNOUT_ERR_CLI_NO_SERVER",
        `cannot reach Turnout at ${this.server} (${e.code ?? e.message}); start it with \`turnout up\`, or pass --server URL`,
      );
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
      throw new ApiError(
        res.statusCode,
        e?.code ?? "TURNOUT_ERR_INTERNAL_BUG",
        e?.message ?? `HTTP ${res.statusCode}`,
        e?.path,
        e?.details?.errors,
      );
    }
    return json as T;
  }
}

function readServerUrl(dataDir: string): string | undefined {
  const file = join(dataDir, "server.json");
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { url?: string }).url;
  } catch {
    return undefined;
  }
}

function readToken(dataDir: string): string | undefined {
  const file = join(dataDir, "token");
  if (!existsSync(file)) return undefined;
  return readFileSync(file, "utf8").trim() || undefined;
}

export type { ErrorCode };
