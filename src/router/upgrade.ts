/**
 * Upgrades (WebSocket): the version and instance are chosen as for any request (steps 1-2 of
 * proxy.ts, without the features' hooks), then the handshake goes to the instance over a
 * connection of its own and, once it answers 101, the two sockets are spliced.
 */
import { type ClientRequest, request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ErrorCode } from "../errors.js";
import {
  type ForwardState,
  forwardHeaders,
  HOP_BY_HOP,
  refuse,
  requestTarget,
  versionProblem,
} from "./forward.js";
import { type Endpoint, pickInstance } from "./pools.js";
import {
  ignore,
  isOutOfDescriptors,
  isTimeout,
  warnOutOfDescriptors,
  writeRawError,
} from "./proxy-errors.js";
import { type SelectOutput, selectBackend } from "./select.js";
import type { CompiledTable } from "./table.js";
import type { CompiledBackend, ProxyContext } from "./types.js";

/**
 * Passes an upgrade (WebSocket) through: the version and instance are chosen as for any
 * request, the handshake goes to the instance over a connection of its own, and once the
 * instance answers 101 the two sockets are spliced. An instance that declines gets its answer
 * relayed. Counted as one request of the version (status 101, or what the instance answered).
 * The listener keeps track of upgraded sockets
 * itself (to cut them when it closes).
 */
export function handleUpgrade(
  ctx: ProxyContext,
  table: CompiledTable,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const startedAt = performance.now();
  socket.on("error", ignore);
  try {
    const version = versionProblem(req);
    if (version !== null) {
      writeRawError(socket, version.status, version.code, version.message, "");
      return;
    }
    const target = requestTarget(req.url);
    const st: ForwardState = {
      requestId: "",
      hasBody: false,
      countBody: false,
      rejectStatus: 0,
      rejectMessage: "",
    };
    if (target === null) refuse(st, 400, `request target ${JSON.stringify(req.url)} is not a path`);
    const headers = forwardHeaders(req, st, table.policy.maxRequestBodyBytes, true);
    if (st.rejectStatus === 0 && st.hasBody)
      refuse(st, 400, "an upgrade request with a body is not supported");
    if (st.rejectStatus !== 0) {
      const code: ErrorCode =
        st.rejectStatus === 413
          ? "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE"
          : "TURNOUT_ERR_ROUTER_BAD_REQUEST";
      writeRawError(socket, st.rejectStatus, code, st.rejectMessage, st.requestId);
      return;
    }
    // Upgrades have no response object: a sticky cookie issued for one goes into the head
    // that `responseHead` writes (101 or the instance's refusal).
    const selection: SelectOutput = { setCookie: null, stickyKey: undefined, stickyKnown: false };
    const backend = selectBackend(table, req, selection);
    const endpoint =
      backend === null
        ? null
        : pickInstance(backend, table.policy.loadBalancing === "leastRequest", null);
    if (backend === null || endpoint === null) {
      writeRawError(
        socket,
        503,
        "TURNOUT_ERR_ROUTER_NO_BACKEND",
        `service ${table.service} has no version with traffic and a ready instance`,
        st.requestId,
      );
      return;
    }
    backend.counters.start(startedAt);
    new UpgradeTunnel(
      ctx,
      table,
      backend,
      endpoint,
      socket,
      head,
      st.requestId,
      selection.setCookie,
      startedAt,
    ).open(req.method ?? "GET", endpoint.pathPrefix + target!, headers);
  } catch (err) {
    ctx.logger.error({ err, service: table.service }, "router: upgrade handling failed");
    socket.destroy();
  }
}

/** One upgraded connection: the handshake with the instance, then two spliced sockets. */
class UpgradeTunnel {
  upstream: ClientRequest | null = null;
  upSocket: Duplex | null = null;
  /** The instance answered (101 or otherwise). */
  answered = false;
  closed = false;

  constructor(
    readonly ctx: ProxyContext,
    readonly table: CompiledTable,
    readonly backend: CompiledBackend,
    readonly endpoint: Endpoint,
    readonly socket: Duplex,
    readonly head: Buffer,
    readonly requestId: string,
    readonly setCookie: string | null,
    readonly startedAt: number,
  ) {}

  open(method: string, path: string, flat: string[]): void {
    const headers: Record<string, string | string[]> = {};
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!;
      const value = flat[i + 1]!;
      const prev = headers[name];
      headers[name] =
        prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
    const u = new URL(this.endpoint.origin);
    const https = u.protocol === "https:";
    const upstream = (https ? httpsRequest : httpRequest)({
      host: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
      port: u.port === "" ? (https ? 443 : 80) : Number(u.port),
      method,
      path,
      headers,
      // Its own connection: once upgraded it belongs to this tunnel.
      agent: false,
    });
    this.upstream = upstream;
    this.endpoint.outstanding++;
    upstream.setTimeout(this.table.policy.timeouts.upstreamSeconds * 1000, () => {
      upstream.destroy(
        Object.assign(new Error("upstream handshake timed out"), { code: "ETIMEDOUT" }),
      );
    });
    upstream.on("upgrade", (res, upSocket, upHead) => this.onUpgrade(res, upSocket, upHead));
    upstream.on("response", (res) => this.onDeclined(res));
    upstream.on("error", (err) => this.onError(err));
    this.socket.on("close", () => this.close());
    upstream.end();
  }

  onUpgrade(res: IncomingMessage, upSocket: Duplex, upHead: Buffer): void {
    this.answered = true;
    this.upSocket = upSocket;
    upSocket.on("error", ignore);
    (upSocket as Duplex & { setTimeout?(ms: number): void }).setTimeout?.(0);
    if (this.closed) {
      upSocket.destroy();
      return;
    }
    this.noteSuccess();
    const status = res.statusCode ?? 101;
    this.socket.write(
      responseHead(res, this.backend.version, this.requestId, this.setCookie, true),
    );
    if (upHead.length > 0) this.socket.write(upHead);
    if (this.head.length > 0) upSocket.write(this.head);
    upSocket.pipe(this.socket);
    this.socket.pipe(upSocket);
    upSocket.on("close", () => this.close());
    this.backend.counters.recordSince(status, this.startedAt, false);
  }

  /** The instance answered without upgrading: relay its answer and close. */
  onDeclined(res: IncomingMessage): void {
    this.answered = true;
    const status = res.statusCode ?? 502;
    if (status >= 500) this.noteFailure();
    else this.noteSuccess();
    this.socket.write(
      responseHead(res, this.backend.version, this.requestId, this.setCookie, false),
    );
    res.pipe(this.socket);
    res.on("error", () => this.socket.destroy());
    this.backend.counters.recordSince(status, this.startedAt, status >= 500);
  }

  onError(err: Error & { code?: string }): void {
    if (this.answered || this.closed) {
      this.close();
      return;
    }
    this.answered = true;
    if (isOutOfDescriptors(err.code)) {
      // Turnout's own descriptors ran out: the upstream is not to blame, so no ejection.
      warnOutOfDescriptors(this.ctx.logger, err.code!);
      this.backend.counters.fdExhausted++;
      writeRawError(
        this.socket,
        503,
        "TURNOUT_ERR_ROUTER_OUT_OF_FILE_DESCRIPTORS",
        `the router ran out of file descriptors (${err.code}) connecting to version ${this.backend.version}; raise ulimit -n`,
        this.requestId,
        this.backend.version,
      );
      this.backend.counters.recordSince(503, this.startedAt, false);
      this.close();
      return;
    }
    this.noteFailure();
    const timeout = isTimeout(err.code);
    const status = timeout ? 504 : 502;
    writeRawError(
      this.socket,
      status,
      timeout ? "TURNOUT_ERR_ROUTER_TIMEOUT" : "TURNOUT_ERR_ROUTER_UPSTREAM",
      `version ${this.backend.version} ${timeout ? "did not answer in time" : "failed"} (${err.code ?? err.message})`,
      this.requestId,
      this.backend.version,
    );
    this.backend.counters.recordSince(status, this.startedAt, true);
    this.close();
  }

  noteSuccess(): void {
    this.endpoint.consecutiveFailures = 0;
  }

  noteFailure(): void {
    this.ctx.outliers.failure(
      this.endpoint,
      this.backend.endpoints,
      this.table.policy.outlierDetection,
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.endpoint.outstanding--;
    if (!this.answered) {
      // The client left before the instance answered the handshake: abandoned (proxy.ts).
      this.answered = true;
      this.backend.counters.recordAbandonedSince(this.startedAt);
      this.upstream?.destroy();
    }
    this.upSocket?.destroy();
    // Whatever was written still goes out; then the connection closes.
    (this.socket as Socket).destroySoon();
  }
}

/** The status line and headers of an instance's answer to an upgrade, for the client socket. */
function responseHead(
  res: IncomingMessage,
  version: string,
  requestId: string,
  setCookie: string | null,
  upgraded: boolean,
): string {
  let s = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ""}\r\n`;
  const raw = res.rawHeaders;
  let sawRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === "x-turnout-version") continue;
    if (upgraded) {
      if (name !== "connection" && name !== "upgrade" && HOP_BY_HOP.has(name)) continue;
    } else if (HOP_BY_HOP.has(name) || name === "content-length") {
      continue;
    }
    if (name === "x-request-id") sawRequestId = true;
    s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  s += `x-turnout-version: ${version}\r\n`;
  if (!sawRequestId) s += `x-request-id: ${requestId}\r\n`;
  if (setCookie !== null) s += `set-cookie: ${setCookie}\r\n`;
  // A declined upgrade's body is relayed as it comes and ends with the connection.
  if (!upgraded) s += "connection: close\r\n";
  return `${s}\r\n`;
}
