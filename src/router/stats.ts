/**
 * Per-version request counters (measurements v1). One `VersionCounters` object per service and
 * version lives for as long as the service has a table; compiled tables hold a direct reference
 * to it, so recording a response is a few integer increments on the hot path, with no lookup
 * and no allocation. A proper latency histogram replaces `latencyMs*` in a later issue.
 */

/** A snapshot of one version's counters, as `Router.stats()` returns it. */
export interface VersionStats {
  version: string;
  /** Requests routed to this version (counted when the version is chosen). */
  requests: number;
  /** Responses sent to clients, by status class; includes the router's own 502/504. */
  status: { "2xx": number; "3xx": number; "4xx": number; "5xx": number };
  /** Upstream failures: refused or reset connections, timeouts, broken response streams. */
  upstreamErrors: number;
  latencyMsSum: number;
  /** Number of responses whose latency is in `latencyMsSum` (for the mean). */
  latencyCount: number;
  latencyMsMax: number;
}

export class VersionCounters {
  requests = 0;
  s2xx = 0;
  s3xx = 0;
  s4xx = 0;
  s5xx = 0;
  upstreamErrors = 0;
  latencyMsSum = 0;
  latencyCount = 0;
  latencyMsMax = 0;

  constructor(readonly version: string) {}

  /** Counts one response sent to the client and its latency (request start to last byte). */
  recordResponse(statusCode: number, latencyMs: number): void {
    if (statusCode >= 500) this.s5xx++;
    else if (statusCode >= 400) this.s4xx++;
    else if (statusCode >= 300) this.s3xx++;
    else if (statusCode >= 200) this.s2xx++;
    this.latencyMsSum += latencyMs;
    this.latencyCount++;
    if (latencyMs > this.latencyMsMax) this.latencyMsMax = latencyMs;
  }

  snapshot(): VersionStats {
    return {
      version: this.version,
      requests: this.requests,
      status: { "2xx": this.s2xx, "3xx": this.s3xx, "4xx": this.s4xx, "5xx": this.s5xx },
      upstreamErrors: this.upstreamErrors,
      latencyMsSum: this.latencyMsSum,
      latencyCount: this.latencyCount,
      latencyMsMax: this.latencyMsMax,
    };
  }
}
