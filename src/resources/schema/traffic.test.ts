import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPath, validateDocument } from "./index.js";

const service = (traffic: unknown) => ({
  apiVersion: "turnout.dev/v1",
  kind: "Service",
  metadata: { name: "svc" },
  spec: {
    listen: { port: 8080 },
    runtime: { process: { command: ["node", "server.mjs"] } },
    version: "v1",
    traffic,
  },
});

/** "path: message" lines, the way people read them. */
const problems = (traffic: unknown) =>
  validateDocument(service(traffic)).issues.map((i) => `${formatPath(i.path)}: ${i.message}`);

test("spec.traffic: the accepted forms, kept as written", () => {
  for (const ok of [
    { builtin: {} },
    { haproxy: {} },
    { haproxy: { binary: "/usr/sbin/haproxy" } },
    { haproxy: { protocol: "grpc" } },
    { haproxy: { runtimeApi: "unix:/run/haproxy/admin.sock", backend: "fraud_model" } },
  ]) {
    const r = validateDocument(service(ok));
    assert.deepEqual(r.issues, [], JSON.stringify(ok));
    assert.deepEqual(r.resource?.kind === "Service" ? r.resource.spec.traffic : null, ok);
  }
  const absent = validateDocument({ ...service(undefined) });
  assert.equal(absent.resource?.kind === "Service" && absent.resource.spec.traffic, undefined);
});

test("spec.traffic: exactly one provider key, unknown ones named", () => {
  assert.deepEqual(problems({}), [
    'spec.traffic: must have exactly one of "builtin" or "haproxy", got an empty object',
  ]);
  assert.deepEqual(problems({ builtin: {}, haproxy: {} }), [
    'spec.traffic: must have exactly one of "builtin" or "haproxy", got 2: "builtin" and "haproxy"',
  ]);
  assert.deepEqual(problems({ haproxxy: {} }), [
    'spec.traffic.haproxxy: unknown traffic provider "haproxxy"; allowed: builtin, haproxy (did you mean "haproxy"?)',
  ]);
  assert.deepEqual(problems({ builtin: { fast: true } }), [
    'spec.traffic.builtin.fast: unknown field "fast": this takes no fields, write {}',
  ]);
  assert.deepEqual(problems("haproxy"), ['spec.traffic: must be an object, got "haproxy"']);
});

test("spec.traffic.haproxy: fields, bounds and attach mode's pair", () => {
  assert.deepEqual(problems({ haproxy: { runtimeApi: "unix:/run/h.sock" } }), [
    "spec.traffic.haproxy.backend: is required with runtimeApi (attach mode changes one named backend of that HAProxy)",
  ]);
  assert.deepEqual(problems({ haproxy: { backend: "b" } }), [
    'spec.traffic.haproxy.runtimeApi: is required with backend (the runtime API socket of the HAProxy that has it, like "unix:/run/haproxy/admin.sock")',
  ]);
  assert.deepEqual(
    problems({ haproxy: { runtimeApi: "unix:/s", backend: "b", binary: "/usr/sbin/haproxy" } }),
    [
      "spec.traffic.haproxy.binary: applies only to an HAProxy that Turnout runs; with runtimeApi, Turnout attaches to one that runs already (remove binary, or runtimeApi and backend)",
    ],
  );
  assert.deepEqual(problems({ haproxy: { runtimeApi: "/run/h.sock", backend: "b" } }), [
    'spec.traffic.haproxy.runtimeApi: must be "unix:" and the absolute path of HAProxy\'s runtime API socket, like "unix:/run/haproxy/admin.sock", got "/run/h.sock"',
  ]);
  assert.deepEqual(problems({ haproxy: { runtimeApi: "unix:/s", backend: "a b" } }), [
    'spec.traffic.haproxy.backend: must be an HAProxy backend name (letters, digits, "-", "_", "." and ":") like "fraud_model", got "a b"',
  ]);
  assert.deepEqual(problems({ haproxy: { binary: "" } }), [
    "spec.traffic.haproxy.binary: must be a non-empty path, got an empty string",
  ]);
  assert.deepEqual(problems({ haproxy: { runtimeApi: "unix:/s", backend: "x".repeat(254) } }), [
    "spec.traffic.haproxy.backend: must be at most 253 characters, got 254",
  ]);
  assert.deepEqual(problems({ haproxy: { binray: "/bin/haproxy" } }), [
    'spec.traffic.haproxy.binray: unknown field "binray"; allowed: binary, runtimeApi, protocol, backend (did you mean "binary"?)',
  ]);
  assert.deepEqual(
    problems({ haproxy: { runtimeApi: "unix:/s", backend: "b", protocol: "grpc" } }),
    [
      "spec.traffic.haproxy.protocol: applies only to an HAProxy that Turnout runs; an attached HAProxy's backend speaks what its owner configured (remove protocol)",
    ],
  );
  const [bad] = problems({ haproxy: { protocol: "http2" } });
  assert.match(bad ?? "", /^spec\.traffic\.haproxy\.protocol: .*"grpc"/);
});
