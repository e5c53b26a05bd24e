// Services: a card per service with its phase, strategy, versions (set weight next to the
// observed share of recent requests) and the last verdict; filter by phase and name.
import { useState } from "react";
import { lastVerdict, observedShare, versionRows } from "../derive";
import { useLive } from "../live";
import { go, OutcomeChip, PhaseChip, pct, plural } from "../ui";

const PHASES = ["all", "attention", "Progressing", "Paused", "Degraded", "Healthy", "Completed"];

export function ServicesScreen() {
  const live = useLive();
  const [phase, setPhase] = useState("all");
  const [q, setQ] = useState("");
  const names = Object.keys(live.status).sort();
  const shown = names.filter((n) => {
    const p = live.status[n]?.status?.phase ?? "Pending";
    if (q && !n.toLowerCase().includes(q.toLowerCase())) return false;
    if (phase === "attention") return p === "Paused" || p === "Degraded";
    return phase === "all" || p === phase;
  });
  return (
    <section aria-labelledby="services-title">
      <h1 id="services-title">Services</h1>
      <form className="filters" aria-label="Filter services" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor="f-name">Name</label>
          <input
            id="f-name"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            placeholder="filter by name"
          />
        </div>
        <div className="field">
          <label htmlFor="f-phase">Phase</label>
          <select id="f-phase" value={phase} onChange={(e) => setPhase(e.target.value)}>
            {PHASES.map((p) => (
              <option key={p} value={p}>
                {p === "attention" ? "needs attention" : p}
              </option>
            ))}
          </select>
        </div>
        <p className="muted small" aria-live="polite">
          {shown.length} of {plural(names.length, "service")}
        </p>
      </form>
      {!live.ready ? <p className="muted">Connecting…</p> : null}
      {live.ready && names.length === 0 ? (
        <p className="notice">
          No services yet. Apply one with <code>turnout apply -f service.yaml</code>; it appears
          here at once.
        </p>
      ) : null}
      <ul className="grid" style={{ listStyle: "none", padding: 0, margin: 0 }}>
        {shown.map((n) => (
          <li key={n}>
            <ServiceCard name={n} view={live.status[n]} samples={live.traffic[n] ?? []} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function ServiceCard({
  name,
  view,
  samples,
}: {
  name: string;
  view: any;
  samples: { at: number; traffic: any[] }[];
}) {
  const s = view?.status;
  const rows = versionRows(view, observedShare(samples));
  const v = lastVerdict(view);
  const href = `#/services/${encodeURIComponent(name)}`;
  return (
    // A link (Enter opens it, as for any link); Space opens it too, as on a button-like card.
    <a
      className="card"
      href={href}
      data-service={name}
      onKeyDown={(e) => {
        if (e.key === " ") {
          e.preventDefault();
          go(href);
        }
      }}
    >
      <div className="head">
        <span className="name">{name}</span>
        <PhaseChip phase={s?.phase} />
      </div>
      <p className="muted small">
        {view?.strategy ?? "?"}
        {s?.canaryVersion
          ? ` · ${s.stableVersion} → ${s.canaryVersion}`
          : s?.stableVersion
            ? ` · ${s.stableVersion}`
            : ""}
        {s?.stepIndex !== null && s?.stepIndex !== undefined && s?.canaryVersion
          ? ` · step ${Math.min(s.stepIndex + 1, view.steps?.length ?? 0)}/${view.steps?.length ?? 0}`
          : ""}
      </p>
      <table className="versions">
        <thead>
          <tr>
            <th>Version</th>
            <th className="num">Set</th>
            <th className="num">Observed</th>
            <th style={{ width: "35%" }}>
              <span className="sr-only">Split</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.version}>
              <td>
                {r.version} <span className="muted small">{r.role === "other" ? "" : r.role}</span>
              </td>
              <td className="num" data-testid={`set-${r.version}`}>
                {r.setWeight}%
              </td>
              <td className="num">{r.observed === null ? "–" : pct(r.observed)}</td>
              <td>
                <div className="bar" aria-hidden="true">
                  <span
                    style={{
                      width: `${r.setWeight}%`,
                      background: r.role === "canary" ? "var(--c2)" : "var(--c1)",
                    }}
                  />
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="small">{s?.message}</p>
      {v ? (
        <p className="small">
          <OutcomeChip outcome={v.outcome} /> <strong>{v.metric}</strong>: {v.explanation}
        </p>
      ) : null}
    </a>
  );
}
