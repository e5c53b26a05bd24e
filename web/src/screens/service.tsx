// Service: the step timeline, set and observed weight over time, per-version error rate,
// latency and request rate with the judges' thresholds, each verdict with its explanation and
// its bound over time, instances, the history, and the actions (each confirmed).
import { useEffect, useMemo, useState } from "react";
import { call } from "../api";
import { type Band, COLORS, LineChart, type Series, seriesColor, type Threshold } from "../chart";
import { stepLabel, type VerdictItem, verdictsOf } from "../derive";
import { useLive } from "../live";
import { ago, Confirm, ms, num, OutcomeChip, PhaseChip, time } from "../ui";

type Action = "promote" | "promote-full" | "pause" | "resume" | "abort" | "undo" | "retry";

const ACTIONS: {
  key: Action;
  label: string;
  help: string;
  danger?: boolean;
  reason: "optional" | "required";
}[] = [
  { key: "promote", label: "Promote", help: "Go on to the next step now.", reason: "optional" },
  {
    key: "promote-full",
    label: "Promote full",
    help: "Skip every remaining step: 100% to the new version.",
    reason: "optional",
  },
  {
    key: "pause",
    label: "Pause",
    help: "Hold the rollout at its current step.",
    reason: "optional",
  },
  { key: "resume", label: "Resume", help: "Go on from where it was paused.", reason: "optional" },
  {
    key: "abort",
    label: "Abort",
    help: "Send all traffic back to the stable version.",
    danger: true,
    reason: "required",
  },
  {
    key: "undo",
    label: "Undo",
    help: "Go back to the previous stable version (a new rollout).",
    danger: true,
    reason: "optional",
  },
  { key: "retry", label: "Retry", help: "Start the aborted rollout again.", reason: "optional" },
];

function enabled(a: Action, view: any): boolean {
  const s = view?.status;
  const inRollout = !!s?.canaryVersion;
  // While the data plane does not serve, the rollout's own phase is underneath and nothing
  // moves it forward (the controller refuses promote).
  const held = s?.dataPlane?.serving === false;
  const phase = held ? s.dataPlane.underlying.phase : s?.phase;
  switch (a) {
    case "promote":
    case "promote-full":
      return inRollout && !held;
    case "abort":
      return inRollout;
    case "pause":
      return inRollout && !s?.pausedByUser;
    case "resume":
      return inRollout && (s?.pausedByUser || phase === "Paused");
    case "retry":
      return !!s?.abortedVersion;
    case "undo":
      return inRollout || (s?.previousStableVersions?.length ?? 0) > 0;
  }
}

export function ServiceScreen({ name }: { name: string }) {
  const live = useLive();
  const view = live.status[name];
  const seq = live.seq[name] ?? 0;
  const [series, setSeries] = useState<any>(null);
  const [history, setHistory] = useState<any[]>([]);
  const [templates, setTemplates] = useState<any[]>([]);
  const [action, setAction] = useState<Action | null>(null);
  const [done, setDone] = useState<string | null>(null);

  useEffect(() => {
    call("GET", `/api/v1/services/${encodeURIComponent(name)}/history?limit=1000`)
      .then((h) => setHistory(h.events))
      .catch(() => setHistory([]));
    call("GET", "/api/v1/analysistemplates")
      .then((t) => setTemplates(t.items))
      .catch(() => setTemplates([]));
  }, [name]);
  // Refetched when the server pushes a change of this service, never on a timer of its own.
  // biome-ignore lint/correctness/useExhaustiveDependencies: refetched on every other push of this service (the tick), never on a timer
  useEffect(() => {
    call("GET", `/api/v1/services/${encodeURIComponent(name)}/series?seconds=600&step=5`)
      .then(setSeries)
      .catch(() => undefined);
  }, [name, Math.floor(seq / 2)]);

  const events = useMemo(() => {
    const byId = new Map<number, any>();
    for (const e of history) byId.set(e.id, e);
    for (const e of live.events[name] ?? []) byId.set(e.id, e);
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }, [history, live.events, name]);

  // The charts start where the data does (or the rollout did), not 10 minutes back.
  const start = useMemo(() => {
    const first = (series?.points ?? []).find((p: any) =>
      Object.values(p.versions).some((v: any) => v.requests > 0),
    );
    const began = view?.status?.rolloutStartedAt;
    const t = first ? first.t * 1000 : undefined;
    if (began && series && began >= series.fromSec * 1000 && (t === undefined || began < t))
      return began;
    return t;
  }, [series, view?.status?.rolloutStartedAt]);

  if (!live.ready) return <p className="muted">Connecting…</p>;
  if (!view)
    return (
      <section>
        <p className="crumbs">
          <a href="#/">Services</a> /
        </p>
        <h1>{name}</h1>
        <p className="notice">No service named {name} (it may have been deleted).</p>
      </section>
    );
  const s = view.status;
  const act = ACTIONS.find((a) => a.key === action);
  const run = async (a: Action, reason: string) => {
    const path = a === "promote-full" ? "promote" : a;
    const body: Record<string, unknown> = {};
    if (a === "promote-full") body.full = true;
    if (reason) body.reason = reason;
    const r = await call("POST", `/api/v1/services/${encodeURIComponent(name)}/${path}`, body);
    setDone(r.command?.message ?? (r.undo ? `undo: ${r.undo.from} → ${r.undo.to}` : "done"));
  };
  return (
    <section aria-labelledby="svc-title" className="stack">
      <div>
        <p className="crumbs">
          <a href="#/">Services</a> / {name}
        </p>
        <div className="row">
          <h1 id="svc-title">{name}</h1>
          <PhaseChip phase={s?.phase} />
          <span className="muted">{view.strategy}</span>
          {s?.shadow || view.shadow?.report ? (
            <a href={`#/services/${encodeURIComponent(name)}/shadow`}>Shadow report</a>
          ) : null}
          {s?.experiment?.name ? (
            <a href={`#/experiments/${encodeURIComponent(s.experiment.name)}`}>
              Experiment {s.experiment.name}
            </a>
          ) : null}
        </div>
        {s?.dataPlane?.serving === false ? (
          // Not served: said first and loudly, with the rollout's own phase underneath.
          <>
            <p className="error" role="alert">
              <strong>Not serving</strong> since {time(s.dataPlane.since)}: {s.dataPlane.reason}
            </p>
            {s.canaryVersion ? (
              <p>
                The rollout holds ({s.dataPlane.underlying.phase}: {s.dataPlane.underlying.message})
                until its route table is served; promote is refused meanwhile.
              </p>
            ) : view.desiredVersion !== s.stableVersion &&
              view.desiredVersion !== s.abortedVersion ? (
              <p>The rollout to {view.desiredVersion} starts once the route table is served.</p>
            ) : null}
          </>
        ) : (
          <p>{s?.message}</p>
        )}
        <p className="muted small">
          stable <strong>{s?.stableVersion ?? "–"}</strong>
          {s?.canaryVersion ? (
            <>
              {" "}
              · rolling out <strong>{s.canaryVersion}</strong> at {s.canaryWeight}% since{" "}
              {time(s.rolloutStartedAt)}
            </>
          ) : null}
          {view.listener ? ` · router ${view.listener.host}:${view.listener.port}` : ""}
          {view.dataPlane?.provider ? ` · data plane ${view.dataPlane.provider}` : ""}
        </p>
        {view.controller && view.controller.leaseMs !== null ? (
          <p className="muted small">
            {view.controller.leader ? (
              <>
                controller <span className="mono">{view.controller.leader}</span> leads since{" "}
                {time(view.controller.since)} (epoch {view.controller.epoch})
              </>
            ) : (
              <span className="chip warn">no controller leads (the lease was released)</span>
            )}
          </p>
        ) : null}
      </div>

      <div className="panel">
        <h2>Actions</h2>
        <div className="actions">
          {ACTIONS.map((a) => (
            <button
              key={a.key}
              type="button"
              disabled={!enabled(a.key, view)}
              title={a.help}
              onClick={() => {
                setDone(null);
                setAction(a.key);
              }}
            >
              {a.label}
            </button>
          ))}
        </div>
        {done ? (
          <p className="notice small" role="status" style={{ marginTop: "0.5rem" }}>
            {done}
          </p>
        ) : null}
      </div>
      <Confirm
        open={act !== undefined}
        title={`${act?.label ?? ""} ${name}?`}
        body={<p>{act?.help}</p>}
        confirmLabel={act?.label ?? "OK"}
        danger={act?.danger}
        reason={act?.reason}
        onConfirm={(reason) => run(action!, reason)}
        onClose={() => setAction(null)}
      />

      <Steps view={view} />
      <div className="grid2">
        <WeightChart view={view} series={series} events={events} xMin={start} />
        <MetricCharts view={view} series={series} templates={templates} xMin={start} />
      </div>
      <Verdicts
        view={view}
        live={live.verdicts.filter((v) => v.service === name)}
        events={events}
      />
      <div className="grid2">
        <Instances view={view} />
        <History events={events} />
      </div>
    </section>
  );
}

function Steps({ view }: { view: any }) {
  const s = view.status;
  const idx = s?.canaryVersion ? (s.stepIndex ?? 0) : null;
  return (
    <div className="panel">
      <h2>Steps</h2>
      {view.steps?.length ? (
        <ol className="steps" aria-label="Rollout steps">
          {view.steps.map((st: any, i: number) => {
            const state = idx === null ? "" : i < idx ? "done" : i === idx ? "current" : "";
            return (
              // biome-ignore lint/suspicious/noArrayIndexKey: steps are positional
              <li key={i} className={state} aria-current={state === "current" ? "step" : undefined}>
                <span className="n">{i + 1}.</span>
                {stepLabel(st)}
                {state === "current" ? <span className="sr-only"> (current step)</span> : null}
              </li>
            );
          })}
        </ol>
      ) : (
        <p className="muted">This strategy has no steps.</p>
      )}
      {idx === null ? <p className="muted small">No rollout in progress.</p> : null}
    </div>
  );
}

function seriesFor(
  series: any,
  version: string,
  key: string,
  scale = 1,
): [number, number | null][] {
  return (series?.points ?? []).map((p: any) => {
    const v = p.versions[version];
    return [p.t * 1000, v && v.requests > 0 && v[key] !== null ? v[key] * scale : null];
  });
}

function WeightChart({
  view,
  series,
  events,
  xMin,
}: {
  view: any;
  series: any;
  events: any[];
  xMin: number | undefined;
}) {
  const s = view.status;
  const canary =
    s?.canaryVersion ?? events.filter((e) => e.type === "WeightChanged").at(-1)?.data?.version;
  const from = Math.max(xMin ?? 0, (series?.fromSec ?? 0) * 1000);
  const set: [number, number | null][] = [];
  let w = 0;
  for (const e of events) {
    if (e.type === "RolloutStarted" || e.type === "RolloutAborted") w = 0;
    else if (e.type === "WeightChanged" && typeof e.data?.to === "number") w = e.data.to;
    else if (e.type === "RolloutCompleted") w = 100;
    else continue;
    set.push([Math.max(e.time, from), w]);
  }
  const nowMs = (series?.toSec ?? 0) * 1000;
  const setLine = set.filter(([t]) => t >= from);
  const before = set.filter(([t]) => t < from).at(-1);
  if (before) setLine.unshift([from, before[1]]);
  if (setLine.length === 0 && series) setLine.push([from, s?.canaryWeight ?? 0]);
  if (series) setLine.push([nowMs, s?.canaryVersion ? s.canaryWeight : (setLine.at(-1)?.[1] ?? 0)]);
  const list: Series[] = [
    {
      name: `set weight${canary ? ` (${canary})` : ""}`,
      color: COLORS[1]!,
      points: setLine,
      step: true,
    },
  ];
  if (canary)
    list.push({
      name: `observed share (${canary})`,
      color: COLORS[0]!,
      points: seriesFor(series, canary, "share", 100),
    });
  return (
    <LineChart
      title="Candidate weight: set and observed"
      series={list}
      format={(y) => `${Math.round(y)}%`}
      yMin={0}
      yMax={100}
      xMin={from}
      empty="No rollout in the last 10 minutes."
    />
  );
}

/** The thresholds a judge implies on a per-version chart, from its spec and the stable's level. */
function thresholdsFor(
  templates: any[],
  names: Set<string>,
  source: string,
  base: number | null,
): Threshold[] {
  const out: Threshold[] = [];
  for (const t of templates) {
    if (!names.has(t.name)) continue;
    for (const m of t.resource.spec.metrics ?? []) {
      const src =
        typeof m.source?.builtin === "string" ? m.source.builtin : m.source?.builtin?.metric;
      if (src !== source) continue;
      const j = m.judge ?? {};
      const scale = source === "error_rate" ? 100 : 1;
      if (j.threshold?.max !== undefined)
        out.push({
          label: `${m.name}: max ${level(source, j.threshold.max)}`,
          y: j.threshold.max * scale,
        });
      if (j.threshold?.min !== undefined)
        out.push({
          label: `${m.name}: min ${level(source, j.threshold.min)}`,
          y: j.threshold.min * scale,
        });
      if (base !== null && j.sequential?.maxIncrease !== undefined)
        out.push({
          label: `${m.name}: stable + ${fmt(source, j.sequential.maxIncrease)}`,
          y: (base + j.sequential.maxIncrease) * scale,
        });
      if (base !== null && j.relative?.maxIncrease !== undefined)
        out.push({
          label: `${m.name}: stable ${j.relative.mode === "ratio" ? `× ${j.relative.maxIncrease}` : `+ ${fmt(source, j.relative.maxIncrease)}`}`,
          y:
            (j.relative.mode === "ratio"
              ? base * j.relative.maxIncrease
              : base + j.relative.maxIncrease) * scale,
        });
      if (base !== null && j.mannWhitney?.maxRelativeIncrease !== undefined)
        out.push({
          label: `${m.name}: stable p50 + ${Math.round(j.mannWhitney.maxRelativeIncrease * 100)}%`,
          y: base * (1 + j.mannWhitney.maxRelativeIncrease),
        });
    }
  }
  return out;
}

/** A level (a threshold) as the chart shows it. */
function level(source: string, v: number): string {
  return source === "error_rate"
    ? `${+(v * 100).toFixed(2)}%`
    : source === "latency"
      ? `${v} ms`
      : String(v);
}

/** A difference (an allowed increase) as the chart shows it. */
function fmt(source: string, v: number): string {
  return source === "error_rate"
    ? `${+(v * 100).toFixed(2)} points`
    : source === "latency"
      ? `${v} ms`
      : String(v);
}

function stableMean(series: any, version: string | null, key: string): number | null {
  if (!version || !series) return null;
  let sum = 0;
  let n = 0;
  for (const p of series.points) {
    const v = p.versions[version];
    if (v && v.requests > 0 && v[key] !== null) {
      sum += v[key] * v.requests;
      n += v.requests;
    }
  }
  return n === 0 ? null : sum / n;
}

function MetricCharts({
  view,
  series,
  templates,
  xMin,
}: {
  view: any;
  series: any;
  templates: any[];
  xMin: number | undefined;
}) {
  const versions: string[] = series?.versions ?? [];
  const s = view.status;
  const names = new Set<string>();
  for (const st of view.steps ?? []) for (const t of st.analysis?.templates ?? []) names.add(t);
  for (const r of [s?.analysis?.step?.run, s?.analysis?.background])
    for (const t of r?.templates ?? []) names.add(t);
  const stable = s?.stableVersion ?? null;
  // Stable and candidate keep their colours everywhere; every other version gets its own.
  const others = versions.filter((v) => v !== stable && v !== s?.canaryVersion);
  const color = (v: string) =>
    v === s?.canaryVersion
      ? COLORS[1]!
      : v === stable
        ? COLORS[0]!
        : seriesColor(2 + others.indexOf(v));
  const by = (key: string, scale = 1, dashed = false, suffix = "") =>
    versions.map((v) => ({
      name: `${v}${suffix}`,
      color: color(v),
      points: seriesFor(series, v, key, scale),
      dashed,
    }));
  return (
    <>
      <LineChart
        title="Error rate (5xx and requests abandoned by clients) per version"
        series={by("errorRate", 100)}
        thresholds={thresholdsFor(
          templates,
          names,
          "error_rate",
          stableMean(series, stable, "errorRate"),
        )}
        format={(y) => `${+y.toFixed(2)}%`}
        yMin={0}
        xMin={xMin}
      />
      <LineChart
        title="Latency p50 and p99 per version"
        series={[...by("p50Ms", 1, false, " p50"), ...by("p99Ms", 1, true, " p99")]}
        thresholds={thresholdsFor(templates, names, "latency", stableMean(series, stable, "p50Ms"))}
        format={(y) => ms(y)}
        yMin={0}
        xMin={xMin}
      />
      <LineChart
        title="Request rate per version"
        series={by("rps")}
        thresholds={thresholdsFor(templates, names, "request_rate", null)}
        format={(y) => `${num(y, 3)}/s`}
        yMin={0}
        xMin={xMin}
      />
    </>
  );
}

function Verdicts({ view, live, events }: { view: any; live: any[]; events: any[] }) {
  // The status keeps the last few verdicts per metric; the pushed ones extend it while the page is open.
  const all = new Map<string, VerdictItem>();
  for (const l of live) {
    const v = l.verdict;
    all.set(`${l.run}|${l.metric}|${v.at}`, {
      run: l.run,
      metric: l.metric,
      template: l.template,
      at: v.at,
      outcome: v.verdict.outcome,
      explanation: v.verdict.explanation,
      statistic: v.verdict.statistic,
      pValue: v.verdict.pValue,
      bound: v.verdict.bound,
      effect: v.verdict.effect,
      test: v.verdict.test,
      inputs: v.verdict.inputs,
      judge: v.verdict.inputs?.judge,
    });
  }
  for (const v of verdictsOf(view)) all.set(`${v.run}|${v.metric}|${v.at}`, v);
  // Runs that ended are gone from the status; their counted verdicts that did not pass are
  // in the history (without the bound).
  const known = [...all.values()];
  for (const e of events) {
    if (e.type !== "AnalysisVerdict" || !e.data?.metric) continue;
    const d = e.data;
    if (
      known.some((v) => v.run === d.run && v.metric === d.metric && Math.abs(v.at - e.time) < 1500)
    )
      continue;
    all.set(`${d.run}|${d.metric}|${e.time}`, {
      run: d.run,
      metric: d.metric,
      template: d.template ?? "",
      at: e.time,
      outcome: d.outcome,
      explanation: e.message.replace(/^[^:]+: /, ""),
      statistic: d.statistic,
      pValue: d.pValue,
      effect: d.effect,
    });
  }
  const items = [...all.values()].sort((a, b) => a.at - b.at);
  const groups = new Map<string, VerdictItem[]>();
  for (const v of items) {
    const k = `${v.run}|${v.metric}`;
    groups.set(k, [...(groups.get(k) ?? []), v]);
  }
  const runs = [
    ["step", view.status?.analysis?.step?.run],
    ["background", view.status?.analysis?.background],
  ].filter(([, r]) => r);
  return (
    <div className="panel">
      <h2>Analysis</h2>
      {runs.length === 0 && groups.size === 0 ? (
        <p className="muted">No analysis in this rollout.</p>
      ) : null}
      {runs.map(([k, r]) => (
        <p key={k as string}>
          <strong>{k === "step" ? "Step analysis" : "Background analysis"}</strong>{" "}
          <OutcomeChip outcome={(r as any).phase} />{" "}
          <span className="small">{(r as any).message}</span>
        </p>
      ))}
      <div className="grid2">
        {[...groups.entries()].map(([k, vs]) => (
          <VerdictGroup key={k} items={vs} />
        ))}
      </div>
    </div>
  );
}

function VerdictGroup({ items }: { items: VerdictItem[] }) {
  const last = items[items.length - 1]!;
  const j = last.judge ?? last.inputs?.judge ?? {};
  const limit = j.sequential?.maxIncrease ?? j.relative?.maxIncrease ?? j.threshold?.max;
  const boundName = j.sequential ? "always-valid bound" : "confidence interval";
  const withBound = items.filter(
    (v) => v.bound && Number.isFinite(v.bound.lower) && Number.isFinite(v.bound.upper),
  );
  const clamp = (x: number) =>
    limit !== undefined ? Math.max(-4 * limit, Math.min(4 * limit, x)) : x;
  const bands: Band[] = withBound.length
    ? [
        {
          name: boundName,
          color: "var(--c1)",
          points: withBound.map((v) => [v.at, clamp(v.bound!.lower), clamp(v.bound!.upper)]),
        },
      ]
    : [];
  const est: Series[] = [];
  if (withBound.length)
    est.push({
      name: "estimate",
      color: "var(--c1)",
      points: withBound.map((v) => [
        v.at,
        typeof v.effect?.value === "number" ? clamp(v.effect.value) : null,
      ]),
    });
  else if (items.some((v) => v.statistic !== undefined))
    est.push({
      name: "statistic",
      color: "var(--c1)",
      points: items.map((v) => [v.at, v.statistic ?? null]),
    });
  const thresholds: Threshold[] =
    limit !== undefined ? [{ label: `limit ${limit}`, y: limit }] : [];
  return (
    <div>
      <h3>
        {last.metric}{" "}
        <span className="muted small">
          ({last.run}, {last.template})
        </span>
      </h3>
      {items
        .slice(-3)
        .reverse()
        .map((v) => (
          <div key={v.at} className={`verdict ${v.outcome}`}>
            <OutcomeChip outcome={v.outcome} /> <span className="muted small">{time(v.at)}</span>
            <p className="small">{v.explanation}</p>
            <p className="muted small">
              {[
                v.test,
                v.statistic !== undefined ? `statistic ${num(v.statistic)}` : "",
                v.pValue !== undefined ? `p = ${num(v.pValue)}` : "",
                v.bound ? `bound [${num(v.bound.lower)}, ${num(v.bound.upper)}]` : "",
              ]
                .filter(Boolean)
                .join(" · ")}
            </p>
          </div>
        ))}
      {est.length ? (
        <LineChart
          title={
            withBound.length
              ? `${last.metric}: bound over time`
              : `${last.metric}: statistic over time`
          }
          series={est}
          bands={bands}
          thresholds={thresholds}
          format={(y) => num(y, 2)}
        />
      ) : null}
    </div>
  );
}

function Instances({ view }: { view: any }) {
  const list: any[] = view.instances ?? [];
  return (
    <div className="panel">
      <h2>Instances</h2>
      {list.length === 0 ? (
        <p className="muted">No instances.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Version</th>
              <th>Instance</th>
              <th>Readiness</th>
              <th className="num">Restarts</th>
            </tr>
          </thead>
          <tbody>
            {list.map((i) => (
              <tr key={i.id}>
                <td>{i.version}</td>
                <td className="mono small">{i.url}</td>
                <td>
                  <span
                    className={`chip ${i.state === "ready" ? "ok" : i.state === "failed" ? "bad" : "warn"}`}
                  >
                    {i.state}
                  </span>
                  {i.message ? <div className="small muted">{i.message}</div> : null}
                </td>
                <td className="num">
                  {i.restarts ?? 0}
                  {i.lastExit ? <div className="small muted">{i.lastExit}</div> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function History({ events }: { events: any[] }) {
  return (
    <div className="panel">
      <h2>History</h2>
      <ol className="history" aria-label="History, newest first">
        {[...events].reverse().map((e) => (
          <li key={e.id}>
            <span className="t" title={new Date(e.time).toISOString()}>
              {time(e.time)}
            </span>
            <span className="type">{e.type}</span>
            <span className="muted small">{e.actor}</span>
            <div>{e.message}</div>
          </li>
        ))}
      </ol>
      {events.length === 0 ? (
        <p className="muted">Nothing yet.</p>
      ) : (
        <p className="muted small">latest {ago(events.at(-1)?.time)}</p>
      )}
    </div>
  );
}
