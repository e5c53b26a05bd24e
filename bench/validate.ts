/**
 * How long validation takes on the largest documents the limits admit, and on the oversized
 * ones they refuse (the hardening issue's 150,000-step Service): `npx tsx bench/validate.ts`.
 * Each figure is the median of several runs after a warm-up, in one process, on whatever the
 * machine is doing; `TURNOUT_SCHEMA_DIR=<checkout>/src/resources` measures another checkout's
 * code (e.g. the commit before the limits) with the same documents.
 */
import { existsSync } from "node:fs";
import { stringify } from "yaml";
import { LARGEST } from "../test/largest-resources.js";

const dir = process.env.TURNOUT_SCHEMA_DIR ?? new URL("../src/resources", import.meta.url).pathname;
// The schemas were one file (schema.ts) before they became a folder (schema/index.ts).
const schemaModule = existsSync(`${dir}/schema/index.ts`)
  ? `${dir}/schema/index.ts`
  : `${dir}/schema.ts`;
const { validateDocument } = (await import(
  schemaModule
)) as typeof import("../src/resources/schema/index.js");
const { parseResources } = (await import(
  `${dir}/load.ts`
)) as typeof import("../src/resources/load.js");

function median(run: () => unknown, times = 7): number {
  run();
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    run();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(times / 2)]!;
}

function service(steps: unknown[]) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "big" },
    spec: {
      listen: { port: 8080 },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
      strategy: { canary: { steps } },
    },
  };
}

const cases: [string, Record<string, unknown>][] = [
  ...Object.entries(LARGEST).map(
    ([k, f]) => [`largest ${k}`, f()] as [string, Record<string, unknown>],
  ),
  [
    "150,000 steps (refused)",
    service(Array.from({ length: 150_000 }, (_, i) => ({ setWeight: i % 100 }))),
  ],
  [
    "50,000 steps under 1 MiB (refused)",
    service(Array.from({ length: 50_000 }, (_, i) => ({ setWeight: i % 100 }))),
  ],
];

console.log(`schema from ${dir}`);
console.log(
  "| Document | JSON bytes | validateDocument | parseResources (JSON) | parseResources (YAML) | issues |",
);
console.log(
  "| -------- | ---------- | ---------------- | --------------------- | --------------------- | ------ |",
);
for (const [name, doc] of cases) {
  const json = JSON.stringify(doc);
  const yaml = stringify(doc, { lineWidth: 0 });
  const issues = validateDocument(doc).issues.length;
  const v = median(() => validateDocument(doc));
  const j = median(() => parseResources(json, { format: "json" }), 5);
  const y = median(() => parseResources(yaml, { format: "yaml" }), 3);
  console.log(
    `| ${name} | ${json.length.toLocaleString("en-US")} | ${v.toFixed(1)} ms | ${j.toFixed(1)} ms | ${y.toFixed(0)} ms | ${issues} |`,
  );
}
