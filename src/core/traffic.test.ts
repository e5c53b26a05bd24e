/**
 * What a Service asks of its data plane (`specFeatures`), what each data plane carries
 * (`TRAFFIC_MODES`) and the refusal that joins them (`trafficProblems`), read from the compiled
 * strategy: presets and hand-written steps are judged alike.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServiceSpec, TrafficSpec } from "./model.js";
import { emptyStatus } from "./rollout.js";
import { buildRouteTable } from "./routes.js";
import {
  ROUTE_FEATURES,
  specFeatures,
  TRAFFIC_MODES,
  tableFeatures,
  trafficKindOf,
  trafficModeOf,
  trafficProblems,
} from "./traffic.js";

const base = {
  listen: { host: "127.0.0.1", port: 8080 },
  runtime: { static: { versions: {} } },
  version: "v2",
} as unknown as ServiceSpec;
const spec = (more: Partial<ServiceSpec>): ServiceSpec => ({ ...base, ...more });
const haproxy: TrafficSpec = { haproxy: {} };
const attach: TrafficSpec = { haproxy: { runtimeApi: "unix:/run/h.sock", backend: "b" } };
const shadowStep = { gate: { minPairs: 10 } } as never;
const experiment = { name: "e", metric: "m" } as never;

/** "feature@path" lines. */
const features = (s: ServiceSpec) => specFeatures(s).map((f) => `${f.feature}@${f.path}`);

describe("specFeatures", () => {
  it("a plain service needs only the split", () => {
    assert.deepEqual(features(base), ["split@spec"]);
  });

  it("names each field that asks for a feature", () => {
    const s = spec({
      stickiness: { header: "x-user" },
      routing: { matches: [{ header: { name: "x-beta", equals: "1" }, to: "canary" }] },
      flags: ["dark-mode"],
    } as Partial<ServiceSpec>);
    (s.routing as { versionOverride?: boolean }).versionOverride = true;
    assert.deepEqual(features(s), [
      "split@spec",
      "stickiness@spec.stickiness",
      "matches@spec.routing.matches",
      "versionOverride@spec.routing.versionOverride",
      "edgeFlags@spec.flags",
    ]);
  });

  it("a canary's steps, each at its own index; removing steps ask for nothing", () => {
    const s = spec({
      strategy: {
        canary: {
          steps: [
            { shadow: shadowStep },
            { setWeight: 10 },
            { setHeaderRoute: { match: { header: { name: "x-t", exists: true } } } },
            { setHeaderRoute: {} },
            { setMirrorRoute: { percent: 5 } },
            { setMirrorRoute: {} },
            { experiment },
            { pause: {} },
          ],
        },
      },
    } as Partial<ServiceSpec>);
    assert.deepEqual(features(s), [
      "split@spec",
      "mirror@spec.strategy.canary.steps[0].shadow",
      "matches@spec.strategy.canary.steps[2].setHeaderRoute",
      "mirror@spec.strategy.canary.steps[4].setMirrorRoute",
      "experiment@spec.strategy.canary.steps[6].experiment",
    ]);
  });

  it("presets: the preset is what asks", () => {
    assert.deepEqual(features(spec({ strategy: { shadow: shadowStep } })), [
      "split@spec",
      "mirror@spec.strategy.shadow",
    ]);
    assert.deepEqual(features(spec({ strategy: { abTest: experiment } })), [
      "split@spec",
      "experiment@spec.strategy.abTest",
    ]);
    assert.deepEqual(
      features(
        spec({
          strategy: {
            blueGreen: {
              preview: { port: 9090, match: { header: { name: "x-p", exists: true } } },
            },
          },
        } as Partial<ServiceSpec>),
      ),
      [
        "split@spec",
        "preview@spec.strategy.blueGreen.preview.port",
        "matches@spec.strategy.blueGreen.preview.match",
      ],
    );
    assert.deepEqual(features(spec({ strategy: { blueGreen: {} } } as Partial<ServiceSpec>)), [
      "split@spec",
    ]);
    assert.deepEqual(
      features(spec({ strategy: { rolling: { maxSurge: 1 } } } as Partial<ServiceSpec>)),
      ["split@spec"],
    );
  });
});

describe("what each data plane carries", () => {
  it("the static table", () => {
    assert.deepEqual([...TRAFFIC_MODES.builtin.features], [...ROUTE_FEATURES]);
    assert.deepEqual(
      [...TRAFFIC_MODES.haproxy.features],
      ["split", "stickiness", "matches", "versionOverride", "preview", "experiment"],
    );
    assert.equal(TRAFFIC_MODES.haproxy.features.has("experimentResponseHeaders"), false);
    assert.deepEqual(
      ROUTE_FEATURES.filter((f) => !TRAFFIC_MODES.haproxy.features.has(f)),
      ["mirror", "experimentResponseHeaders", "edgeFlags"],
    );
    assert.deepEqual([...TRAFFIC_MODES.haproxyAttach.features], ["split"]);
  });

  it("the mode and kind spec.traffic selects", () => {
    assert.equal(trafficModeOf(undefined), "builtin");
    assert.equal(trafficModeOf({ builtin: {} }), "builtin");
    assert.equal(trafficModeOf(haproxy), "haproxy");
    assert.equal(trafficModeOf(attach), "haproxyAttach");
    assert.equal(trafficKindOf(attach), "haproxy");
    assert.equal(trafficKindOf(undefined), "builtin");
  });
});

describe("trafficProblems", () => {
  it("the built-in router carries everything", () => {
    const s = spec({
      strategy: { canary: { steps: [{ shadow: shadowStep }, { experiment }] } },
      flags: ["f"],
    } as Partial<ServiceSpec>);
    assert.deepEqual(trafficProblems(s), []);
    assert.deepEqual(trafficProblems({ ...s, traffic: { builtin: {} } }), []);
  });

  it("a shadow preset on haproxy: the feature, the path and the provider", () => {
    const [p, ...rest] = trafficProblems(
      spec({ strategy: { shadow: shadowStep }, traffic: haproxy }),
    );
    assert.deepEqual(rest, []);
    assert.equal(p?.feature, "mirror");
    assert.equal(p?.path, "spec.strategy.shadow");
    assert.equal(
      p?.message,
      "spec.strategy.shadow needs mirrored traffic, which the haproxy provider does not carry; use the built-in router (remove spec.traffic) or another strategy",
    );
  });

  it("an experiment's response-header metric on haproxy: the field, the feature, the provider", () => {
    const ab = {
      name: "ranker",
      assignment: { header: "x-user" },
      metrics: [
        { name: "clicks", kind: "binomial", role: "goal", source: { event: "click" } },
        {
          name: "score",
          kind: "ratio",
          role: "guardrail",
          source: { event: "score" },
          denominator: { responseHeader: "x-items" },
        },
        { name: "conf", kind: "mean", role: "goal", source: { responseHeader: "x-confidence" } },
      ],
    } as never;
    const canary = spec({
      strategy: { canary: { steps: [{ setWeight: 10 }, { experiment: ab }] } },
      traffic: haproxy,
    } as Partial<ServiceSpec>);
    assert.deepEqual(features(canary), [
      "split@spec",
      "experiment@spec.strategy.canary.steps[1].experiment",
      "experimentResponseHeaders@spec.strategy.canary.steps[1].experiment.metrics[1].denominator.responseHeader",
      "experimentResponseHeaders@spec.strategy.canary.steps[1].experiment.metrics[2].source.responseHeader",
    ]);
    const problems = trafficProblems(canary);
    assert.deepEqual(
      problems.map((p) => p.message),
      [
        "spec.strategy.canary.steps[1].experiment.metrics[1].denominator.responseHeader needs A/B metrics read from response headers, which the haproxy provider does not carry; use the built-in router (remove spec.traffic) or an event source (POST /api/v1/events) for that metric",
        "spec.strategy.canary.steps[1].experiment.metrics[2].source.responseHeader needs A/B metrics read from response headers, which the haproxy provider does not carry; use the built-in router (remove spec.traffic) or an event source (POST /api/v1/events) for that metric",
      ],
    );
    // The preset: the field below the preset; the built-in router carries it.
    const preset = spec({ strategy: { abTest: ab }, traffic: haproxy } as Partial<ServiceSpec>);
    assert.deepEqual(
      trafficProblems(preset).map((p) => p.path),
      [
        "spec.strategy.abTest.metrics[1].denominator.responseHeader",
        "spec.strategy.abTest.metrics[2].source.responseHeader",
      ],
    );
    assert.deepEqual(trafficProblems({ ...preset, traffic: undefined } as ServiceSpec), []);
    // Event metrics only: HAProxy carries the experiment.
    const events = spec({
      strategy: {
        abTest: {
          assignment: { header: "x-user" },
          metrics: [{ name: "c", kind: "binomial", role: "goal", source: { event: "c" } }],
        },
      },
      traffic: haproxy,
    } as unknown as Partial<ServiceSpec>);
    assert.deepEqual(trafficProblems(events), []);
    // A table that records response headers uses the feature.
    assert.ok(
      tableFeatures({
        service: "s",
        revision: 1,
        listen: { host: "127.0.0.1", port: 1 },
        hashVersion: 1,
        backends: [],
        updatedAt: 0,
        experiment: {
          name: "x",
          arms: [],
          key: { header: "u" },
          salt: "x",
          responseHeaders: ["x-confidence"],
        },
      }).includes("experimentResponseHeaders"),
    );
  });

  it("edge flags on haproxy: remove the field, not the strategy", () => {
    assert.deepEqual(
      trafficProblems(spec({ flags: ["f"], traffic: haproxy })).map((p) => p.message),
      [
        "spec.flags needs flags evaluated at the edge, which the haproxy provider does not carry; use the built-in router (remove spec.traffic) or remove spec.flags",
      ],
    );
  });

  it("attach mode carries the split only, and says a managed HAProxy would do", () => {
    const s = spec({
      stickiness: { header: "x-user" },
      strategy: { canary: { steps: [{ setWeight: 10 }, { shadow: shadowStep }] } },
      traffic: attach,
    } as Partial<ServiceSpec>);
    assert.deepEqual(
      trafficProblems(s).map((p) => p.message),
      [
        "spec.stickiness needs sticky assignment, which the haproxy provider in attach mode (runtimeApi and backend) does not carry; use an HAProxy that Turnout runs (remove runtimeApi and backend) or the built-in router (remove spec.traffic) or remove spec.stickiness",
        "spec.strategy.canary.steps[1].shadow needs mirrored traffic, which the haproxy provider in attach mode (runtimeApi and backend) does not carry; use the built-in router (remove spec.traffic) or another strategy",
      ],
    );
    // A plain weighted canary fits attach mode.
    assert.deepEqual(
      trafficProblems(
        spec({ strategy: { canary: { steps: [{ setWeight: 10 }] } }, traffic: attach }),
      ),
      [],
    );
  });

  it("agrees with the tables the service produces: a table never uses a feature the spec did not declare", () => {
    // The route table of a canary with a header route, stickiness and edge flags, built as the
    // controller does: its features are among the spec's.
    const s = spec({
      stickiness: { header: "x-user" },
      flags: ["f"],
      strategy: {
        canary: {
          steps: [{ setHeaderRoute: { match: { header: { name: "x-t", exists: true } } } }],
        },
      },
      traffic: haproxy,
    } as Partial<ServiceSpec>);
    const status = {
      ...emptyStatus(0),
      stableVersion: "v1",
      canaryVersion: "v2",
      headerRoute: { header: { name: "x-t", exists: true } },
    };
    const table = buildRouteTable({
      service: "web",
      spec: s,
      status: status as never,
      weights: [
        { version: "v1", weight: 90 },
        { version: "v2", weight: 10 },
      ],
      endpoints: (v) => [`http://127.0.0.1:1/${v}`],
      now: 0,
    });
    const declared = new Set(specFeatures(s).map((f) => f.feature));
    for (const f of tableFeatures({ ...table, revision: 1 }))
      assert.ok(declared.has(f), `${f} in the table but not in specFeatures`);
    assert.deepEqual(tableFeatures({ ...table, revision: 1 }), [
      "split",
      "stickiness",
      "matches",
      "edgeFlags",
    ]);
  });
});

describe("buildRouteTable copies spec.traffic", () => {
  const build = (s: ServiceSpec) =>
    buildRouteTable({
      service: "web",
      spec: s,
      status: { ...emptyStatus(0), stableVersion: "v1" },
      weights: [{ version: "v1", weight: 100 }],
      endpoints: () => ["http://127.0.0.1:1"],
      now: 0,
    });

  it("only when set, as a copy", () => {
    assert.equal("traffic" in build(base), false);
    const s = spec({ traffic: attach });
    const t = build(s);
    assert.deepEqual(t.traffic, attach);
    assert.notEqual(t.traffic, s.traffic);
  });
});
