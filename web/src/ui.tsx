// Shared pieces: the phase chip, the confirm dialog, formatting, hash links.
import { type ReactNode, useEffect, useRef, useState } from "react";

export function go(hash: string): void {
  window.location.hash = hash;
}

export function useHash(): string {
  const [h, setH] = useState(window.location.hash);
  useEffect(() => {
    const f = () => setH(window.location.hash);
    window.addEventListener("hashchange", f);
    return () => window.removeEventListener("hashchange", f);
  }, []);
  return h;
}

const ATTENTION = new Set(["Paused", "Degraded"]);

export function PhaseChip({ phase }: { phase: string | undefined }) {
  const p = phase ?? "Pending";
  const cls =
    p === "Degraded"
      ? "bad"
      : p === "Paused"
        ? "warn"
        : p === "Progressing"
          ? "info"
          : p === "Healthy" || p === "Completed"
            ? "ok"
            : "";
  return (
    <span className={`chip ${cls}`} title={ATTENTION.has(p) ? "needs attention" : undefined}>
      {p}
      {ATTENTION.has(p) ? " · needs attention" : ""}
    </span>
  );
}

export function OutcomeChip({ outcome }: { outcome: string | undefined }) {
  const o = outcome ?? "pending";
  const cls =
    o === "pass" || o === "Successful"
      ? "ok"
      : o === "fail" || o === "Failed" || o === "Error" || o === "error"
        ? "bad"
        : o === "Running"
          ? "info"
          : "warn";
  return <span className={`chip ${cls}`}>{o}</span>;
}

export const pct = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(digits)}%`;
export const ms = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? "–"
    : x >= 100
      ? `${x.toFixed(0)} ms`
      : `${x.toFixed(1)} ms`;
export const num = (x: number | null | undefined, digits = 3) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? "–"
    : Number(x.toPrecision(digits)).toString();

/** "1 pair", "0 pairs": the dashboard's copy of src/core/plural.ts (the web build imports no src). */
export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function time(t: number | null | undefined): string {
  if (t === null || t === undefined) return "–";
  return new Date(t).toLocaleTimeString(undefined, { hour12: false });
}

export function ago(t: number | null | undefined, now = Date.now()): string {
  if (t === null || t === undefined) return "–";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

/**
 * A confirmation: a modal <dialog> (Escape closes it, focus stays inside), with an optional
 * reason field. `onConfirm` resolves when done; its error is shown in the dialog.
 */
export function Confirm(props: {
  open: boolean;
  title: string;
  body: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  reason?: "optional" | "required";
  onConfirm: (reason: string) => Promise<void>;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      setReason("");
      setError(null);
      d.showModal();
    } else if (!props.open && d.open) d.close();
  }, [props.open]);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await props.onConfirm(reason.trim());
      props.onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const needReason = props.reason === "required" && reason.trim() === "";
  return (
    <dialog ref={ref} onClose={props.onClose} aria-labelledby="confirm-title">
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (!needReason) void submit();
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        <div>{props.body}</div>
        {props.reason ? (
          <div className="field" style={{ marginTop: "0.75rem" }}>
            <label htmlFor="confirm-reason">
              Reason{props.reason === "required" ? "" : " (optional)"}
            </label>
            <input
              id="confirm-reason"
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              maxLength={500}
              required={props.reason === "required"}
            />
          </div>
        ) : null}
        {error ? (
          <p className="error" role="alert">
            {error}
          </p>
        ) : null}
        <div className="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button
            type="submit"
            className={props.danger ? "danger" : "primary"}
            disabled={busy || needReason}
          >
            {busy ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
