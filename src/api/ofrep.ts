/**
 * OFREP, the OpenFeature Remote Evaluation Protocol (open-feature/protocol, service/openapi.yaml):
 *
 * - `POST /ofrep/v1/evaluate/flags/{key}`: one flag; 200 `{key, value, reason, variant,
 *   metadata}`, 404 `{key, errorCode: FLAG_NOT_FOUND, errorDetails}`, 400 `{key, errorCode,
 *   errorDetails}` (PARSE_ERROR, TARGETING_KEY_MISSING, INVALID_CONTEXT, GENERAL).
 * - `POST /ofrep/v1/evaluate/flags`: every flag for one context (what web providers fetch);
 *   200 `{flags: [...]}` with an ETag, 304 when If-None-Match names it, 400 `{errorCode,
 *   errorDetails}` for a bad request.
 * - `GET /ofrep/v1/configuration`: what Turnout supports, with an ETag.
 *
 * And Turnout's own sync endpoint for the in-process provider (`src/provider`):
 * `GET /flags/v1/definitions[?wait=SECONDS]` returns the effective definitions with an ETag;
 * with If-None-Match and `wait`, it answers when they change (long poll) or 304 at the end.
 *
 * All of them take a *client key* (`X-API-Key: K` or `Authorization: Bearer K`), never the admin
 * token: client keys go into applications, which must not be able to change anything. Keys are
 * lines of `<dataDir>/flag-keys` (made with one random key on first start, mode 0600; edit the
 * file to add or revoke keys, it is re-read within a second).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { evaluateCompiled, invalidContext } from "../core/flags/evaluate.js";
import type { ResolutionDetails } from "../core/flags/types.js";
import { checkJson, InputLimitError } from "../resources/input-limits.js";
import type { FlagSnapshot, FlagSnapshotCache } from "../store/flag-store.js";
import { canonicalJson } from "../store/json.js";

export interface OfrepOptions {
  flags: FlagSnapshotCache;
  /** Whether a client key is valid. */
  clientKeys: ClientKeys;
  /** Longest long-poll wait of /flags/v1/definitions, in seconds. Default 60. */
  maxWaitSeconds?: number;
}

/** Paths that take a client key instead of the admin token (the admin hook lets them through). */
export function isClientKeyPath(url: string): boolean {
  return url.startsWith("/ofrep/") || url.startsWith("/flags/v1/");
}

/** The valid client keys: lines of a file, re-read when it changes (checked once a second). */
export class ClientKeys {
  readonly #file: string | null;
  #keys: Buffer[] = [];
  #checkedAt = 0;
  #mtime = -1;

  constructor(file: string | null, keys: string[] = []) {
    this.#file = file;
    this.#keys = keys.map((k) => Buffer.from(k));
  }

  /** Reads `<dataDir>/flag-keys`, or makes it with one random key (mode 0600). */
  static ensure(dataDir: string): ClientKeys {
    const file = join(dataDir, "flag-keys");
    if (!existsSync(file)) {
      const key = `tfk_${randomBytes(24).toString("base64url")}`;
      writeFileSync(
        file,
        `# Turnout flag client keys (OFREP and provider sync), one per line.\n${key}\n`,
        { mode: 0o600 },
      );
      chmodSync(file, 0o600);
    }
    return new ClientKeys(file);
  }

  /** The first key, for tools and tests. */
  first(): string | undefined {
    this.#reload(Date.now());
    return this.#keys[0]?.toString();
  }

  has(key: string): boolean {
    this.#reload(Date.now());
    const given = Buffer.from(key);
    let ok = false;
    // Every key is compared, in constant time each, so timing says nothing about which matched.
    for (const k of this.#keys)
      if (k.length === given.length && timingSafeEqual(k, given)) ok = true;
    return ok;
  }

  #reload(now: number): void {
    if (this.#file === null || now - this.#checkedAt < 1000) return;
    this.#checkedAt = now;
    try {
      const m = statSync(this.#file).mtimeMs;
      if (m === this.#mtime) return;
      this.#mtime = m;
      this.#keys = readFileSync(this.#file, "utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#"))
        .map((l) => Buffer.from(l));
    } catch {
      // A missing or unreadable file keeps the keys last read.
    }
  }
}

/** The OFREP success body of one evaluation, or the failure body (and its HTTP status). */
function toOfrep(key: string, r: ResolutionDetails): { status: number; body: object } {
  if (r.errorCode !== undefined) {
    return {
      status: r.errorCode === "FLAG_NOT_FOUND" ? 404 : 400,
      body: { key, errorCode: r.errorCode, errorDetails: r.errorMessage ?? r.errorCode },
    };
  }
  const body: Record<string, unknown> = { key, value: r.value, reason: r.reason };
  if (r.variant !== undefined) body.variant = r.variant;
  body.metadata = r.flagMetadata;
  return { status: 200, body };
}

function clientKeyOf(req: Pick<FastifyRequest, "headers">): string | undefined {
  const k = req.headers["x-api-key"];
  if (typeof k === "string" && k !== "") return k;
  const h = req.headers.authorization;
  if (h === undefined) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m?.[1]?.trim();
}

/** Whether an If-None-Match header names `etag` (a list, weak validators, or `*`). */
export function etagMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(",") : header;
  if (value.trim() === "*") return true;
  return value.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

/**
 * OFREP's answer to a body over the limit (413). OFREP defines no 413, so its failure shape
 * `{key?, errorCode, errorDetails}`, as for the other input limits: INVALID_CONTEXT (the body
 * is the context), Turnout's own code in the details. `url` gives the key of a single
 * evaluation.
 */
export function ofrepTooLarge(url: string | undefined, details: string): object {
  let key: string | undefined;
  const rest = url?.startsWith(SINGLE) ? url.slice(SINGLE.length).split("?")[0] : undefined;
  if (rest) {
    try {
      key = decodeURIComponent(rest);
    } catch {
      key = undefined;
    }
  }
  return {
    ...(key !== undefined ? { key } : {}),
    errorCode: "INVALID_CONTEXT",
    errorDetails: `${details} [TURNOUT_ERR_API_PAYLOAD_TOO_LARGE]`,
  };
}

class BadRequest extends Error {
  constructor(
    readonly errorCode: "PARSE_ERROR" | "INVALID_CONTEXT",
    message: string,
  ) {
    super(message);
  }
}

/** The evaluation context of a request body (raw JSON text, possibly empty). */
function contextOf(raw: unknown): Record<string, unknown> {
  let body: unknown = raw;
  if (typeof raw === "string") {
    if (raw.trim() === "") return {};
    // Bounded before parsing (resources/input-limits.ts): a context nested too deeply would
    // overflow the stack of the evaluation and of its canonical JSON, so it is not valid.
    try {
      checkJson(raw, undefined, "the request body");
    } catch (err) {
      if (err instanceof InputLimitError)
        throw new BadRequest("INVALID_CONTEXT", `${err.message} [${err.code}]`);
      throw err;
    }
    try {
      body = JSON.parse(raw);
    } catch (err) {
      throw new BadRequest(
        "PARSE_ERROR",
        `the request body is not JSON: ${(err as Error).message}`,
      );
    }
  }
  if (body === undefined || body === null) return {};
  if (typeof body !== "object" || Array.isArray(body))
    throw new BadRequest("INVALID_CONTEXT", "the request body must be an object {context: {...}}");
  const ctx = (body as { context?: unknown }).context;
  if (ctx === undefined || ctx === null) return {};
  if (typeof ctx !== "object" || Array.isArray(ctx))
    throw new BadRequest("INVALID_CONTEXT", "context must be an object");
  // Invalid for every flag (a targetingKey that is not a string): the request is refused, on
  // the bulk route as on the single one, not answered with the same error per flag.
  const invalid = invalidContext(ctx);
  if (invalid !== null) throw new BadRequest("INVALID_CONTEXT", invalid);
  return ctx as Record<string, unknown>;
}

/** Why a request without a valid client key is refused (401), or null when the key is good. */
function refusal(req: Pick<FastifyRequest, "headers">, keys: ClientKeys): string | null {
  const key = clientKeyOf(req);
  if (key === undefined)
    return "missing client key: send X-API-Key: <key> or Authorization: Bearer <key> (see <dataDir>/flag-keys)";
  return keys.has(key) ? null : "unknown client key";
}

/** One flag's evaluation for a raw request body: the OFREP status and body. */
function evaluateOne(
  opts: OfrepOptions,
  key: string,
  rawBody: unknown,
): { status: number; body: object } {
  let ctx: Record<string, unknown>;
  try {
    ctx = contextOf(rawBody);
  } catch (err) {
    if (err instanceof BadRequest)
      return { status: 400, body: { key, errorCode: err.errorCode, errorDetails: err.message } };
    throw err;
  }
  const f = opts.flags.current.flags.get(key);
  const r: ResolutionDetails =
    f === undefined
      ? {
          value: undefined,
          reason: "ERROR",
          errorCode: "FLAG_NOT_FOUND",
          errorMessage: `flag ${key} not found`,
          flagMetadata: {},
        }
      : evaluateCompiled(f, ctx);
  return toOfrep(key, r);
}

const SINGLE = "/ofrep/v1/evaluate/flags/";
/** Bodies of single evaluations are contexts: small. Larger ones go the general way. */
const FAST_BODY_LIMIT = 64 * 1024;

/**
 * The hot path of OFREP, single-flag evaluation, served on node:http before fastify routes
 * the request: the same client-key check, body rules and answers as the fastify route below
 * (both call `evaluateOne`), without fastify's per-request routing, hooks and reply objects,
 * which cost about half of the throughput of this small request (measured: bench:flags).
 * Returns false, touching nothing, for every request it does not take.
 */
export function ofrepFastPath(
  opts: OfrepOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url;
    if (req.method !== "POST" || url === undefined || !url.startsWith(SINGLE)) return false;
    const rest = url.slice(SINGLE.length);
    if (rest === "" || rest.includes("/") || rest.includes("?")) return false;
    // A body declared larger than a context needs goes the general way (fastify's limit and
    // answers); refusing it here would reset a client still sending it.
    const declared = Number(req.headers["content-length"] ?? 0);
    if (!(declared <= FAST_BODY_LIMIT)) return false;
    let key: string;
    try {
      key = decodeURIComponent(rest);
    } catch {
      return false;
    }
    const send = (status: number, body: object) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    };
    const why = refusal(req, opts.clientKeys);
    if (why !== null) {
      req.resume();
      send(401, { errorDetails: why });
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (c: Buffer) => {
      // After a 413 the rest is read and dropped, as Node does for a body nobody reads (bounded
      // by the request timeout): closing on a client still sending loses it the answer (EPIPE).
      if (failed) return;
      size += c.length;
      if (size > FAST_BODY_LIMIT) {
        failed = true;
        chunks.length = 0;
        send(413, ofrepTooLarge(url, `the request body is larger than ${FAST_BODY_LIMIT} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (failed) return;
      const raw =
        chunks.length === 1 ? (chunks[0] as Buffer).toString() : Buffer.concat(chunks).toString();
      try {
        const out = evaluateOne(opts, key, raw);
        send(out.status, out.body);
      } catch (err) {
        send(500, { key, errorCode: "GENERAL", errorDetails: (err as Error).message });
      }
    });
    req.on("error", () => {
      failed = true;
    });
    return true;
  };
}

/** Registers OFREP and the provider sync endpoint on `app` (own body parsing and errors). */
export function registerOfrep(app: FastifyInstance, opts: OfrepOptions): void {
  const maxWait = opts.maxWaitSeconds ?? 60;
  /** Long polls in progress: ended at once when the server closes, so that it need not wait. */
  const polls = new Set<() => void>();
  app.addHook("preClose", async () => {
    for (const end of [...polls]) end();
  });
  app.register(async (ofrep) => {
    // Bodies are parsed here, not by fastify, so that bad JSON is OFREP's PARSE_ERROR and a
    // missing or odd content type (some clients send none) still evaluates.
    ofrep.removeAllContentTypeParsers();
    ofrep.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));

    ofrep.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
      if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE")
        return reply
          .code(413)
          .send(
            ofrepTooLarge(
              req.url,
              `the request body is larger than the API accepts (${req.server.initialConfig.bodyLimit} bytes)`,
            ),
          );
      const status = err.statusCode ?? 500;
      reply.code(status >= 400 && status < 600 ? status : 500).send({ errorDetails: err.message });
    });

    ofrep.addHook("onRequest", async (req, reply) => {
      const why = refusal(req, opts.clientKeys);
      if (why !== null) {
        reply.code(401).send({ errorDetails: why });
        return reply;
      }
    });

    // Served by `ofrepFastPath` when the API runs on its own server; kept for inject() and as
    // the reference the fast path must match (tests compare both).
    ofrep.post<{ Params: { key: string } }>("/ofrep/v1/evaluate/flags/:key", async (req, reply) => {
      const out = evaluateOne(opts, req.params.key, req.body);
      return reply.code(out.status).send(out.body);
    });

    ofrep.post("/ofrep/v1/evaluate/flags", async (req, reply) => {
      let ctx: Record<string, unknown>;
      try {
        ctx = contextOf(req.body);
      } catch (err) {
        if (err instanceof BadRequest)
          return reply.code(400).send({ errorCode: err.errorCode, errorDetails: err.message });
        throw err;
      }
      const snap = opts.flags.current;
      // The answer depends on the definitions and on the context: both go into the tag.
      const etag = `"${createHash("sha256")
        .update(snap.etag)
        .update(canonicalJson(ctx))
        .digest("base64url")
        .slice(0, 27)}"`;
      reply.header("etag", etag);
      if (etagMatches(req.headers["if-none-match"], etag)) return reply.code(304).send();
      return reply.send({ flags: bulk(snap, ctx) });
    });

    ofrep.get("/ofrep/v1/configuration", async (req, reply) => {
      const body = {
        name: "turnout",
        capabilities: {
          cacheInvalidation: { polling: { enabled: true, minPollingIntervalMs: 1000 } },
          flagEvaluation: { supportedTypes: ["boolean", "string", "int", "float", "object"] },
          caching: { enabled: false },
        },
      };
      const etag = `"${createHash("sha256").update(canonicalJson(body)).digest("base64url").slice(0, 27)}"`;
      reply.header("etag", etag);
      if (etagMatches(req.headers["if-none-match"], etag)) return reply.code(304).send();
      return body;
    });

    ofrep.get<{ Querystring: { wait?: string } }>("/flags/v1/definitions", async (req, reply) => {
      const wait = Math.min(Math.max(Number(req.query.wait ?? 0) || 0, 0), maxWait);
      let snap = opts.flags.current;
      const inm = req.headers["if-none-match"];
      if (wait > 0 && etagMatches(inm, snap.etag)) {
        snap = await new Promise<FlagSnapshot>((resolve) => {
          let done = false;
          const finish = (s: FlagSnapshot) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            off();
            polls.delete(end);
            reply.raw.off("close", onClose);
            resolve(s);
          };
          const onClose = () => finish(opts.flags.current);
          const off = opts.flags.onUpdate(finish);
          const end = () => finish(opts.flags.current);
          polls.add(end);
          const timer = setTimeout(() => finish(opts.flags.current), wait * 1000);
          // The response's close: the client went away (an aborted long poll ends at once).
          reply.raw.on("close", onClose);
        });
      }
      reply.header("etag", snap.etag);
      // A long poll's connection is not kept alive: a poller that went away mid-wait must not
      // leave a connection that keeps the server from closing.
      if (wait > 0) reply.header("connection", "close");
      if (etagMatches(inm, snap.etag)) return reply.code(304).send();
      return {
        etag: snap.etag,
        flags: snap.definitions,
        segments: snap.segments,
      };
    });
  });
}

/** Every flag of the snapshot for one context, as OFREP bulk items. */
function bulk(snap: FlagSnapshot, ctx: Record<string, unknown>): object[] {
  const out: object[] = [];
  for (const f of snap.flags.values()) out.push(toOfrep(f.key, evaluateCompiled(f, ctx)).body);
  return out;
}
