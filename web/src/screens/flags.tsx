// Flags: state, variants, rules, rollout; the kill switch as one button; the history.
import { useEffect, useState } from "react";
import { call } from "../api";
import { useLive } from "../live";
import { Confirm, go, time } from "../ui";

/** One line for a flag override: what it forces. */
function describeOverride(o: any): string {
  const x = o?.override ?? {};
  const parts: string[] = [];
  if (x.state) parts.push(x.state === "DISABLED" ? "turned off" : "turned on");
  if (x.variant !== undefined) parts.push(`variant ${x.variant}`);
  if (x.percentage !== undefined) parts.push(`${x.percentage}%`);
  return parts.join(", ") || "override";
}

export function FlagsScreen() {
  const live = useLive();
  const flags: any[] = live.flags?.flags ?? [];
  return (
    <section aria-labelledby="flags-title">
      <h1 id="flags-title">Flags</h1>
      {!live.ready ? <p className="muted">Connecting…</p> : null}
      {live.ready && flags.length === 0 ? (
        <p className="notice">No flags. Apply a Flag resource to see it here.</p>
      ) : null}
      <div className="panel">
        <table>
          <thead>
            <tr>
              <th>Flag</th>
              <th>State</th>
              <th>Type</th>
              <th>Variants (default)</th>
              <th>Rollout</th>
              <th className="num">Rules</th>
              <th>Override</th>
            </tr>
          </thead>
          <tbody>
            {flags.map((f) => (
              <tr
                key={f.name}
                tabIndex={0}
                className="clickable"
                data-flag={f.name}
                onClick={() => go(`#/flags/${encodeURIComponent(f.name)}`)}
                onKeyDown={(e) => {
                  if (e.key === "Enter" || e.key === " ") {
                    e.preventDefault();
                    go(`#/flags/${encodeURIComponent(f.name)}`);
                  }
                }}
              >
                <td className="nowrap">
                  <a href={`#/flags/${encodeURIComponent(f.name)}`}>{f.name}</a>
                </td>
                <td>
                  <span className={`chip ${f.state === "ENABLED" ? "ok" : "bad"}`}>{f.state}</span>
                </td>
                <td>{f.type}</td>
                <td>
                  {f.variants.join(", ")} <span className="muted small">({f.defaultVariant})</span>
                </td>
                <td>{f.rollout ? `${f.rollout.percentage}% → ${f.rollout.variant}` : "–"}</td>
                <td className="num">{f.rules}</td>
                <td className="small">
                  {f.override ? `${describeOverride(f.override)} · ${f.override.actor ?? ""}` : "–"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function FlagScreen({ name }: { name: string }) {
  const live = useLive();
  const [f, setF] = useState<any>(null);
  const [history, setHistory] = useState<any[]>([]);
  const [ask, setAsk] = useState<null | "disable" | "enable" | "reset">(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => {
    call("GET", `/api/v1/flags/${encodeURIComponent(name)}`)
      .then((x) => {
        setF(x);
        setError(null);
      })
      .catch((e) => setError((e as Error).message));
    call("GET", `/api/v1/flags/${encodeURIComponent(name)}/history?limit=100`)
      .then((h) => setHistory(h.history))
      .catch(() => undefined);
  };
  // Reloaded when the pushed flag list changes.
  // biome-ignore lint/correctness/useExhaustiveDependencies: reloaded when the pushed flag list changes
  useEffect(load, [name, live.flagsSeq]);
  if (error && !f) return <p className="error">{error}</p>;
  if (!f) return <p className="muted">Loading…</p>;
  const e = f.effective;
  const declared = f.resource?.spec ?? e;
  const on = e.state === "ENABLED";
  return (
    <section className="stack" aria-labelledby="flag-title">
      <div>
        <p className="crumbs">
          <a href="#/flags">Flags</a> / {name}
        </p>
        <div className="row">
          <h1 id="flag-title">{name}</h1>
          <span className={`chip ${on ? "ok" : "bad"}`} data-testid="flag-state">
            {e.state}
          </span>
        </div>
      </div>
      <div className="panel">
        <h2>Kill switch</h2>
        <p className="small muted">
          {on
            ? "Turning it off serves the default variant to everyone at once (reason DISABLED), over OFREP and at the router."
            : "The flag is off: everyone gets the default variant."}
        </p>
        <div className="actions">
          {on ? (
            <button type="button" className="danger kill" onClick={() => setAsk("disable")}>
              Kill switch: turn {name} off
            </button>
          ) : (
            <button type="button" className="primary kill" onClick={() => setAsk("enable")}>
              Turn {name} back on
            </button>
          )}
          {f.override ? (
            <button type="button" onClick={() => setAsk("reset")}>
              Remove the override
            </button>
          ) : null}
        </div>
      </div>
      <Confirm
        open={ask !== null}
        title={
          ask === "disable"
            ? `Turn ${name} off for everyone?`
            : ask === "enable"
              ? `Turn ${name} on?`
              : `Remove the override of ${name}?`
        }
        body={
          <p>
            {ask === "disable"
              ? "Every evaluation serves the default variant until it is turned on again."
              : "Evaluations follow the flag's rules and rollout again."}
          </p>
        }
        confirmLabel={ask === "disable" ? "Turn off" : ask === "enable" ? "Turn on" : "Remove"}
        danger={ask === "disable"}
        reason="optional"
        onConfirm={async (reason) => {
          await call(
            "POST",
            `/api/v1/flags/${encodeURIComponent(name)}/${ask}`,
            reason ? { reason } : {},
          );
          load();
        }}
        onClose={() => setAsk(null)}
      />
      <div className="grid2">
        <div className="panel">
          <h2>Variants</h2>
          <table>
            <thead>
              <tr>
                <th>Variant</th>
                <th>Value</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(e.variants).map(([k, v]) => (
                <tr key={k}>
                  <td>
                    {k} {k === e.defaultVariant ? <span className="chip">default</span> : null}
                  </td>
                  <td className="mono">{JSON.stringify(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2 style={{ marginTop: "1rem" }}>Rollout</h2>
          {e.rollout ? (
            <>
              <p>
                {e.rollout.percentage}% of the rest get <strong>{e.rollout.variant}</strong>; the
                others get {e.defaultVariant}.
              </p>
              <div className="bar" aria-hidden="true">
                <span style={{ width: `${e.rollout.percentage}%` }} />
              </div>
            </>
          ) : (
            <p className="muted">No percentage rollout.</p>
          )}
        </div>
        <div className="panel">
          <h2>Rules (in order)</h2>
          {(declared.rules ?? []).length === 0 ? (
            <p className="muted">No targeting rules.</p>
          ) : null}
          <ol>
            {(declared.rules ?? []).map((r: any, i: number) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: rules are positional (evaluated in order)
              <li key={i}>
                <strong>{r.name ?? `rule ${i + 1}`}</strong>: when{" "}
                {[
                  ...(r.conditions ?? []).map(
                    (c: any) => `${c.attribute} ${c.op} ${JSON.stringify(c.value ?? c.values)}`,
                  ),
                  ...(r.segments ?? []).map((s: string) => `in segment ${s}`),
                ].join(" and ") || "always"}{" "}
                →{" "}
                {r.variant ??
                  Object.entries(r.split ?? {})
                    .map(([k, w]) => `${k} ${w}%`)
                    .join(", ")}
              </li>
            ))}
          </ol>
          {f.override ? (
            <p className="notice small">
              Override in force: <strong>{describeOverride(f.override)}</strong>, set by{" "}
              {f.override.actor}
              {f.override.reason ? ` (${f.override.reason})` : ""} at {time(f.override.updatedAt)}.
              The rules above are the declared ones; the override goes first.
            </p>
          ) : null}
        </div>
      </div>
      <div className="panel">
        <h2>History</h2>
        <ol className="history">
          {[...history].reverse().map((h) => (
            <li key={`${h.time}-${h.action}-${h.message}`}>
              <span className="t">{time(h.time)}</span>
              <span className="type">{h.action}</span>
              <span className="muted small">{h.actor}</span>
              <div>{h.message}</div>
            </li>
          ))}
        </ol>
      </div>
    </section>
  );
}
