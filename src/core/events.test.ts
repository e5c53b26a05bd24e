import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { EVENT_TYPES, EVENTS, type EventType, eventDraft, isEvent } from "./events.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The rows of docs/reference/events.md's table: type -> source, summary, field names. */
function documented(): Map<string, { source: string; summary: string; fields: string[] }> {
  const doc = readFileSync(join(ROOT, "docs/reference/events.md"), "utf8");
  const rows = new Map<string, { source: string; summary: string; fields: string[] }>();
  for (const m of doc.matchAll(/^\|\s*`([A-Za-z]+)`\s*\|\s*(\w+)\s*\|(.*)\|(.*)\|\s*$/gm)) {
    const fields = [...m[4]!.matchAll(/(?:^|<br>)\s*`(\w+)`:/g)].map((f) => f[1]!);
    rows.set(m[1]!, { source: m[2]!, summary: m[3]!.trim().replaceAll("\\|", "|"), fields });
  }
  return rows;
}

test("docs/reference/events.md documents every catalogued event with its source, summary and fields", () => {
  const rows = documented();
  for (const type of EVENT_TYPES) {
    const row = rows.get(type);
    const e = EVENTS[type];
    assert.ok(
      row,
      `${type} is catalogued but not documented in docs/reference/events.md (npm run docs:reference)`,
    );
    assert.equal(row.source, e.source, `${type}: source in docs/reference/events.md`);
    assert.equal(row.summary, e.summary, `${type}: summary in docs/reference/events.md`);
    assert.deepEqual(
      row.fields,
      Object.keys(e.fields),
      `${type}: data fields in docs/reference/events.md`,
    );
  }
});

test("every event type documented in docs/reference/events.md is catalogued", () => {
  for (const type of documented().keys())
    assert.ok(type in EVENTS, `${type} is documented but not in src/core/events.ts`);
});

test("event types are PascalCase and summaries are one sentence", () => {
  for (const type of EVENT_TYPES) {
    assert.match(type, /^[A-Z][A-Za-z]+$/);
    const { summary } = EVENTS[type];
    assert.match(summary, /^[A-Z].*\.$/, `${type}: summary`);
    assert.ok(!summary.includes("\n"), `${type}: summary is one line`);
  }
});

// Where code names an event type by a string: emitting (`emit(w, "X"`, `ctx.emit("X"`), an
// event draft (`type: "X", actor:`), a comparison (`e.type === "X"`) or a query
// (`.where("type", "=", "X")`). Types names in these places that are not events, by file.
const NAMED_BY_STRING = [
  /\bemit\(\s*(?:w,\s*)?"([A-Z][A-Za-z]+)"/g,
  /\btype:\s*"([A-Z][A-Za-z]+)",\s*actor:/g,
  /\.type\s*[!=]==?\s*"([A-Z][A-Za-z]+)"/g,
  /\(\s*"type",\s*"=",\s*"([A-Z][A-Za-z]+)"\s*\)/g,
];
const NOT_EVENTS: Record<string, { why: string; files: string[] }> = {
  Tick: {
    why: "a made-up event that the store's concurrency test writes from its workers",
    files: ["src/store/sqlite/concurrency-worker.ts", "src/store/sqlite/sqlite-store.test.ts"],
  },
};

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== "node_modules" && !name.startsWith(".")) sourceFiles(p, out);
    } else if (/\.tsx?$/.test(name)) out.push(p);
  }
  return out;
}

test("every event type named by a string in src/ and web/src/ is catalogued", () => {
  const files = [...sourceFiles(join(ROOT, "src")), ...sourceFiles(join(ROOT, "web/src"))];
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const file of files) {
    const rel = relative(ROOT, file);
    const text = readFileSync(file, "utf8");
    for (const re of NAMED_BY_STRING) {
      for (const m of text.matchAll(re)) {
        const type = m[1]!;
        seen.add(type);
        if (type in EVENTS) continue;
        if (NOT_EVENTS[type]?.files.includes(rel)) continue;
        const line = text.slice(0, m.index).split("\n").length;
        problems.push(
          `${rel}:${line}: "${type}" is not in the event catalogue (src/core/events.ts)`,
        );
      }
    }
  }
  assert.deepEqual(problems, []);
  // The scan finds the emit sites at all (a changed call shape would make it find nothing).
  for (const type of ["RolloutStarted", "WeightChanged", "ResourceApplied", "ControllerStarted"])
    assert.ok(seen.has(type), `the scan found no use of ${type}`);
});

test("isEvent narrows an event to its type's data", () => {
  const e = eventDraft({
    service: "shop",
    type: "WeightChanged",
    actor: "controller",
    message: "v2 weight 0% -> 20%",
    data: { version: "v2", from: 0, to: 20, step: 0 },
    time: 1,
  });
  assert.equal(isEvent(e, "WeightChanged") ? e.data.to : null, 20);
  assert.equal(isEvent(e, "RolloutStarted"), false);
  const types: EventType[] = EVENT_TYPES;
  assert.equal(new Set(types).size, types.length);
});
