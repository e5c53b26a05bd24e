// Experiment: a row per metric with arms, units, values, the lift and its interval drawn as a
// bar, p-value or chance to win, the SRM check and the decision.
import { useEffect, useState } from "react";
import { call } from "../api";
import { IntervalBar } from "../chart";
import { useLive } from "../live";
import { num, OutcomeChip, pct, time } from "../ui";

export function ExperimentScreen({ name }: { name: string }) {
  const live = useLive();
  const [r, setR] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  const service = r?.service as string | undefined;
  const seq = service ? (live.seq[service] ?? 0) : 0;
  // Refetched when the experiment's service gets a push (units and outcomes move with traffic).
  // biome-ignore lint/correctness/useExhaustiveDependencies: refetched on every other push of this service (the tick), never on a timer
  useEffect(() => {
    call("GET", `/api/v1/experiments/${encodeURIComponent(name)}/results`)
      .then((x) => {
        setR(x);
        setError(null);
      })
      .catch((e) => setError((e as Error).message));
  }, [name, Math.floor(seq / 2)]);
  if (error && !r) return <p className="error">{error}</p>;
  if (!r) return <p className="muted">Loading…</p>;
  const scale = Math.max(
    0.05,
    ...r.metrics.flatMap((m: any) =>
      m.comparisons.map((c: any) =>
        Math.max(
          Math.abs(c.relativeInterval?.lower ?? 0),
          Math.abs(c.relativeInterval?.upper ?? 0),
        ),
      ),
    ),
  );
  const money = (m: any, v: number) => (m.kind === "binomial" ? pct(v, 2) : num(v, 4));
  return (
    <section className="stack" aria-labelledby="exp-title">
      <div>
        <p className="crumbs">
          <a href="#/">Services</a> /{" "}
          <a href={`#/services/${encodeURIComponent(r.service)}`}>{r.service}</a> / experiment
        </p>
        <div className="row">
          <h1 id="exp-title">Experiment {r.name}</h1>
          <OutcomeChip outcome={r.verdict} />
        </div>
        <p>
          {r.state?.summary} <span className="muted small">· started {time(r.startedAt)}</span>
        </p>
        <p className="muted small">
          method {r.method} · alpha {r.alpha} · correction {r.correction ?? "none"} · control arm{" "}
          {r.control}
        </p>
      </div>
      <div className="panel">
        <h2>Arms</h2>
        <table>
          <thead>
            <tr>
              <th>Arm</th>
              <th>Version</th>
              <th className="num">Weight</th>
              <th className="num">Units</th>
              <th className="num">Expected (SRM)</th>
            </tr>
          </thead>
          <tbody>
            {r.arms.map((a: any, i: number) => (
              <tr key={a.name}>
                <td>
                  {a.name}
                  {a.name === r.control ? <span className="muted small"> control</span> : null}
                </td>
                <td>{a.version}</td>
                <td className="num">{a.weight}%</td>
                <td className="num">{a.units}</td>
                <td className="num">{r.srm?.expected?.[i] ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <p style={{ marginTop: "0.5rem" }}>
          <strong>Sample ratio check:</strong>{" "}
          {r.srm ? (
            <>
              <span className={`chip ${r.srm.mismatch ? "bad" : "ok"}`}>
                {r.srm.mismatch ? "mismatch" : "ok"}
              </span>{" "}
              χ² = {num(r.srm.statistic)}, p = {num(r.srm.pValue)} (mismatch below {r.srm.threshold}
              )
            </>
          ) : (
            <span className="muted">not enough units yet</span>
          )}
        </p>
      </div>
      <div className="panel">
        <h2>Metrics</h2>
        <table>
          <thead>
            <tr>
              <th>Metric</th>
              <th>Arm</th>
              <th className="num">Units</th>
              <th className="num">Value</th>
              <th className="num">Lift</th>
              <th>Lift and its interval</th>
              <th className="num">p / chance to win</th>
              <th>Decision</th>
            </tr>
          </thead>
          <tbody>
            {r.metrics.flatMap((m: any) =>
              m.arms.map((a: any, i: number) => {
                const c = m.comparisons.find((x: any) => x.arm === a.arm);
                return (
                  <tr key={`${m.name}-${a.arm}`}>
                    {i === 0 ? (
                      <td rowSpan={m.arms.length}>
                        <strong>{m.name}</strong>
                        <div className="muted small">
                          {m.role} · {m.kind} · better: {m.better}
                        </div>
                        {m.test ? <div className="muted small">{m.test}</div> : null}
                        {m.note ? <div className="muted small">{m.note}</div> : null}
                      </td>
                    ) : null}
                    <td>{a.arm}</td>
                    <td className="num">{a.n}</td>
                    <td className="num">{money(m, a.value)}</td>
                    <td className="num">
                      {c
                        ? `${c.relative >= 0 ? "+" : ""}${pct(c.relative)}`
                        : a.arm === r.control
                          ? "control"
                          : "–"}
                    </td>
                    <td>
                      {c?.relativeInterval ? (
                        <>
                          <IntervalBar
                            lower={c.relativeInterval.lower}
                            upper={c.relativeInterval.upper}
                            point={c.relative}
                            scale={scale}
                            label={`${m.name} ${a.arm}: lift ${pct(c.relative)}, ${Math.round(c.relativeInterval.level * 100)}% interval ${pct(c.relativeInterval.lower)} to ${pct(c.relativeInterval.upper)}`}
                          />
                          <div className="muted small">
                            [{pct(c.relativeInterval.lower)}, {pct(c.relativeInterval.upper)}] at{" "}
                            {Math.round(c.relativeInterval.level * 100)}%
                          </div>
                        </>
                      ) : null}
                    </td>
                    <td className="num">
                      {c
                        ? c.chanceToWin !== null && c.chanceToWin !== undefined
                          ? `${pct(c.chanceToWin)} to win`
                          : `p = ${num(c.adjustedPValue ?? c.pValue)}`
                        : ""}
                    </td>
                    <td>{c ? <OutcomeChip outcome={c.outcome} /> : null}</td>
                  </tr>
                );
              }),
            )}
          </tbody>
        </table>
        <div className="legend">
          <span className="key">
            <span className="sw dot" style={{ background: "var(--ok)" }} /> interval above 0: better
            than control
          </span>
          <span className="key">
            <span className="sw dot" style={{ background: "var(--bad)" }} /> below 0: worse
          </span>
          <span className="key">
            <span className="sw dot" style={{ background: "var(--muted)" }} /> spans 0: not decided
          </span>
        </div>
      </div>
      <div className="panel">
        <h2>Decision</h2>
        <p>
          <OutcomeChip outcome={r.verdict} /> {r.state?.summary}
        </p>
        <ul>
          {(r.reasons ?? []).map((x: string) => (
            <li key={x}>{x}</li>
          ))}
        </ul>
      </div>
    </section>
  );
}
