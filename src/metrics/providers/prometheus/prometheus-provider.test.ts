import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TurnoutError } from "../../../errors.js";
import {
  assertWellFormed,
  conformanceRequest,
  describeProviderConformance,
} from "../conformance.js";
import type { Measurement, PrometheusSourceSpec } from "../provider.js";
import {
  apiError,
  type FakeAnswer,
  type FakePrometheus,
  type FakeQuery,
  startFakePrometheus,
  success,
} from "./fake-prometheus.js";
import { PrometheusProvider } from "./prometheus-provider.js";

const T = 1_700_000_000; // seconds

/** The fake's canned answers, by query text. */
function answers(q: FakeQuery): FakeAnswer {
  const query = q.params.query ?? "";
  const value = /^value_(.+)$/.exec(query);
  if (value) return success("vector", [{ metric: {}, value: [T, value[1]] }]);
  switch (query) {
    case "up":
      return success("vector", [{ metric: { __name__: "up", job: "api" }, value: [T, "1"] }]);
    case "hang":
      return "hang";
    case "fail":
      return apiError(400, "bad_data", 'invalid parameter "query": 1:5: parse error');
    case "empty":
      return success("vector", []);
    case "huge":
      return success(
        "vector",
        Array.from({ length: 2000 }, (_, i) => ({
          metric: { __name__: "x", instance: `host-${i}.example.org:9100` },
          value: [T, "1"],
        })),
      );
    default:
      return apiError(422, "execution", `unexpected query ${query}`);
  }
}

describeProviderConformance("prometheus (fake HTTP API)", async () => {
  const fake = await startFakePrometheus(answers);
  const src = (query: string, extra: Partial<PrometheusSourceSpec> = {}) => ({
    prometheus: { address: fake.address, query, ...extra },
  });
  return {
    provider: new PrometheusProvider(),
    good: { source: src("up") },
    templated: () => src("value_{{args.value}}"),
    hanging: (timeoutSeconds) => ({
      source: src("hang", timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    }),
    failing: { source: src("fail") },
    noData: { source: src("empty") },
    huge: { source: src("huge", { reduce: "sum" }) },
    cleanup: () => fake.close(),
  };
});

describe("PrometheusProvider", () => {
  let fake: FakePrometheus;
  let answer: (q: FakeQuery) => FakeAnswer = answers;
  const provider = new PrometheusProvider();
  before(async () => {
    fake = await startFakePrometheus((q) => answer(q), "/prom");
  });
  after(() => fake.close());

  const measure = async (
    prometheus: Partial<PrometheusSourceSpec>,
    reply?: (q: FakeQuery) => FakeAnswer,
    p: PrometheusProvider = provider,
  ): Promise<Measurement> => {
    answer = reply ?? answers;
    const req = conformanceRequest(
      { source: { prometheus: { address: fake.address, query: "up", ...prometheus } } },
      1_700_000_060_500,
    );
    const m = await p.measure({ ...req, args: { svc: "fraud" } }, new AbortController().signal);
    assertWellFormed(m);
    return m;
  };
  const lastQuery = () => fake.queries[fake.queries.length - 1]!;

  it("instant query: POSTs a form to <address>/api/v1/query at the window's end", async () => {
    const m = await measure({ query: 'sum(rate(x{service="{{args.svc}}"}[1m]))' }, () =>
      success("vector", [{ metric: {}, value: [T, "1"] }]),
    );
    assert.equal(m.value, 1);
    const q = lastQuery();
    assert.equal(q.method, "POST");
    assert.equal(q.path, "/prom/api/v1/query");
    assert.deepEqual(q.params, {
      query: 'sum(rate(x{service="fraud"}[1m]))',
      time: "1700000060.5",
      timeout: "10s",
    });
  });

  it("credentials in the address go as basic auth and are never shown", async () => {
    answer = () => apiError(401, "unauthorized", "bad credentials");
    const address = fake.address.replace("http://", "http://ops:s%40cret@");
    const m = await provider.measure(
      conformanceRequest({ source: { prometheus: { address, query: "up" } } }),
      new AbortController().signal,
    );
    assert.equal(
      lastQuery().headers.authorization,
      `Basic ${Buffer.from("ops:s@cret").toString("base64")}`,
    );
    assert.doesNotMatch(`${m.error} ${JSON.stringify(m.raw)}`, /ops|cret/);
    assert.match(m.error!, /^Prometheus at http:\/\/127\.0\.0\.1:\d+\/prom: HTTP 401/);
  });

  it("a scalar result is its value", async () => {
    const m = await measure({ query: "scalar(x)" }, () => success("scalar", [T, "0.125"]));
    assert.equal(m.value, 0.125);
  });

  it("range query: start/end/step from the window; points become values, the last the value", async () => {
    const m = await measure({ rangeQuery: { step: "15s" }, timeoutSeconds: 2 }, () =>
      success("matrix", [
        {
          metric: { job: "api" },
          values: [
            [T, "1"],
            [T + 15, "2.5"],
            [T + 30, "4"],
          ],
        },
      ]),
    );
    assert.deepEqual(m.values, [1, 2.5, 4]);
    assert.equal(m.value, 4);
    assert.equal(m.sampleSize, 3);
    const q = lastQuery();
    assert.equal(q.path, "/prom/api/v1/query_range");
    assert.deepEqual(q.params, {
      query: "up",
      start: "1700000000.5",
      end: "1700000060.5",
      step: "15",
      timeout: "2s",
    });
  });

  it("several series without reduce: an error that says how to fix it", async () => {
    const two = () =>
      success("vector", [
        { metric: { pod: "b" }, value: [T, "2"] },
        { metric: { pod: "a" }, value: [T, "1"] },
      ]);
    const m = await measure({}, two);
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /2 series .*pod="a".*reduce/);
  });

  it("reduce combines a vector's series; first is the first in label order", async () => {
    const three = () =>
      success("vector", [
        { metric: { pod: "c" }, value: [T, "6"] },
        { metric: { pod: "a" }, value: [T, "1"] },
        { metric: { pod: "b" }, value: [T, "2"] },
      ]);
    const expected = { sum: 9, max: 6, min: 1, avg: 3, first: 1 } as const;
    for (const [reduce, value] of Object.entries(expected)) {
      const m = await measure({ reduce: reduce as PrometheusSourceSpec["reduce"] }, three);
      assert.equal(m.value, value, reduce);
    }
  });

  it("reduce combines a matrix per timestamp", async () => {
    const m = await measure({ rangeQuery: { step: "1m" }, reduce: "sum" }, () =>
      success("matrix", [
        {
          metric: { pod: "a" },
          values: [
            [T, "1"],
            [T + 60, "2"],
          ],
        },
        { metric: { pod: "b" }, values: [[T + 60, "10"]] },
      ]),
    );
    assert.deepEqual(m.values, [1, 12]);
    assert.equal(m.value, 12);
  });

  it("NaN and infinities are errors, naming the value", async () => {
    const nan = await measure({}, () => success("vector", [{ metric: {}, value: [T, "NaN"] }]));
    assert.equal(nan.errorKind, "failed");
    assert.match(nan.error!, /NaN/);
    const inf = await measure({ rangeQuery: { step: "1m" } }, () =>
      success("matrix", [
        {
          metric: {},
          values: [
            [T, "1"],
            [T + 60, "+Inf"],
          ],
        },
      ]),
    );
    assert.match(inf.error!, /\+Inf/);
  });

  it("an empty matrix is no data", async () => {
    const m = await measure({ rangeQuery: { step: "1m" } }, () => success("matrix", []));
    assert.equal(m.errorKind, "noData");
  });

  it("API errors carry the HTTP status, errorType and Prometheus' message", async () => {
    const m = await measure({}, () =>
      apiError(422, "execution", "query processing would load too many samples"),
    );
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /HTTP 422: execution: query processing would load too many samples/);
    assert.match(m.error!, /Prometheus at http:\/\/127\.0\.0\.1:\d+\/prom/);
    const t = await measure({}, () =>
      apiError(503, "timeout", "query timed out in expression evaluation"),
    );
    assert.equal(t.errorKind, "timeout");
  });

  it("a non-JSON answer (a proxy's 502) is an error with the status and the body's start", async () => {
    const m = await measure({}, () => ({ status: 502, text: "<html>Bad Gateway</html>" }));
    assert.match(m.error!, /HTTP 502/);
    assert.deepEqual((m.raw as { body: string }).body, "<html>Bad Gateway</html>");
  });

  it("a wrong address prefix (404 text) is an error", async () => {
    answer = answers;
    const req = conformanceRequest({
      source: { prometheus: { address: fake.address.replace("/prom", "/nope"), query: "up" } },
    });
    const m = await provider.measure(req, new AbortController().signal);
    assert.match(m.error!, /HTTP 404/);
  });

  it("string results are errors", async () => {
    const m = await measure({}, () => success("string", [T, "hello"]));
    assert.match(m.error!, /string result/);
  });

  it("warnings are kept in raw", async () => {
    const m = await measure({}, () =>
      success(
        "vector",
        [{ metric: {}, value: [T, "1"] }],
        ["PromQL info: metric might not be a counter"],
      ),
    );
    assert.deepEqual((m.raw as { warnings: string[] }).warnings, [
      "PromQL info: metric might not be a counter",
    ]);
  });

  it("bounds the response size", async () => {
    const small = new PrometheusProvider({ maxResponseBytes: 1000 });
    const m = await measure({ query: "huge", reduce: "sum" }, answers, small);
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /larger than 1000 bytes/);
  });

  it("an unreachable server is an error with the cause", async () => {
    const closed = await startFakePrometheus(answers);
    await closed.close();
    const m = await provider.measure(
      conformanceRequest({ source: { prometheus: { address: closed.address, query: "up" } } }),
      new AbortController().signal,
    );
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /ECONNREFUSED/);
  });

  it("throws for an unknown reduce, a bad step or a bad timeout", async () => {
    const isInvalid = (path: string) => (err: unknown) =>
      err instanceof TurnoutError && err.details.path === path;
    await assert.rejects(
      measure({ reduce: "median" as never }),
      isInvalid("source.prometheus.reduce"),
    );
    await assert.rejects(
      measure({ rangeQuery: { step: "soon" } }),
      isInvalid("source.prometheus.rangeQuery.step"),
    );
    await assert.rejects(
      measure({ rangeQuery: { step: 0 } }),
      isInvalid("source.prometheus.rangeQuery.step"),
    );
    await assert.rejects(
      measure({ timeoutSeconds: 0 }),
      isInvalid("source.prometheus.timeoutSeconds"),
    );
  });
});
