// Numbers the screens derive from what the API sends (no logic the server already has).

export interface VersionRow {
  version: string;
  role: "stable" | "canary" | "other";
  setWeight: number;
  /** Share of the recent requests (null without traffic). */
  observed: number | null;
}

/** Router counters summed by version (the router reports one row per series label). */
export function trafficByVersion(
  traffic: any[] | undefined,
): Map<string, { requests: number; s5xx: number }> {
  const out = new Map<string, { requests: number; s5xx: number }>();
  for (const t of traffic ?? []) {
    const cur = out.get(t.version) ?? { requests: 0, s5xx: 0 };
    cur.requests += t.requests ?? 0;
    cur.s5xx += t.status?.["5xx"] ?? 0;
    out.set(t.version, cur);
  }
  return out;
}

/**
 * Observed share per version over the pushes kept (the difference of cumulative counters
 * between the oldest and the newest push), so the card shows the recent split, not all time.
 */
export function observedShare(
  samples: { at: number; traffic: any[] }[],
): Map<string, number> | null {
  if (samples.length === 0) return null;
  const last = trafficByVersion(samples[samples.length - 1]!.traffic);
  const first = samples.length > 1 ? trafficByVersion(samples[0]!.traffic) : new Map();
  const delta = new Map<string, number>();
  let total = 0;
  for (const [v, c] of last) {
    const d = Math.max(0, c.requests - (first.get(v)?.requests ?? 0));
    delta.set(v, d);
    total += d;
  }
  if (total === 0) return null;
  const out = new Map<string, number>();
  for (const [v, d] of delta) out.set(v, d / total);
  return out;
}

export function versionRows(view: any, share: Map<string, number> | null): VersionRow[] {
  const s = view?.status;
  const rows: VersionRow[] = [];
  const backends: any[] = view?.routeTable?.backends ?? [];
  const seen = new Set<string>();
  for (const b of backends) {
    seen.add(b.version);
    rows.push({
      version: b.version,
      role:
        b.version === s?.stableVersion
          ? "stable"
          : b.version === s?.canaryVersion
            ? "canary"
            : "other",
      setWeight: b.weight,
      observed: share ? (share.get(b.version) ?? 0) : null,
    });
  }
  if (s?.stableVersion && !seen.has(s.stableVersion))
    rows.push({
      version: s.stableVersion,
      role: "stable",
      setWeight: 0,
      observed: share?.get(s.stableVersion) ?? null,
    });
  return rows.sort((a, b) => (a.role === "stable" ? -1 : b.role === "stable" ? 1 : 0));
}

export interface VerdictItem {
  run: string;
  metric: string;
  template: string;
  at: number;
  outcome: string;
  explanation: string;
  statistic?: number;
  pValue?: number;
  bound?: { lower: number; upper: number };
  effect?: { value?: number; measure?: string };
  test?: string;
  judge?: any;
  inputs?: any;
}

/** Every recorded verdict of the rollout's analysis runs, oldest first. */
export function verdictsOf(view: any): VerdictItem[] {
  const a = view?.status?.analysis;
  const out: VerdictItem[] = [];
  const runs: [string, any][] = [
    ["step", a?.step?.run],
    ["background", a?.background],
  ];
  for (const [run, r] of runs) {
    for (const m of r?.metrics ?? []) {
      for (const v of m.verdicts ?? []) {
        out.push({
          run,
          metric: m.name,
          template: m.template,
          at: v.at,
          outcome: v.verdict.outcome,
          explanation: v.verdict.explanation,
          statistic: v.verdict.statistic,
          pValue: v.verdict.pValue,
          bound: v.verdict.bound,
          effect: v.verdict.effect,
          test: v.verdict.test,
          judge: m.spec?.judge,
          inputs: v.verdict.inputs,
        });
      }
    }
  }
  return out.sort((x, y) => x.at - y.at);
}

export function lastVerdict(view: any): VerdictItem | undefined {
  const all = verdictsOf(view);
  return all[all.length - 1];
}

export function stepLabel(step: any): string {
  const [k, v] = Object.entries(step ?? {})[0] ?? ["?", null];
  if (k === "setWeight") return `weight ${v}%`;
  if (k === "pause")
    return (v as any)?.duration ? `pause ${(v as any).duration}` : "pause (until promoted)";
  if (k === "analysis") return `analysis ${((v as any)?.templates ?? []).join(", ")}`;
  if (k === "setFlag")
    return `flag ${(v as any).flag} ${(v as any).percentage ?? (v as any).variant ?? ""}${(v as any).percentage !== undefined ? "%" : ""}`;
  if (k === "shadow") return `shadow ${(v as any)?.percent ?? 100}%`;
  if (k === "experiment") return "experiment";
  return k;
}
