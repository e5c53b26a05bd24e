/** `turnout get notifiers [NAME]`: where each Notifier sends, and how its deliveries stand. */
import { stringify as toYaml } from "yaml";
import type { Client } from "../cli/client.js";
import { dim, red, yellow } from "../cli/color.js";
import { table } from "../cli/format.js";
import type { NotifierView } from "./api.js";

type Output = "text" | "json" | "yaml";

function print(data: unknown, output: Output, human: () => string): void {
  if (output === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (output === "yaml") process.stdout.write(toYaml(data));
  else process.stdout.write(`${human()}\n`);
}

function lastError(v: NotifierView): string {
  const e = v.delivery.lastError;
  if (e === null) return "-";
  const text = `${e.state === "failed" ? "given up" : "retrying"}: ${e.error}`;
  return e.state === "failed" ? red(text) : yellow(text);
}

type Recent = {
  service: string | null;
  event: string;
  state: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: number;
};

export async function getNotifiers(c: Client, name: string | undefined, output: Output) {
  if (name !== undefined) {
    const v = await c.call<NotifierView & { recent: Recent[] }>(
      "GET",
      `/api/v1/notifiers/${encodeURIComponent(name)}`,
    );
    print(v, output, () =>
      [
        `${v.name}  ${dim(`${v.target} ${v.url}`)}`,
        `events:   ${v.events.join(", ")}`,
        `services: ${v.services?.join(", ") ?? "all"}`,
        ...(v.secret ? [`secret:   ${v.secret}`] : []),
        `delivery: ${v.delivery.pending} pending, ${v.delivery.delivered} delivered, ${v.delivery.failed} given up`,
        `last error: ${lastError(v)}`,
        "",
        v.recent.length === 0
          ? dim("nothing sent yet")
          : table([
              ["TIME", "SERVICE", "EVENT", "STATE", "ATTEMPTS", "LAST"],
              ...v.recent.map((r) => [
                new Date(r.createdAt).toISOString(),
                r.service ?? "-",
                r.event,
                r.state,
                String(r.attempts),
                r.lastError ?? (r.lastStatus !== null ? `HTTP ${r.lastStatus}` : "-"),
              ]),
            ]),
      ].join("\n"),
    );
    return;
  }
  const res = await c.call<{ items: NotifierView[] }>("GET", "/api/v1/notifiers");
  print(res, output, () =>
    res.items.length === 0
      ? dim("no notifiers")
      : table([
          ["NAME", "TARGET", "EVENTS", "SERVICES", "PENDING", "DELIVERED", "FAILED", "LAST ERROR"],
          ...res.items.map((v) => [
            v.name,
            v.target,
            v.events.join(","),
            v.services?.join(",") ?? "all",
            String(v.delivery.pending),
            String(v.delivery.delivered),
            String(v.delivery.failed),
            lastError(v),
          ]),
        ]),
  );
}
