// Shadow: agreement over time, the confusion matrix of labels, score error, PSI and KS drift,
// paired latency, sample diffs and drops by reason.
import { useEffect, useState } from "react";
import { call } from "../api";
import { COLORS, LineChart } from "../chart";
import { useLive } from "../live";
import { ms, num, pct, plural } from "../ui";

export function ShadowScreen({ service }: { service: string }) {
  const live = useLive();
  const seq = live.seq[service] ?? 0;
  const [v, setV] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: refetched on every other push of this service (the tick), never on a timer
  useEffect(() => {
    call("GET", `/api/v1/services/${encodeURIComponent(service)}/shadow`)
      .then((x) => {
        setV(x);
        setError(null);
      })
      .catch((e) => setError((e as Error).message));
  }, [service, Math.floor(seq / 2)]);
  // The stored history of the phase shown, fetched once per phase: the chart starts from it,
  // and the live stream's points after its last one are drawn on.
  const phase: string | undefined = v?.report?.id;
  const [history, setHistory] = useState<{ phase: string; points: any[] } | null>(null);
  useEffect(() => {
    if (phase === undefined) return;
    let gone = false;
    call(
      "GET",
      `/api/v1/services/${encodeURIComponent(service)}/shadow/history?phase=${encodeURIComponent(phase)}`,
    )
      .then((x: any) => {
        if (!gone) setHistory({ phase, points: x.points ?? [] });
      })
      // Without it the chart still draws the live points, as before the history existed.
      .catch(() => undefined);
    return () => {
      gone = true;
    };
  }, [service, phase]);
  if (error && !v) return <p className="error">{error}</p>;
  if (!v) return <p className="muted">Loading…</p>;
  const rep = v.report?.report;
  const stored = (history !== null && history.phase === phase ? history.points : [])
    .filter((p) => typeof p.agreement === "number")
    .map((p) => [p.at, p.agreement * 100] as [number, number]);
  const lastStored = stored.length > 0 ? stored[stored.length - 1]![0] : -Infinity;
  const points = [
    ...stored,
    ...(live.agreement[service] ?? [])
      .filter((a) => a.phase === phase && a.at > lastStored)
      .map((a) => [a.at, a.agreement * 100] as [number, number]),
  ];
  const gate = live.status[service]?.steps?.find((s: any) => s.shadow)?.shadow?.gate;
  return (
    <section className="stack" aria-labelledby="sh-title">
      <div>
        <p className="crumbs">
          <a href="#/">Services</a> /{" "}
          <a href={`#/services/${encodeURIComponent(service)}`}>{service}</a> / shadow
        </p>
        <h1 id="sh-title">Shadow of {service}</h1>
        <p className="muted">
          {v.active
            ? `${v.active.version} gets copies of ${v.active.mirror?.percent ?? 100}% of ${(v.active.mirror?.methods ?? ["all"]).join(", ")} requests; users only get the primary's answers.`
            : "No shadow in force; the latest report is shown."}
          {v.report ? ` Phase ${v.report.id}, ${v.report.routers} router(s).` : ""}
        </p>
      </div>
      {!rep ? (
        <p className="notice">No comparisons yet.</p>
      ) : (
        <>
          <div className="grid2">
            <LineChart
              title="Agreement over time"
              series={[{ name: "agreement (labels)", color: COLORS[0]!, points }]}
              thresholds={
                gate?.minAgreement !== undefined
                  ? [
                      {
                        label: `gate: at least ${pct(gate.minAgreement, 0)}`,
                        y: gate.minAgreement * 100,
                      },
                    ]
                  : []
              }
              format={(y) => `${y.toFixed(1)}%`}
              yMin={Math.max(
                0,
                Math.min(
                  gate?.minAgreement !== undefined ? gate.minAgreement * 100 : 100,
                  ...points.map((p) => p[1]),
                ) - 2,
              )}
              yMax={100}
              empty="Agreement is drawn as new comparisons arrive."
            >
              <p className="small">
                Now: <strong>{pct(rep.agreement, 2)}</strong> over {plural(rep.samples, "pair")};{" "}
                {rep.mismatches} differ in some field ({pct(rep.mismatchRate)}).
              </p>
            </LineChart>
            <div className="panel">
              <h3>Labels: primary (rows) vs shadow (columns)</h3>
              <Confusion c={rep.classification} />
            </div>
          </div>
          <div className="grid2">
            <div className="panel">
              <h3>Score error and drift</h3>
              <table>
                <tbody>
                  <tr>
                    <th>Mean absolute error</th>
                    <td className="num">{num(rep.regression?.mae)}</td>
                  </tr>
                  <tr>
                    <th>Max absolute error</th>
                    <td className="num">{num(rep.regression?.maxAbsError)}</td>
                  </tr>
                  <tr>
                    <th>PSI (population stability)</th>
                    <td className="num">
                      {num(rep.drift?.psi)}{" "}
                      <span className="muted small">
                        {rep.drift?.psi < 0.1
                          ? "stable"
                          : rep.drift?.psi < 0.25
                            ? "some drift"
                            : "drift"}
                      </span>
                    </td>
                  </tr>
                  <tr>
                    <th>KS statistic (p-value)</th>
                    <td className="num">
                      {num(rep.drift?.ks?.statistic)} (p = {num(rep.drift?.ks?.pValue)})
                    </td>
                  </tr>
                  <tr>
                    <th>Mean score: primary / shadow</th>
                    <td className="num">
                      {num(rep.drift?.primaryMean)} / {num(rep.drift?.shadowMean)}
                    </td>
                  </tr>
                </tbody>
              </table>
            </div>
            <div className="panel">
              <h3>Paired latency</h3>
              <PairedLatency l={rep.latency} />
            </div>
          </div>
          <div className="grid2">
            <div className="panel">
              <h3>Fields that differ</h3>
              <table>
                <thead>
                  <tr>
                    <th>Field</th>
                    <th className="num">Mismatches</th>
                    <th className="num">Rate</th>
                    <th>Noise</th>
                  </tr>
                </thead>
                <tbody>
                  {(rep.byField ?? []).map((f: any) => (
                    <tr key={f.field}>
                      <td className="mono">{f.field}</td>
                      <td className="num">{f.mismatches}</td>
                      <td className="num">{pct(f.rate, 2)}</td>
                      <td>{f.noise ? `noise (${pct(f.noiseRate)})` : "–"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <h3 style={{ marginTop: "1rem" }}>Drops by reason</h3>
              <Drops report={rep} router={v.router} />
            </div>
            <div className="panel">
              <h3>Sample diffs</h3>
              {(rep.sampleDiffs ?? []).slice(0, 6).map((d: any) => (
                <div key={d.requestId}>
                  <p className="small mono">
                    {d.method} {d.target} <span className="muted">{d.requestId.slice(0, 8)}</span>
                  </p>
                  <pre className="diff">
                    {d.diffs
                      .map((x: any) => `${x.path}: primary ${x.primary}  shadow ${x.shadow}`)
                      .join("\n")}
                  </pre>
                </div>
              ))}
              {(rep.sampleDiffs ?? []).length === 0 ? (
                <p className="muted">No differences recorded.</p>
              ) : null}
            </div>
          </div>
        </>
      )}
    </section>
  );
}

function Confusion({ c }: { c: any }) {
  if (!c) return <p className="muted">No label field compared.</p>;
  const labels = new Set<string>();
  for (const d of c.disagreements ?? []) {
    labels.add(d.from);
    labels.add(d.to);
  }
  const list = [...labels].sort();
  const cell = (a: string, b: string) =>
    (c.disagreements ?? []).find((d: any) => d.from === a && d.to === b)?.count ?? 0;
  const off = (c.disagreements ?? []).reduce((n: number, d: any) => n + d.count, 0);
  return (
    <>
      {list.length === 0 ? (
        <p>All {c.compared} labels agree.</p>
      ) : (
        <table className="matrix">
          <thead>
            <tr>
              <th>primary \ shadow</th>
              {list.map((l) => (
                <th key={l}>{l}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {list.map((a) => (
              <tr key={a}>
                <th>{a}</th>
                {list.map((b) => (
                  <td key={b} className={a === b ? "diag" : cell(a, b) > 0 ? "off" : ""}>
                    {a === b ? "agree" : cell(a, b)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="small">
        {c.agree} of {c.compared} agree ({pct(c.agreement, 2)}); {off} flipped.
      </p>
      <div className="legend">
        <span className="key">
          <span
            className="sw dot"
            style={{ background: "var(--ok-bg)", border: "1px solid var(--ok)" }}
          />{" "}
          same label
        </span>
        <span className="key">
          <span
            className="sw dot"
            style={{ background: "var(--bad-bg)", border: "1px solid var(--bad)" }}
          />{" "}
          label flipped (count)
        </span>
      </div>
    </>
  );
}

function PairedLatency({ l }: { l: any }) {
  if (!l) return <p className="muted">No latency pairs.</p>;
  const max = Math.max(l.primaryP99Ms ?? 0, l.shadowP99Ms ?? 0, 1);
  const row = (label: string, v: number, color: string) => (
    <tr>
      <th>{label}</th>
      <td className="num">{ms(v)}</td>
      <td style={{ width: "50%" }}>
        <div className="bar">
          <span style={{ width: `${(100 * v) / max}%`, background: color }} />
        </div>
      </td>
    </tr>
  );
  return (
    <>
      <table>
        <tbody>
          {row("primary p50", l.primaryP50Ms, COLORS[0]!)}
          {row("shadow p50", l.shadowP50Ms, COLORS[1]!)}
          {row("primary p99", l.primaryP99Ms, COLORS[0]!)}
          {row("shadow p99", l.shadowP99Ms, COLORS[1]!)}
        </tbody>
      </table>
      <p className="small">
        {l.pairs} pairs; the shadow is {ms(Math.abs(l.meanDiffMs))}{" "}
        {l.meanDiffMs >= 0 ? "slower" : "faster"} on average ({l.increase >= 0 ? "+" : ""}
        {pct(l.increase)}).
      </p>
      <div className="legend">
        <span className="key">
          <span className="sw" style={{ background: COLORS[0] }} /> primary
        </span>
        <span className="key">
          <span className="sw" style={{ background: COLORS[1] }} /> shadow
        </span>
      </div>
    </>
  );
}

function Drops({ report, router }: { report: any; router: any }) {
  const drops: Record<string, number> = { ...(report.drops ?? {}) };
  for (const [k, n] of Object.entries(router?.drops ?? {}))
    drops[k] = Math.max(drops[k] ?? 0, n as number);
  const entries = Object.entries(drops);
  return entries.length === 0 ? (
    <p className="small">
      None: {plural(report.sent, "copy", "copies")} sent,{" "}
      {plural(report.shadowErrors, "shadow error")}.
    </p>
  ) : (
    <table>
      <tbody>
        {entries.map(([k, n]) => (
          <tr key={k}>
            <th>{k}</th>
            <td className="num">{n}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
