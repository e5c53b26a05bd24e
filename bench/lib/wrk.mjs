// Parsing of wrk's text report (wrk 4.x with --latency).

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "812.00us" | "1.23ms" | "2.01s" -> milliseconds. */
export function parseDuration(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (m === null) throw new Error(`wrk: cannot parse duration ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/**
 * Reads requests/s, the latency percentiles of `--latency`, the request count and the error
 * counters from wrk's output. Throws when the summary lines are missing (wrk failed).
 */
export function parseWrk(output) {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  if (rps === null) throw new Error(`wrk: no Requests/sec line in output:\n${output}`);
  const percentiles = {};
  const dist = /Latency Distribution\s*\n((?:\s+\d+(?:\.\d+)?%\s+\S+\s*\n)+)/.exec(output);
  if (dist === null) throw new Error(`wrk: no latency distribution in output:\n${output}`);
  for (const line of dist[1].split("\n")) {
    const m = /^\s*(\d+(?:\.\d+)?)%\s+(\S+)/.exec(line);
    if (m !== null) percentiles[`p${m[1]}`] = parseDuration(m[2]);
  }
  const total = /^\s*(\d+) requests in ([\d.]+\w+)/m.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
    output,
  );
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  return {
    rps: Number(rps[1]),
    p50Ms: percentiles.p50,
    p75Ms: percentiles.p75,
    p90Ms: percentiles.p90,
    p99Ms: percentiles.p99,
    requests: total === null ? null : Number(total[1]),
    errors: {
      connect: socket === null ? 0 : Number(socket[1]),
      read: socket === null ? 0 : Number(socket[2]),
      write: socket === null ? 0 : Number(socket[3]),
      timeout: socket === null ? 0 : Number(socket[4]),
      non2xx3xx: non2xx === null ? 0 : Number(non2xx[1]),
    },
  };
}

/** Median of numbers (mean of the middle two for an even count). */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
