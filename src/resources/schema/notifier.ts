/**
 * The Notifier kind: where events are sent (a signed JSON webhook, or Slack), which events,
 * and for which services. Delivery is from the store's outbox (`src/notify/`).
 */
import { z } from "zod";
import { NOTIFIER_EVENT_NAMES, type NotifierEvent } from "../../core/notify.js";
import { LIMITS } from "../limits.js";
import {
  apiVersion,
  capped,
  exactlyOne,
  httpUrl,
  MetadataSchema,
  maxChars,
  nonEmpty,
  oneOfKeys,
  oneOfMeta,
  str,
  strict,
  stringMap,
} from "./blocks.js";
import { closest, describeValue } from "./messages.js";

/**
 * Headers Turnout sets itself on every notification; a user's header of the same name would
 * break the signature, the idempotency contract or the framing, so it is refused at apply.
 */
export const RESERVED_NOTIFIER_HEADERS = [
  "content-type",
  "content-length",
  "host",
  "transfer-encoding",
  "connection",
  "idempotency-key",
  "x-turnout-signature",
  "x-turnout-event",
] as const;

/** An event name with "did you mean" for typos (`rolloutAbort` -> `rolloutAborted`). */
const notifierEvent = z.string().superRefine((v, ctx) => {
  if ((NOTIFIER_EVENT_NAMES as string[]).includes(v)) return;
  const guess = closest(v, NOTIFIER_EVENT_NAMES);
  ctx.addIssue({
    code: "custom",
    input: v,
    message: `unknown event ${describeValue(v)}; known: ${NOTIFIER_EVENT_NAMES.join(", ")}${guess ? ` (did you mean "${guess}"?)` : ""}`,
  });
}) as unknown as z.ZodType<NotifierEvent, string>;

/** `fraud-model`, `pay-*`, `*`: a Service name, or a glob over names. */
const servicePattern = z
  .string()
  .max(...maxChars("NAME_LENGTH"))
  .regex(/^[a-z0-9*]([a-z0-9*-]{0,61}[a-z0-9*])?$/, {
    error: (iss) =>
      `must be a Service name or a glob over names ("*" matches any run of characters), like "fraud-model" or "pay-*"; got ${describeValue(iss.input)}`,
  });

const secretRef = exactlyOne({
  env: nonEmpty("an environment variable name")
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
      error: (iss) =>
        `must be an environment variable name like TURNOUT_WEBHOOK_SECRET, got ${describeValue(iss.input)}`,
    })
    .describe("An environment variable of `turnout up` that holds the secret."),
  file: nonEmpty("a file path", "PATH_LENGTH").describe(
    "A file `turnout up` can read that holds the secret (surrounding whitespace is ignored).",
  ),
}).describe("Where the shared secret is kept, so that it is not in the resource.");

const secret = str("SECRET_LENGTH")
  .min(LIMITS.SECRET_LENGTH.min, {
    error: (iss) =>
      `must be at least ${LIMITS.SECRET_LENGTH.min} characters (an HMAC key that short can be guessed), got ${typeof iss.input === "string" ? iss.input.length : describeValue(iss.input)}`,
  })
  .describe(
    "The shared secret the signature is made with; secretRef keeps it out of the resource.",
  );

const headers = stringMap('header names must not be empty or contain "="', {
  entries: "NOTIFIER_HEADERS",
  noun: "headers",
  value: "VALUE_LENGTH",
  key: z
    .string()
    .max(...maxChars("NAME_LENGTH"))
    .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, {
      error: (iss) => `must be a header name like "X-Api-Key", got ${describeValue(iss.input)}`,
    }),
}).superRefine((h, ctx) => {
  for (const name of Object.keys(h)) {
    if ((RESERVED_NOTIFIER_HEADERS as readonly string[]).includes(name.toLowerCase()))
      ctx.addIssue({
        code: "custom",
        path: [name],
        input: name,
        message: `is set by Turnout on every notification and cannot be replaced; reserved: ${RESERVED_NOTIFIER_HEADERS.join(", ")}`,
      });
  }
});

const webhookFields = {
  url: httpUrl({ allowQuery: true }).describe("Where the JSON body is POSTed."),
  secret: secret.optional(),
  secretRef: secretRef.optional(),
  headers: headers.optional().describe("Extra request headers (an API key of the receiver)."),
};

const webhook = strict(webhookFields)
  .superRefine(...oneOfKeys(["secret", "secretRef"]))
  .meta(oneOfMeta(["secret", "secretRef"]))
  .describe(
    "A JSON POST signed with HMAC-SHA256 of the body (`X-Turnout-Signature: sha256=<hex>`), with an `Idempotency-Key` header.",
  );

const slack = strict({
  url: httpUrl({ allowQuery: false }).describe(
    "The incoming-webhook URL Slack gave (https://hooks.slack.com/services/...).",
  ),
}).describe("A Slack incoming webhook: a `text` and blocks.");

export const NotifierSchema = strict({
  apiVersion,
  kind: z.literal("Notifier"),
  metadata: MetadataSchema,
  spec: strict({
    webhook: webhook.optional(),
    slack: slack.optional(),
    events: z
      .array(notifierEvent, {
        error: (iss) =>
          `must be a list of events (${NOTIFIER_EVENT_NAMES.join(", ")}); got ${describeValue(iss.input)}`,
      })
      .min(1, {
        error: `must name at least one event: ${NOTIFIER_EVENT_NAMES.join(", ")}`,
      })
      .max(NOTIFIER_EVENT_NAMES.length)
      .superRefine((events, ctx) => {
        const seen = new Map<string, number>();
        events.forEach((e, i) => {
          const first = seen.get(e);
          if (first === undefined) seen.set(e, i);
          else
            ctx.addIssue({
              code: "custom",
              path: [i],
              input: e,
              message: `duplicate event "${e}" (already at events[${first}])`,
            });
        });
      })
      .meta({ items: { enum: NOTIFIER_EVENT_NAMES } })
      .describe(
        "Which events to send: rolloutStarted, paused (waits for a person), rolloutCompleted, rolloutAborted (every rollback, with the verdict's explanation), analysisFailed, experimentConcluded, flagKilled, dataPlane (a service's route table not served, and served again).",
      ),
    services: capped("NOTIFIER_SERVICES", "services", z.array(servicePattern).min(1))
      .optional()
      .describe(
        "Only events of these services (names or globs such as pay-*); absent: every service, and events of none (a person's kill switch).",
      ),
    description: str("TEXT_LENGTH").optional(),
  })
    .superRefine(...oneOfKeys(["webhook", "slack"]))
    .meta(oneOfMeta(["webhook", "slack"])),
}).meta({
  title: "Notifier",
  description:
    "Where events are sent (a signed webhook or Slack), delivered from the store's outbox.",
});
