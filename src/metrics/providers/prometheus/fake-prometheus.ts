/**
 * A fake of Prometheus' HTTP query API for tests: a real HTTP server on 127.0.0.1, port 0,
 * answering `/api/v1/query` and `/api/v1/query_range` (GET or form POST, as Prometheus does)
 * from a handler. It records every request, so tests can check what the provider sent.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeQuery {
  path: string;
  method: string;
  endpoint: "query" | "query_range";
  params: Record<string, string>;
  headers: http.IncomingHttpHeaders;
}

/** What to answer: a JSON body with a status, raw text, or nothing at all (hang). */
export type FakeAnswer =
  | { status?: number; json: unknown }
  | { status: number; text: string }
  | "hang";

export interface FakePrometheus {
  /** e.g. "http://127.0.0.1:41234" (plus the prefix, when one was given). */
  address: string;
  queries: FakeQuery[];
  close(): Promise<void>;
}

/** `{status: "success", data: {resultType, result}}` */
export function success(resultType: string, result: unknown, warnings?: string[]): FakeAnswer {
  return {
    json: { status: "success", data: { resultType, result }, ...(warnings ? { warnings } : {}) },
  };
}

export function apiError(status: number, errorType: string, error: string): FakeAnswer {
  return { status, json: { status: "error", errorType, error } };
}

export async function startFakePrometheus(
  answer: (q: FakeQuery) => FakeAnswer,
  prefix = "",
): Promise<FakePrometheus> {
  const queries: FakeQuery[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      const params = Object.fromEntries(url.searchParams);
      if (req.method === "POST") {
        Object.assign(
          params,
          Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString())),
        );
      }
      const m = /\/api\/v1\/(query|query_range)$/.exec(url.pathname);
      if (!m || !url.pathname.startsWith(`${prefix}/api/v1/`)) {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("404 page not found\n");
        return;
      }
      const q: FakeQuery = {
        path: url.pathname,
        method: req.method ?? "",
        endpoint: m[1] as "query" | "query_range",
        params,
        headers: req.headers,
      };
      queries.push(q);
      const a = answer(q);
      if (a === "hang") return; // the socket stays open until the client gives up or close()
      if ("json" in a) {
        res.writeHead(a.status ?? 200, { "content-type": "application/json" });
        res.end(JSON.stringify(a.json));
      } else {
        res.writeHead(a.status, { "content-type": "text/plain" });
        res.end(a.text);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `http://127.0.0.1:${port}${prefix}`,
    queries,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
