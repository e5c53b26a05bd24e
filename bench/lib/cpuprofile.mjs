// Aggregates a V8 .cpuprofile (from `node --cpu-prof`) into self time per function and per
// area (node internals, undici, Turnout, GC, ...).
//
//   node bench/lib/cpuprofile.mjs path/to/file.cpuprofile [top]
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

function shortUrl(url) {
  if (url === "") return "";
  if (url.startsWith("node:")) return url;
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf("node_modules/");
  if (nm !== -1) return path.slice(nm + "node_modules/".length);
  return relative(repoRoot, path);
}

/** Where a frame's time is charged for the per-area summary. */
function areaOf(functionName, url) {
  if (functionName === "(garbage collector)") return "GC";
  if (functionName === "(idle)") return "idle";
  if (functionName === "(program)") return "native/program (V8, libuv, syscalls)";
  if (url.includes("node_modules/undici/") || url.includes("node:internal/deps/undici"))
    return "undici";
  if (url.includes("/dist/") || url.includes("/src/")) return "turnout";
  if (url.startsWith("node:_http") || url.startsWith("node:internal/http")) return "node http";
  if (url.startsWith("node:internal/streams") || url === "node:stream") return "node streams";
  if (url.startsWith("node:net") || url.startsWith("node:internal/stream_base")) return "node net";
  if (url.startsWith("node:")) return "node other";
  if (url === "") return "native bindings (socket writes are syscalls)";
  return "other JS";
}

/**
 * Self time (ms) by function and by area, sorted descending. `total` includes idle; shares
 * are of busy time (total minus idle), which is what a CPU-bound proxy spends.
 */
export function aggregateCpuProfile(profile, top = 25) {
  const byId = new Map();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the gap between samples i-1 and i; a sample lasts until the next one
    // (as DevTools counts it), so sample i gets timeDeltas[i + 1].
    const d = Math.max(timeDeltas[i + 1] ?? 0, 0);
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + d);
  }
  const fns = new Map();
  const areas = new Map();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = byId.get(id);
    const name = callFrame.functionName || "(anonymous)";
    const url = callFrame.url;
    const where = url === "" ? "" : `${shortUrl(url)}:${callFrame.lineNumber + 1}`;
    const key = `${name} ${where}`;
    const area = areaOf(name, url);
    totalUs += us;
    if (area === "idle") idleUs += us;
    const f = fns.get(key) ?? { function: name, location: where, area, selfMs: 0 };
    f.selfMs += us / 1000;
    fns.set(key, f);
    areas.set(area, (areas.get(area) ?? 0) + us / 1000);
  }
  const busyMs = (totalUs - idleUs) / 1000;
  const pct = (ms) => Math.round((ms / busyMs) * 1000) / 10;
  const round = (ms) => Math.round(ms * 10) / 10;
  return {
    totalMs: round(totalUs / 1000),
    busyMs: round(busyMs),
    functions: [...fns.values()]
      .filter((f) => f.area !== "idle")
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top)
      .map((f) => ({ ...f, selfMs: round(f.selfMs), busyPct: pct(f.selfMs) })),
    areas: [...areas.entries()]
      .filter(([a]) => a !== "idle")
      .sort((a, b) => b[1] - a[1])
      .map(([area, ms]) => ({ area, selfMs: round(ms), busyPct: pct(ms) })),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error("usage: node bench/lib/cpuprofile.mjs FILE.cpuprofile [top]");
    process.exit(2);
  }
  const agg = aggregateCpuProfile(
    JSON.parse(readFileSync(file, "utf8")),
    Number(process.argv[3] ?? 25),
  );
  console.log(`busy ${agg.busyMs} ms of ${agg.totalMs} ms`);
  for (const a of agg.areas) console.log(`${a.busyPct.toFixed(1).padStart(5)}%  ${a.area}`);
  console.log("");
  for (const f of agg.functions) {
    console.log(`${f.busyPct.toFixed(1).padStart(5)}%  ${f.function}  ${f.location}`);
  }
}
