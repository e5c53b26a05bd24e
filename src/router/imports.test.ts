/**
 * The files of src/router/ (tests aside) import each other without a cycle: shared types live
 * in types.ts, features are listed in features.ts, and nothing imports back up. Type-only
 * imports count too: a cycle of types is still a knot a reader has to untie.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const DIR = dirname(fileURLToPath(import.meta.url));

/** `from "./x.js"` of every import and re-export statement (multi-line ones included). */
const FROM = /^\s*(?:import|export)\s[^;]*?\sfrom\s+"(\.\/[^"]+)"/gms;

/** The sibling files a file imports, by file name. */
export function siblingImports(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(FROM)) {
    const spec = m[1]!.slice(2);
    if (spec.includes("/")) continue; // a subfolder (worker/, testing/) is not a sibling
    out.push(spec.replace(/\.js$/, ".ts"));
  }
  return out;
}

/** One cycle in the graph, as a path that starts and ends at the same file; null when none. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | null {
  const state = new Map<string, 1 | 2>(); // 1 on the current path, 2 done
  const path: string[] = [];
  const visit = (f: string): string[] | null => {
    if (state.get(f) === 2) return null;
    if (state.get(f) === 1) return [...path.slice(path.indexOf(f)), f];
    state.set(f, 1);
    path.push(f);
    for (const g of graph.get(f) ?? []) {
      if (!graph.has(g)) continue;
      const c = visit(g);
      if (c !== null) return c;
    }
    path.pop();
    state.set(f, 2);
    return null;
  };
  for (const f of [...graph.keys()].sort()) {
    const c = visit(f);
    if (c !== null) return c;
  }
  return null;
}

test("the parser reads single-line, multi-line, type-only and re-export statements", () => {
  const src = [
    'import { a } from "./a.js";',
    "import {",
    "  b,",
    "  type C,",
    '} from "./b.js";',
    'import type { D } from "./d.js";',
    'export { e } from "./e.js";',
    'export type { F } from "./f.js";',
    'import { g } from "../core/g.js";',
    'import { h } from "./worker/h.js";',
    'import { i } from "node:http";',
  ].join("\n");
  assert.deepEqual(siblingImports(src), ["a.ts", "b.ts", "d.ts", "e.ts", "f.ts"]);
});

test("findCycle finds a cycle and accepts a DAG", () => {
  const dag = new Map([
    ["a.ts", ["b.ts", "c.ts"]],
    ["b.ts", ["c.ts"]],
    ["c.ts", []],
  ]);
  assert.equal(findCycle(dag), null);
  const knot = new Map([
    ["a.ts", ["b.ts"]],
    ["b.ts", ["c.ts"]],
    ["c.ts", ["a.ts"]],
  ]);
  assert.deepEqual(findCycle(knot), ["a.ts", "b.ts", "c.ts", "a.ts"]);
});

test("src/router/*.ts (tests aside) import each other without a cycle", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
  assert.ok(files.length > 10, `found ${files.length} files in ${DIR}`);
  const graph = new Map<string, string[]>();
  for (const f of files) graph.set(f, siblingImports(readFileSync(join(DIR, f), "utf8")));
  // The parser must see the imports that are there, or an empty graph would pass.
  assert.ok(graph.get("proxy.ts")!.includes("types.ts"), "proxy.ts imports types.ts");
  const cycle = findCycle(graph);
  assert.equal(cycle, null, `import cycle: ${cycle?.join(" -> ")}`);
});

test("the layers below the router (core, store, metrics) do not import it (tests aside)", () => {
  const src = join(DIR, "..");
  const offenders: string[] = [];
  for (const layer of ["core", "store", "metrics"]) {
    for (const f of readdirSync(join(src, layer), { recursive: true }) as string[]) {
      if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
      const text = readFileSync(join(src, layer, f), "utf8");
      for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"/gms)) {
        if (/(^|\/)router\//.test(m[1]!)) offenders.push(`${layer}/${f}: ${m[1]}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});
