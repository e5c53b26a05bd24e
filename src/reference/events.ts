/**
 * The table of docs/reference/events.md, from the event catalogue (src/core/events.ts): every
 * event type with who writes it, when, and the fields of its `data`.
 */
import { EVENT_TYPES, EVENTS } from "../core/events.js";
import { cell, code, table } from "./markdown.js";

export function renderEventTable(): string {
  return table(
    ["type", "source", "when", "data"],
    EVENT_TYPES.map((type) => {
      const e = EVENTS[type];
      const fields = Object.entries(e.fields as Record<string, string>)
        .map(([name, what]) => `${code(name)}: ${cell(what)}`)
        .join("<br>");
      const more = e.more === undefined ? "" : `<br>and ${cell(e.more)}`;
      return [code(type), e.source, cell(e.summary), `${fields}${more}`];
    }),
  );
}
