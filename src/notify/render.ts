/**
 * What goes on the wire for a notification (pure): the webhook's signed JSON, or Slack's
 * incoming-webhook message (`text`, the fallback for notifications and old clients, plus
 * blocks). The signature is HMAC-SHA256 over the exact body bytes with the shared secret,
 * sent as `X-Turnout-Signature: sha256=<hex>`, as GitHub does, so receivers can reuse their
 * GitHub webhook check.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Notification } from "../store/outbox-store.js";

/** The version of the webhook body's shape; a receiver can check it. */
export const WEBHOOK_SCHEMA = "turnout.dev/notification/v1";

export const SIGNATURE_HEADER = "x-turnout-signature";
export const IDEMPOTENCY_HEADER = "idempotency-key";
export const EVENT_HEADER = "x-turnout-event";

export interface WireRequest {
  body: string;
  headers: Record<string, string>;
}

/** `sha256=<hex>` of HMAC-SHA256(secret, body). */
export function sign(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/**
 * Checks a signature header against the body, in constant time: what a receiver written in
 * JavaScript does with each request (exported for receivers and tests).
 */
export function verifySignature(secret: string, body: string, header: string | undefined): boolean {
  if (header === undefined) return false;
  const want = Buffer.from(sign(secret, body));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** The webhook body: the notification as stored, under a schema tag. */
export function webhookRequest(
  n: Notification,
  secret: string,
  headers: Record<string, string> = {},
): WireRequest {
  const body = JSON.stringify({
    schema: WEBHOOK_SCHEMA,
    idempotencyKey: n.idempotencyKey,
    notifier: n.notifier,
    subscription: n.subscription,
    service: n.event.service === "" ? null : n.event.service,
    time: new Date(n.event.time).toISOString(),
    summary: n.event.message,
    explanation: n.explanation,
    ...(n.verdicts ? { verdicts: n.verdicts } : {}),
    event: n.event,
  });
  return {
    body,
    headers: {
      ...headers,
      "content-type": "application/json",
      [SIGNATURE_HEADER]: sign(secret, body),
      [IDEMPOTENCY_HEADER]: n.idempotencyKey,
      [EVENT_HEADER]: n.event.type,
    },
  };
}

const TITLES: Record<Notification["subscription"], string> = {
  rolloutStarted: "Rollout started",
  paused: "Waiting for a person",
  rolloutCompleted: "Rollout completed",
  rolloutAborted: "Rolled back",
  analysisFailed: "Analysis failed",
  experimentConcluded: "Experiment concluded",
  flagKilled: "Flag killed",
  // Not served, or served again: the event's message says which.
  dataPlane: "Data plane",
};

const ICONS: Record<Notification["subscription"], string> = {
  rolloutStarted: ":arrow_forward:",
  paused: ":double_vertical_bar:",
  rolloutCompleted: ":white_check_mark:",
  rolloutAborted: ":rewind:",
  analysisFailed: ":x:",
  experimentConcluded: ":bar_chart:",
  flagKilled: ":no_entry:",
  dataPlane: ":warning:",
};

/** Slack's mrkdwn treats &, < and > as markup; everything else is literal text. */
function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Slack caps a section's text at 3000 characters. */
const SLACK_SECTION_MAX = 3000;

function cut(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** A Slack incoming-webhook message: a plain `text` and the same with more detail in blocks. */
export function slackRequest(n: Notification): WireRequest {
  const title = TITLES[n.subscription];
  const where = n.event.service === "" ? "" : ` ${n.event.service}`;
  const text = `${title}${where}: ${n.event.message}`;
  const detail =
    n.verdicts && n.verdicts.length > 0
      ? `\n${n.verdicts.map((v) => `• *${esc(v.metric)}*: ${esc(v.explanation)}`).join("\n")}`
      : "";
  const blocks = [
    {
      type: "section",
      text: {
        type: "mrkdwn",
        text: cut(
          `${ICONS[n.subscription]} *${title}${esc(where)}*\n${esc(n.event.message)}${detail}`,
          SLACK_SECTION_MAX,
        ),
      },
    },
    {
      type: "context",
      elements: [
        {
          type: "mrkdwn",
          text: esc(
            `${n.event.type} · by ${n.event.actor} · ${new Date(n.event.time).toISOString()} · notifier ${n.notifier}`,
          ),
        },
      ],
    },
  ];
  const body = JSON.stringify({ text: cut(text, SLACK_SECTION_MAX), blocks });
  return {
    body,
    headers: {
      "content-type": "application/json",
      [IDEMPOTENCY_HEADER]: n.idempotencyKey,
      [EVENT_HEADER]: n.event.type,
    },
  };
}
