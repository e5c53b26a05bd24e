// Renders the benchmark's results: a table for the terminal and a Markdown section for
// bench/README.md (between markers, so the hand-written text around it is kept).
import { existsSync, readFileSync, writeFileSync } from "node:fs";

export const README_START = "<!-- bench:router:results:start -->";
export const README_END = "<!-- bench:router:results:end -->";

const fmtInt = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : `${ms.toFixed(2)} ms`);
const fmtRatio = (r) => (r === null || r === undefined ? "–" : `${r.toFixed(2)}×`);
const fmtPct = (p) => (p === null || p === undefined ? "–" : `${(p * 100).toFixed(2)}%`);
const fmtMB = (mb) => (mb === null || mb === undefined ? "–" : `${mb.toFixed(1)} MB`);

function pad(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(widths[i])).join("  ")).join("\n");
}

/** The table printed at the end of a run. */
export function terminalTable(results) {
  const header = [
    "proxy",
    "req/s",
    "rounds",
    "p50",
    "p99",
    "req/CPU-s",
    "CPU used",
    "Turnout rps ×",
    "Turnout p99 ×",
    "Turnout req/CPU-s ×",
    "share b",
    "RSS@1000c (max/HWM)",
  ];
  const rows = [header];
  for (const p of results.proxies) {
    rows.push([
      p.label,
      fmtInt(p.rps.median),
      p.rps.rounds.map((x) => fmtInt(x)).join(" / "),
      fmtMs(p.p50Ms.median),
      fmtMs(p.p99Ms.median),
      fmtInt(p.rpsPerCpuSecond?.median),
      fmtPct(p.proxyCpuShare?.median),
      p.id === "turnout" ? "" : fmtRatio(p.turnoutRatio?.rps),
      p.id === "turnout" ? "" : fmtRatio(p.turnoutRatio?.p99),
      p.id === "turnout" ? "" : fmtRatio(p.turnoutRatio?.rpsPerCpuSecond),
      fmtPct(p.split?.shareB),
      p.rss ? `${fmtMB(p.rss.maxRssMB)} / ${fmtMB(p.rss.hwmMB)}` : "–",
    ]);
  }
  const goals = results.goals
    .map(
      (g) =>
        `  ${g.met ? "met    " : "NOT met"}  ${g.goal}: ${g.measured}` +
        (g.caveat ? `\n           (${g.caveat})` : ""),
    )
    .join("\n");
  let text = `${pad(rows)}\n\nGoals (Turnout, sticky split + measurements on):\n${goals}`;
  const pr = results.profile;
  if (pr !== undefined) {
    const areas = pr.areas.map((a) => `${a.area} ${a.busyPct}%`).join(", ");
    const fns = pr.functions
      .slice(0, 12)
      .map((f) => `  ${`${f.busyPct}%`.padStart(6)}  ${f.function}  ${f.location}`)
      .join("\n");
    text += `\n\nTurnout CPU profile (${fmtInt(pr.rps)} req/s under the profiler), self time by area: ${areas}\n${fns}`;
  }
  return text;
}

/** The Markdown section between the README markers. */
export function markdownSection(results) {
  const m = results.machine;
  const c = results.config;
  const lines = [];
  lines.push(
    `Measured ${results.date} on ${m.cpuModel} (${m.nproc} cores, ${m.kernel}), Node ${m.node}, ` +
      `nginx ${m.nginx}, HAProxy ${m.haproxy}, wrk ${m.wrk}; Turnout at git ${results.git ?? "?"}. ` +
      `Each proxy pinned to core ${c.cores.proxy}; backends (one nginx, 1 worker) on core ` +
      `${c.cores.backends}, wrk on core ${c.cores.wrk}. Load: \`wrk -t1 -c${c.connections} ` +
      `-d${c.durationSeconds}s --latency\` with an \`x-user-id\` from ${c.users.toLocaleString("en-US")} ` +
      `users per request (Lua, prebuilt requests), ${c.warmupSeconds} s warm-up per proxy, then ` +
      `${c.rounds} interleaved rounds with the order rotated; figures are medians of the rounds. ` +
      `Load average before the run: ${(results.loadAverageAtStart ?? []).join(", ")}` +
      `${(results.loadAverageAtStart?.[0] ?? 0) > 0.5 ? " (other work was running on the machine: treat the figures as rough)" : ""}.`,
  );
  lines.push("");
  lines.push(
    "| proxy | req/s (median) | req/s per round | p50 | p99 | Turnout req/s ratio | Turnout p99 ratio |",
  );
  lines.push("|---|---:|---|---:|---:|---:|---:|");
  for (const p of results.proxies) {
    const self = p.id === "turnout";
    lines.push(
      `| ${p.label} | ${fmtInt(p.rps.median)} | ${p.rps.rounds.map((x) => fmtInt(x)).join(" / ")} | ` +
        `${fmtMs(p.p50Ms.median)} | ${fmtMs(p.p99Ms.median)} | ` +
        `${self ? "—" : fmtRatio(p.turnoutRatio?.rps)} | ${self ? "—" : fmtRatio(p.turnoutRatio?.p99)} |`,
    );
  }
  lines.push("");
  lines.push(
    "Context: the proxy's own CPU time during the runs (requests per CPU-second is its efficiency, " +
      "which other work on the machine disturbs less than requests/s), the share of requests that " +
      "reached the 10% backend (counted from the backends' access logs), and memory at " +
      `${(results.config.rssConnections ?? 1000).toLocaleString("en-US")} concurrent connections.`,
  );
  lines.push("");
  lines.push(
    "| proxy | req per CPU-second | share of a core used | Turnout req/CPU-s ratio | share to the 10% backend | RSS at 1,000 conns (max VmRSS / VmHWM) | req/s at 1,000 conns |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const p of results.proxies) {
    lines.push(
      `| ${p.label} | ${fmtInt(p.rpsPerCpuSecond?.median)} | ${fmtPct(p.proxyCpuShare?.median)} | ` +
        `${p.id === "turnout" ? "—" : fmtRatio(p.turnoutRatio?.rpsPerCpuSecond)} | ` +
        `${fmtPct(p.split?.shareB)} (${fmtInt(p.split?.backendB)} of ${fmtInt((p.split?.backendA ?? 0) + (p.split?.backendB ?? 0))}) | ` +
        `${p.rss ? `${fmtMB(p.rss.maxRssMB)} / ${fmtMB(p.rss.hwmMB)}` : "–"} | ${fmtInt(p.rss?.rps)} |`,
    );
  }
  lines.push("");
  lines.push("| goal (Turnout, sticky split + measurements on) | measured | |");
  lines.push("|---|---|---|");
  for (const g of results.goals) {
    const verdict = g.met ? "met" : "**not met**";
    lines.push(
      `| ${g.goal} | ${g.measured} | ${g.caveat ? `${verdict} (${g.caveat})` : verdict} |`,
    );
  }
  const errs = results.proxies.filter((p) => p.errorsTotal > 0);
  lines.push("");
  lines.push(
    errs.length === 0
      ? "No socket errors and no non-2xx responses in any measured run."
      : `Errors in measured runs: ${errs.map((p) => `${p.label}: ${p.errorsTotal}`).join(", ")}.`,
  );
  const t = results.proxies.find((p) => p.id === "turnout");
  if (t?.stickyCheck !== undefined) {
    const sc = t.stickyCheck;
    const expected = t.split?.expectedShareB ?? sc.expectedShareB;
    lines.push(
      `Sticky check before the load: ${sc.verdict}.` +
        (sc.expectedShareB === null || sc.expectedShareB === undefined
          ? ""
          : ` With stickiness on, Turnout's share to the 10% backend is the share of wrk's ` +
            `${results.config.users.toLocaleString("en-US")} users whose bucket is the canary's: ` +
            `${fmtPct(expected)} (observed ${fmtPct(t.split.shareB)}).`),
    );
  }
  if (t?.routerStats !== undefined) {
    lines.push(
      `Turnout's own counters at exit (all runs, warm-up included): ${t.routerStats
        .map((s) => `${s.version} ${fmtInt(s.requests)}`)
        .join(", ")}.`,
    );
  }
  if (results.profile !== undefined) {
    const pr = results.profile;
    lines.push("");
    lines.push(
      `CPU profile of Turnout's router (\`node --cpu-prof\`, ${pr.durationSeconds} s at -c${c.connections}, ` +
        `${fmtInt(pr.rps)} req/s under the profiler; busy ${fmtInt(pr.busyMs)} ms of ${fmtInt(pr.totalMs)} ms). ` +
        "Self time by area:",
    );
    lines.push("");
    lines.push("| area | self time | share of busy |");
    lines.push("|---|---:|---:|");
    for (const a of pr.areas) lines.push(`| ${a.area} | ${fmtInt(a.selfMs)} ms | ${a.busyPct}% |`);
    lines.push("");
    lines.push("Top functions by self time:");
    lines.push("");
    lines.push("| function | where | area | self time | share of busy |");
    lines.push("|---|---|---|---:|---:|");
    for (const f of pr.functions) {
      lines.push(
        `| \`${f.function}\` | ${f.location || "(native)"} | ${f.area} | ${fmtInt(f.selfMs)} ms | ${f.busyPct}% |`,
      );
    }
  }
  return lines.join("\n");
}

/** Replaces the results section of the README (appends one when the markers are missing). */
export function updateReadme(path, section) {
  const block = `${README_START}\n${section}\n${README_END}`;
  const text = existsSync(path) ? readFileSync(path, "utf8") : "";
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  const next =
    start !== -1 && end > start
      ? text.slice(0, start) + block + text.slice(end + README_END.length)
      : `${text}${text.endsWith("\n") || text === "" ? "" : "\n"}\n## Results\n\n${block}\n`;
  writeFileSync(path, next);
}
