import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TurnoutError } from "../../errors.js";
import type { ProviderSourceSpec } from "./provider.js";
import { renderTemplate, resolveSource, type TemplateVars } from "./template.js";

const vars: TemplateVars = {
  args: { service: "fraud", "p.q": "0.99", empty: "" },
  service: "fraud-model",
  candidate: "v2",
  baseline: "v1",
};

const rejectsWith = (fn: () => unknown, path: string, message: RegExp) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TurnoutError);
    assert.equal(err.code, "TURNOUT_ERR_RESOURCE_INVALID");
    assert.equal(err.details.path, path);
    assert.match(err.message, message);
    return true;
  });

describe("renderTemplate", () => {
  it("replaces args, service, candidate and baseline, with or without spaces", () => {
    assert.equal(
      renderTemplate(
        'x{svc="{{args.service}}",v=~"{{ candidate }}|{{baseline}}"} > {{args.p.q}}{{args.empty}} # {{service}}',
        vars,
        "q",
      ),
      'x{svc="fraud",v=~"v2|v1"} > 0.99 # fraud-model',
    );
  });

  it("leaves text without placeholders alone, single braces included", () => {
    assert.equal(renderTemplate('sum(rate(x{a="b"}[5m]))', vars, "q"), 'sum(rate(x{a="b"}[5m]))');
  });

  it("names every missing argument and the ones given", () => {
    rejectsWith(
      () => renderTemplate("{{args.a}} {{args.b}} {{args.a}}", vars, "source.prometheus.query"),
      "source.prometheus.query",
      /^source\.prometheus\.query: missing arguments "a", "b" \(args given: service, p\.q, empty\)$/,
    );
    rejectsWith(
      () => renderTemplate("{{args.x}}", { ...vars, args: {} }, "q"),
      "q",
      /missing argument "x" \(args given: none\)/,
    );
  });

  it("a {{baseline}} without a baseline is an error", () => {
    const { baseline: _, ...noBaseline } = vars;
    rejectsWith(() => renderTemplate("{{baseline}}", noBaseline, "q"), "q", /there is no baseline/);
  });

  it("an unknown placeholder is an error, not an empty string", () => {
    rejectsWith(
      () => renderTemplate("{{version}} {{args.}}", vars, "q"),
      "q",
      /unknown placeholder \{\{version\}\}; expected \{\{args\.NAME\}\}/,
    );
    rejectsWith(() => renderTemplate("{{args.}}", vars, "q"), "q", /missing argument ""/);
  });

  it("does not read inherited properties as arguments", () => {
    rejectsWith(() => renderTemplate("{{args.constructor}}", vars, "q"), "q", /missing argument/);
  });
});

describe("resolveSource", () => {
  it("renders the templated fields of each kind and leaves the input alone", () => {
    const sources: [ProviderSourceSpec, ProviderSourceSpec][] = [
      [{ builtin: "latency" }, { builtin: "latency" }],
      [
        {
          prometheus: {
            address: "http://p:9090",
            query: "up{s='{{args.service}}'}",
            reduce: "sum",
          },
        },
        { prometheus: { address: "http://p:9090", query: "up{s='fraud'}", reduce: "sum" } },
      ],
      [
        {
          web: {
            url: "http://h/{{candidate}}",
            headers: { a: "{{args.service}}" },
            body: "{{baseline}}",
            jsonPath: "$.x",
          },
        },
        { web: { url: "http://h/v2", headers: { a: "fraud" }, body: "v1", jsonPath: "$.x" } },
      ],
      [
        { command: { command: ["check", "--svc={{service}}"], timeoutSeconds: 3 } },
        { command: { command: ["check", "--svc=fraud-model"], timeoutSeconds: 3 } },
      ],
    ];
    for (const [input, expected] of sources) {
      const copy = structuredClone(input);
      assert.deepEqual(resolveSource(input, vars), expected);
      assert.deepEqual(input, copy);
    }
  });

  it("error paths point at the field", () => {
    rejectsWith(
      () =>
        resolveSource({ web: { url: "http://h/", headers: { "x-key": "{{args.key}}" } } }, vars),
      'source.web.headers["x-key"]',
      /missing argument "key"/,
    );
    rejectsWith(
      () =>
        resolveSource(
          { command: { command: ["a", "{{args.key}}"] } },
          vars,
          "spec.metrics[1].source",
        ),
      "spec.metrics[1].source.command.command[1]",
      /missing argument "key"/,
    );
  });

  it("an unknown kind is an error", () => {
    rejectsWith(
      () => resolveSource({ datadog: { query: "x" } } as never, vars),
      "source",
      /unknown metric source "datadog"/,
    );
  });
});
