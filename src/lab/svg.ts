/**
 * `turnout lab --svg FILE`: risk against recovery time, one point per strategy per bad
 * scenario, readable without the table. x: seconds from the start of the rollout until no user
 * gets the bad version (square-root scale, so the first seconds are not squeezed; a bad version
 * never removed sits in the "never" band on the right); y: share of users who got the bad
 * version (square-root scale too). Colour: strategy; shape: scenario. Hand-written SVG.
 */

import { plural } from "../core/plural.js";
import { BAD_SCENARIOS, BRIEF, type ScenarioName, STRATEGIES, TRAFFIC } from "./config.js";
import type { LabReport } from "./lab.js";

const W = 900;
const H = 560;
const M = { left: 70, right: 230, top: 50, bottom: 60 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;
const NEVER_BAND = 60;

const SHORT: Record<string, string> = {
  errors: "errors",
  latency: "latency",
  wrongPredictions: "wrong answers",
  crash: "crash",
};

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function marker(scenario: ScenarioName, x: number, y: number, colour: string): string {
  const a = `fill="${colour}" fill-opacity="0.85" stroke="#222" stroke-width="0.8"`;
  switch (scenario) {
    case "errors":
      return `<circle cx="${x}" cy="${y}" r="6" ${a}/>`;
    case "latency":
      return `<rect x="${x - 5.5}" y="${y - 5.5}" width="11" height="11" ${a}/>`;
    case "wrongPredictions":
      return `<polygon points="${x},${y - 7} ${x + 7},${y + 5} ${x - 7},${y + 5}" ${a}/>`;
    default:
      return `<polygon points="${x},${y - 7} ${x + 7},${y} ${x},${y + 7} ${x - 7},${y}" ${a}/>`;
  }
}

export function labSvg(r: LabReport): string {
  const points = r.results.filter((x) => x.scenario !== "good");
  const finite = points.map((p) => p.recoverSeconds).filter((x): x is number => x !== null);
  const maxX = niceCeil(Math.max(10, ...finite));
  const sx = (v: number | null) =>
    v === null ? M.left + PW - NEVER_BAND / 2 : M.left + Math.sqrt(v / maxX) * (PW - NEVER_BAND);
  const sy = (share: number) => M.top + PH - Math.sqrt(share) * PH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${M.left}" y="24" font-size="16" font-weight="bold">Turnout strategy lab: users exposed to a bad release vs time until none gets it</text>`,
    `<text x="${M.left}" y="41" fill="#555">medians over ${plural(r.seeds, "seed")}; ${TRAFFIC.rps} requests/s from ${TRAFFIC.users.toLocaleString("en-US")} users; exposure of a bad version never removed is counted over ${TRAFFIC.horizonSeconds} s</text>`,
  );
  // The "never" band.
  out.push(
    `<rect x="${M.left + PW - NEVER_BAND}" y="${M.top}" width="${NEVER_BAND}" height="${PH}" fill="#f3e6e6"/>`,
    `<text x="${M.left + PW - NEVER_BAND / 2}" y="${M.top + PH - 24}" text-anchor="middle" fill="#a33">never</text>`,
    `<text x="${M.left + PW - NEVER_BAND / 2}" y="${M.top + PH - 10}" text-anchor="middle" fill="#a33">removed</text>`,
  );
  // Axes and grid.
  for (const t of ticks(maxX)) {
    const x = sx(t);
    out.push(
      `<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + PH}" stroke="#e5e5e5"/>`,
      `<text x="${x}" y="${M.top + PH + 18}" text-anchor="middle">${t}</text>`,
    );
  }
  for (const s of [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1]) {
    const y = sy(s);
    out.push(
      `<line x1="${M.left}" y1="${y}" x2="${M.left + PW}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 8}" y="${y + 4}" text-anchor="end">${s * 100}%</text>`,
    );
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="#333"/>`,
    `<text x="${M.left + (PW - NEVER_BAND) / 2}" y="${H - 18}" text-anchor="middle">seconds from the start of the rollout until no user gets the bad version (recoverSeconds, square-root scale)</text>`,
    `<text transform="translate(18 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">users who got the bad version (share of ${TRAFFIC.users.toLocaleString("en-US")}, square-root scale)</text>`,
  );
  // Points: those that land on the same place are drawn side by side and labelled once.
  const strategies = STRATEGIES.filter((s) => points.some((p) => p.strategy === s));
  // Greedy: a point within 12 px of a group's first point joins it.
  const groups: { x: number; y: number; items: typeof points }[] = [];
  for (const p of points) {
    const x = sx(p.recoverSeconds);
    const y = sy(p.usersExposed / TRAFFIC.users);
    const g = groups.find((q) => Math.abs(q.x - x) <= 12 && Math.abs(q.y - y) <= 12);
    if (g) g.items.push(p);
    else groups.push({ x, y, items: [p] });
  }
  const labels: string[] = [];
  const aside: string[] = [];
  for (const g of groups) {
    g.items.forEach((p, i) => {
      const colour = COLOURS[STRATEGIES.indexOf(p.strategy)]!;
      // Rows of six, growing up from the place.
      const x = g.x + (i % 6) * 12;
      const y = g.y - Math.floor(i / 6) * 12;
      out.push(
        `<g><title>${esc(`${BRIEF[p.strategy].label}, ${p.scenario}: ${plural(p.usersExposed, "user")}, recovered ${p.recoverSeconds === null ? "never" : `at ${p.recoverSeconds} s`}, detected ${p.detectSeconds === null ? "never" : `at ${p.detectSeconds} s`}`)}</title>${marker(p.scenario, x, y, colour)}</g>`,
      );
    });
    const byStrategy = new Map<string, string[]>();
    for (const p of g.items) {
      const l = byStrategy.get(p.strategy) ?? [];
      l.push(SHORT[p.scenario]!);
      byStrategy.set(p.strategy, l);
    }
    // A crowded place: the strategies that only crash there on one line, the others above.
    const label = (k: string) => BRIEF[k as keyof typeof BRIEF].label;
    const only = (v: string[], sc: string) => v.length === 1 && v[0] === sc;
    const lines =
      g.items.length > 6
        ? [
            [...byStrategy]
              .filter(([, v]) => !only(v, SHORT.crash!))
              .map(([k, v]) => `${label(k)} (${v.join(", ")})`)
              .join("; "),
            `Crash of ${[...byStrategy]
              .filter(([, v]) => only(v, SHORT.crash!))
              .map(([k]) => label(k))
              .join(", ")}`,
          ].filter((l) => l !== "" && l !== "Crash of ")
        : [[...byStrategy].map(([k, v]) => `${label(k)} (${v.join(", ")})`).join("; ")];
    const text = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
    const right = g.x + Math.min(6, g.items.length) * 12 + 4;
    // About 6 px a character at 11 px: a label that would leave the plot goes left of its points.
    const crowded = g.items.length > 6;
    const lx = crowded ? g.x - 4 : right + text.length * 6 > M.left + PW ? g.x - 10 : right;
    const anchor = !crowded && lx < g.x ? "end" : "start";
    const at = lx;
    const rows = Math.floor((g.items.length - 1) / 6);
    // A crowded place (the origin) gets its label above its rows.
    const ly = crowded ? g.y - rows * 12 - 14 : g.y + 4 - rows * 12;
    // The crowded place's label goes beside the plot (it would cover the points near it).
    if (crowded) {
      const where =
        g.items[0]!.usersExposed === 0 && g.items[0]!.recoverSeconds === 0
          ? "At 0 users, 0 s (bottom left):"
          : `At ${plural(g.items[0]!.usersExposed, "user")}, ${g.items[0]!.recoverSeconds ?? "never"}:`;
      aside.push(where, ...lines.map((l) => `${l}.`));
      continue;
    }
    lines.forEach((line, i) => {
      labels.push(
        `<text x="${at}" y="${ly - (lines.length - 1 - i) * 14}" text-anchor="${anchor}" font-size="11" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke">${esc(line)}</text>`,
      );
    });
  }
  out.push(...labels);
  // Legend: strategies (colour), scenarios (shape).
  const lx = M.left + PW + 20;
  let ly = M.top + 8;
  out.push(`<text x="${lx}" y="${ly}" font-weight="bold">Strategy</text>`);
  for (const s of strategies) {
    ly += 20;
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLOURS[STRATEGIES.indexOf(s)]}"/>`,
      `<text x="${lx + 18}" y="${ly}">${esc(BRIEF[s].label)}</text>`,
    );
  }
  ly += 34;
  out.push(`<text x="${lx}" y="${ly}" font-weight="bold">Bad release</text>`);
  const names: Record<string, string> = {
    errors: "errors 1% -> 10%",
    latency: "latency +50%",
    wrongPredictions: "10% wrong answers",
    crash: "crash on start",
  };
  for (const sc of BAD_SCENARIOS) {
    if (!points.some((p) => p.scenario === sc)) continue;
    ly += 22;
    out.push(
      marker(sc, lx + 6, ly - 4, "#999"),
      `<text x="${lx + 18}" y="${ly}">${names[sc]}</text>`,
    );
  }
  ly += 34;
  for (const line of ["Bottom left is best: few users", "exposed, and not for long.", ""]) {
    out.push(`<text x="${lx}" y="${ly}" fill="#555">${line}</text>`);
    ly += 16;
  }
  for (const para of aside) {
    for (const line of wrapWords(para, 32)) {
      out.push(`<text x="${lx}" y="${ly}" fill="#555">${esc(line)}</text>`);
      ly += 16;
    }
  }
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function niceCeil(v: number): number {
  for (const n of [10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800]) if (v <= n) return n;
  return Math.ceil(v / 600) * 600;
}

function ticks(max: number): number[] {
  const all = [0, 1, 5, 10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800];
  return all.filter((t) => t <= max);
}

function wrapWords(s: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const w of s.split(" ")) {
    if (line !== "" && line.length + 1 + w.length > width) {
      out.push(line);
      line = w;
    } else line = line === "" ? w : `${line} ${w}`;
  }
  if (line !== "") out.push(line);
  return out;
}
