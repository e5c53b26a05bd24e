import assert from "node:assert/strict";
import { test } from "node:test";
import { LIMITS } from "../limits.js";
import { formatPath, validateDocument } from "./index.js";

const notifier = (spec: unknown) => ({
  apiVersion: "turnout.dev/v1",
  kind: "Notifier",
  metadata: { name: "ops" },
  spec,
});
const problems = (spec: unknown) =>
  validateDocument(notifier(spec)).issues.map((i) => `${formatPath(i.path)}: ${i.message}`);

const SECRET = "0123456789abcdef";

test("valid Notifiers: a webhook with a secret or a secretRef, Slack, a services selector", () => {
  for (const spec of [
    { webhook: { url: "https://h.example/x?t=1", secret: SECRET }, events: ["rolloutStarted"] },
    {
      webhook: {
        url: "http://127.0.0.1:9000/hook",
        secretRef: { env: "HOOK_SECRET" },
        headers: { "X-Api-Key": "k" },
      },
      events: ["paused", "rolloutAborted", "flagKilled"],
      services: ["fraud-model", "pay-*", "*"],
    },
    {
      webhook: { url: "https://h.example/", secretRef: { file: "/etc/turnout/hook" } },
      events: ["analysisFailed"],
    },
    {
      slack: { url: "https://hooks.slack.com/services/T0/B0/X" },
      events: ["rolloutCompleted", "experimentConcluded"],
      description: "chat",
    },
  ])
    assert.deepEqual(problems(spec), [], JSON.stringify(spec));
  const r = validateDocument(
    notifier({ slack: { url: "https://x.example/" }, events: ["paused"] }),
  );
  assert.equal(r.resource?.kind, "Notifier");
});

test("each problem at its exact path, with did-you-mean for events and fields", () => {
  assert.deepEqual(
    problems({ webhook: { url: "http://x/y", secret: "short" }, events: ["rolloutAbort"] }),
    [
      `spec.webhook.secret: must be at least ${LIMITS.SECRET_LENGTH.min} characters (an HMAC key that short can be guessed), got 5`,
      'spec.events[0]: unknown event "rolloutAbort"; known: rolloutStarted, paused, rolloutCompleted, rolloutAborted, analysisFailed, experimentConcluded, flagKilled, dataPlane (did you mean "rolloutAborted"?)',
    ],
  );
  assert.deepEqual(problems({ webhook: { url: "http://x/y" }, events: [] }), [
    'spec.webhook: must have exactly one of "secret" or "secretRef", got none',
    "spec.events: must name at least one event: rolloutStarted, paused, rolloutCompleted, rolloutAborted, analysisFailed, experimentConcluded, flagKilled, dataPlane",
  ]);
  assert.deepEqual(
    problems({
      webhook: {
        url: "http://x/y",
        secretRef: { env: "S" },
        headers: { "X-Turnout-Signature": "a" },
      },
      events: ["paused", "paused"],
      services: ["Pay_*"],
    }),
    [
      "spec.webhook.headers.X-Turnout-Signature: is set by Turnout on every notification and cannot be replaced; reserved: content-type, content-length, host, transfer-encoding, connection, idempotency-key, x-turnout-signature, x-turnout-event",
      'spec.events[1]: duplicate event "paused" (already at events[0])',
      'spec.services[0]: must be a Service name or a glob over names ("*" matches any run of characters), like "fraud-model" or "pay-*"; got "Pay_*"',
    ],
  );
  assert.deepEqual(
    problems({
      slack: { url: "ftp://x" },
      webhook: { url: "http://x", secret: SECRET },
      events: ["flagKilled"],
    }),
    [
      'spec.slack.url: must be an absolute http:// or https:// URL without query or fragment, got "ftp://x" (scheme "ftp")',
      'spec: must have exactly one of "webhook" or "slack", got 2: "webhook" and "slack"',
    ],
  );
  assert.deepEqual(problems({ slak: { url: "http://x" }, events: ["flagKilled"] }), [
    'spec.slak: unknown field "slak"; allowed: webhook, slack, events, services, description (did you mean "slack"?)',
  ]);
  assert.deepEqual(
    problems({
      webhook: { url: "http://x", secretRef: { env: "A", file: "/f" } },
      events: ["paused"],
    }),
    ['spec.webhook.secretRef: must have exactly one of "env" or "file", got 2: "env" and "file"'],
  );
  assert.deepEqual(
    problems({ webhook: { url: "http://x", secretRef: { env: "1BAD" } }, events: ["paused"] }),
    [
      'spec.webhook.secretRef.env: must be an environment variable name like TURNOUT_WEBHOOK_SECRET, got "1BAD"',
    ],
  );
});

test("the services selector is bounded by NOTIFIER_SERVICES", () => {
  const max = LIMITS.NOTIFIER_SERVICES.max;
  const spec = (n: number) => ({
    slack: { url: "https://x.example/" },
    events: ["paused"],
    services: Array.from({ length: n }, (_, i) => `svc-${i}`),
  });
  assert.deepEqual(problems(spec(max)), []);
  assert.deepEqual(problems(spec(max + 1)), [
    `spec.services: must have at most ${max} services, got ${max + 1}`,
  ]);
});
