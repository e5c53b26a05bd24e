/**
 * One HTTP readiness probe: GET with an overall deadline, any 2xx/3xx is ready.
 *
 * node:http with `agent: false` rather than undici's pooled dispatcher: a probe every period to
 * every instance should leave no keep-alive socket behind, or a graceful `server.close()` in the
 * instance would wait on our idle connection, and the pool would hold sockets to dead ports.
 */
import http from "node:http";

export interface ProbeResult {
  ok: boolean;
  /** "HTTP 503", "ECONNREFUSED", "timed out after 1s"... */
  detail: string;
}

export interface ProbeHandle {
  result: Promise<ProbeResult>;
  /** Stops an in-flight probe (the instance is being stopped); the result is then not ok. */
  cancel(): void;
}

export function probeHttp(url: string, timeoutMs: number): ProbeHandle {
  let settle!: (r: ProbeResult) => void;
  let done = false;
  const result = new Promise<ProbeResult>((resolve) => {
    settle = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
  });
  const req = http.get(url, { agent: false, headers: { connection: "close" } }, (res) => {
    // Drain so the socket closes; the body of a health check is not interesting.
    res.resume();
    const status = res.statusCode ?? 0;
    settle({ ok: status >= 200 && status < 400, detail: `HTTP ${status}` });
  });
  req.on("error", (err: NodeJS.ErrnoException) => {
    settle({ ok: false, detail: err.code ?? err.message });
  });
  // `timeout` on http.get is only a socket idle timeout; this deadline covers connect,
  // headers and all. Unref'd: a probe must never keep Turnout alive.
  const timer = setTimeout(() => {
    // Timers run before I/O in each turn of the event loop: when Turnout itself is busy (its
    // router proxying flat out on a loaded machine), the deadline can pass while the answer
    // already waits unread in the socket. One more turn (setImmediate runs after the I/O
    // phase) reads it; otherwise every instance would look unready at once and a version
    // would lose all its endpoints because of Turnout's lag, not the instance's.
    setImmediate(() => {
      settle({ ok: false, detail: `timed out after ${timeoutMs / 1000}s` });
      req.destroy();
    });
  }, timeoutMs);
  timer.unref();
  return {
    result,
    cancel() {
      settle({ ok: false, detail: "cancelled" });
      req.destroy();
    },
  };
}
