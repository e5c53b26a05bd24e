/**
 * What Node's HTTP server would answer by itself (100 Continue too early, an empty 417, a
 * CONNECT closed without a word, a bare 400 for a request its parser rejected), answered the
 * router's way: in order, with Turnout's JSON error body.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { incomingRequestId } from "./forward.js";
import { ignore, sendError, writeRawError } from "./proxy-errors.js";

/** Where the proxy keeps a response's exchange, for a body error the parser reports. */
export const kExchange = Symbol("turnout.exchange");

/** What `onClientError` needs of the exchange of a response in flight (proxy.ts). */
export interface BodyErrorTarget {
  readonly req: IncomingMessage;
  /** The body cannot be read to its end: a parse error (400), or the request's time ran out (408). */
  onClientBodyError(message: string, timeout?: boolean): void;
}

type TrackedResponse = ServerResponse & { [kExchange]?: BodyErrorTarget };

/** Requests whose client waits for 100 Continue, which the router has not sent yet. */
export const awaitingContinue = new WeakSet<IncomingMessage>();

/**
 * Takes over what Node's server would do on its own, with no JSON body or the wrong order:
 *
 * - `Expect: 100-continue`: Node sends 100 at once, so a client over the body limit sends
 *   the body it announced before it learns of the 413. The request goes to `request` without
 *   the 100; `handleRequest` sends it once nothing refused the request, and a refusal (413,
 *   400, 503) is the client's only answer.
 * - any other `Expect` (HTTP/1.1): Node sends an empty 417; this one is JSON.
 * - CONNECT: without a listener Node closes the connection without a word; the router is no
 *   tunnel, so 405 JSON.
 *
 * Called once per listener (router.ts), after its `request` listener.
 */
export function installProtocolGuards(server: Server): void {
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    server.emit("request", req, res);
  });
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    sendError(
      res,
      417,
      "TURNOUT_ERR_ROUTER_EXPECTATION_FAILED",
      `the router does not support Expect: ${JSON.stringify(String(req.headers.expect).slice(0, 100))}; only 100-continue`,
      incomingRequestId(req) ?? randomUUID(),
      undefined,
      true,
    );
  });
  server.on("connect", (req: IncomingMessage, socket: Duplex) => {
    socket.on("error", ignore);
    writeRawError(
      socket,
      405,
      "TURNOUT_ERR_ROUTER_METHOD_NOT_ALLOWED",
      "CONNECT is not supported: the router is a reverse proxy, not a tunnel",
      incomingRequestId(req) ?? "",
    );
  });
}

/**
 * Answers requests that Node's HTTP parser rejected (request smuggling attempts such as
 * Content-Length with Transfer-Encoding, obs-fold, bad chunking; oversized headers; a client
 * too slow to send its headers) with a JSON error, and closes the connection.
 */
export function onClientError(
  err: Error & { code?: string },
  socket: Duplex,
  requestTimeoutMs: number,
): void {
  const s = socket as Duplex & { _httpMessage?: ServerResponse | null };
  if (err.code === "ECONNRESET" || !s.writable) {
    s.destroy();
    return;
  }
  // A response to an earlier request on this connection is still under way (the bad request
  // was pipelined behind it): answering now would hand the client our error as the answer to
  // that request. Let it finish first; the connection ends with the error either way.
  const inFlight = s._httpMessage as TrackedResponse | null | undefined;
  if (inFlight != null) {
    // The error is in the body of the request being proxied (e.g. a bad chunk): it cannot be
    // forwarded further.
    const ex = inFlight[kExchange];
    if (ex !== undefined && !ex.req.complete) {
      // Node reports the whole request's time running out (`requestTimeout`) as a client
      // error too: the body was too slow, not malformed.
      if (err.code === "ERR_HTTP_REQUEST_TIMEOUT")
        ex.onClientBodyError(
          `the client did not send the whole request within ${requestTimeoutMs / 1000} s`,
          true,
        );
      else ex.onClientBodyError(`malformed request body (${err.code ?? err.message})`);
      return;
    }
    // Its response closes the connection anyway (the router refused the request itself).
    if (!inFlight.shouldKeepAlive) return;
    if (!inFlight.writableFinished) {
      inFlight.once("finish", () => answerClientError(err, s));
      inFlight.once("close", () => {
        if (!inFlight.writableFinished) s.destroy();
      });
      return;
    }
  }
  answerClientError(err, s);
}

function answerClientError(err: Error & { code?: string }, s: Duplex): void {
  if (!s.writable) {
    s.destroy();
    return;
  }
  if (err.code === "HPE_HEADER_OVERFLOW") {
    writeRawError(
      s,
      431,
      "TURNOUT_ERR_ROUTER_HEADERS_TOO_LARGE",
      "the request headers are larger than the router accepts",
      "",
    );
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    writeRawError(
      s,
      408,
      "TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT",
      "the client did not send its request in time",
      "",
    );
  } else {
    writeRawError(
      s,
      400,
      "TURNOUT_ERR_ROUTER_BAD_REQUEST",
      `malformed HTTP request (${err.code ?? err.message})`,
      "",
    );
  }
}
