/**
 * One service's HTTP listener as the router runs it: the Node server with the policy's client
 * timeouts and the protocol guards, whose handlers read the listener's table at each request
 * (the table swap is one assignment, see router.ts); its graceful close; and the registry's
 * account of listeners that cannot bind.
 */
import { createServer, type Server } from "node:http";
import type { Duplex } from "node:stream";
import type { TrafficPolicySpec } from "../core/model.js";
import { PREVIEW_SUFFIX } from "../core/routes.js";
import type { RouterNotServing } from "../store/store.js";
import {
  handleRequest,
  handleUpgrade,
  installProtocolGuards,
  onClientError,
  type ProxyContext,
} from "./proxy.js";
import type { CompiledTable } from "./table.js";

export interface BoundServer {
  server: Server;
  /** Read by the server's request handler; set when the server starts to close. */
  closing: boolean;
  /** Upgraded (WebSocket) client sockets: the server forgets them, so closing must cut them. */
  upgrades: Set<Duplex>;
}

/** What a listener's handlers read at each request: the table in force. */
export interface TableHolder {
  readonly table: CompiledTable;
}

/** A server for `l` (not listening yet) whose handlers serve `l.table`. */
export function createListenerServer(
  ctx: ProxyContext,
  l: TableHolder,
  opts: { maxHeaderBytes: number; requestTimeoutMs: number },
): BoundServer {
  const policy = l.table.policy;
  const headersTimeout = policy.timeouts.requestHeadersSeconds * 1000;
  const entry: BoundServer = {
    server: createServer({
      maxHeaderSize: opts.maxHeaderBytes,
      // Checked by the proxy, which answers in JSON (Node's own 400 has no body).
      requireHostHeader: false,
      // How often Node looks for clients over their header or request time: often enough
      // that a short timeout is enforced close to its value.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, headersTimeout / 4)),
    }),
    closing: false,
    upgrades: new Set(),
  };
  const { server } = entry;
  applyServerPolicy(server, policy, opts.requestTimeoutMs);
  // One closure per server, none per request. It reads `l.table` at each request, which is
  // the whole of the atomic swap.
  server.on("request", (req, res) => {
    if (entry.closing) res.shouldKeepAlive = false;
    handleRequest(ctx, l.table, req, res);
  });
  server.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    if (entry.closing) {
      socket.destroy();
      return;
    }
    entry.upgrades.add(socket);
    socket.once("close", () => entry.upgrades.delete(socket));
    handleUpgrade(ctx, l.table, req, socket, head);
  });
  server.on("clientError", (err: Error, socket: Duplex) =>
    onClientError(err, socket, server.requestTimeout),
  );
  installProtocolGuards(server);
  return entry;
}

/**
 * Closes a server gracefully: it stops accepting at once, idle keep-alive connections are
 * closed, responses in flight finish (with `Connection: close`), and whatever is left after
 * `drainTimeoutMs` is cut.
 */
export function closeServer(
  closing: Set<Promise<void>>,
  drainTimeoutMs: number,
  entry: BoundServer,
): void {
  entry.closing = true;
  const { server } = entry;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // A connection whose response was already under way when closing began goes idle later
  // and would otherwise linger until its keep-alive timeout.
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  // Upgraded connections (WebSockets) are long-lived by nature: they get the drain time too,
  // then are cut with the rest.
  const force = setTimeout(() => {
    server.closeAllConnections();
    for (const s of entry.upgrades) s.destroy();
  }, drainTimeoutMs);
  sweep.unref();
  force.unref();
  const tracked = closed.finally(() => {
    clearInterval(sweep);
    clearTimeout(force);
    closing.delete(tracked);
  });
  closing.add(tracked);
}

/** A listener as the registry needs it: service, address, and why it is not bound. */
interface ListenerState {
  service: string;
  host: string;
  port: number;
  error?: string | undefined;
}

/**
 * The registry's `notServing` for listeners that cannot bind (their error is retried at each
 * poll): a preview listener's problem is its service's, since the rollout needs both.
 */
export function notServingOf(
  listeners: readonly ListenerState[],
  revisions: ReadonlyMap<string, number>,
): { notServing?: RouterNotServing } {
  const out: RouterNotServing = {};
  for (const l of listeners) {
    if (l.error === undefined) continue;
    const preview = l.service.endsWith(PREVIEW_SUFFIX);
    const service = preview ? l.service.slice(0, -PREVIEW_SUFFIX.length) : l.service;
    const reason = `cannot listen on ${l.host}:${l.port}${preview ? " (the preview listener)" : ""}: ${bindError(l.error)}`;
    const before = out[service];
    out[service] = {
      revision: revisions.get(service) ?? null,
      reason: before === undefined ? reason : `${before.reason}; ${reason}`,
    };
  }
  return Object.keys(out).length > 0 ? { notServing: out } : {};
}

/** "EADDRINUSE: listen EADDRINUSE: address already in use 0.0.0.0:80" -> "address already in use (EADDRINUSE)". */
function bindError(error: string): string {
  const m = /^(E[A-Z]+): listen E[A-Z]+: (.+?) \S+:\d+$/.exec(error);
  return m ? `${m[2]} (${m[1]})` : error;
}

/**
 * Applies a policy's client-side timeouts to a listening server. Node reads these on every
 * check and response, so a changed table takes effect on the running listener (the header size
 * limit is fixed when the listener is created).
 */
export function applyServerPolicy(
  server: Server,
  policy: TrafficPolicySpec,
  requestTimeoutMs: number,
): void {
  const headersTimeout = policy.timeouts.requestHeadersSeconds * 1000;
  server.headersTimeout = headersTimeout;
  // Never shorter than the headers' time, which Node requires.
  server.requestTimeout = Math.max(headersTimeout, requestTimeoutMs);
  server.keepAliveTimeout = policy.timeouts.idleSeconds * 1000;
}
