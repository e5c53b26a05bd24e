/**
 * Durations as users write them ("250ms", "30s", "5m", "1h30m", "1d", or a number of seconds)
 * parsed to milliseconds. Hand-written because it is ten lines and shared by validation and
 * the pure core; Go-style units, as Argo Rollouts' users expect.
 */
import type { DurationInput } from "./model.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** Returns milliseconds, or an error message saying what is wrong. */
export function parseDuration(input: DurationInput): { ms: number } | { error: string } {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0)
      return { error: `must be >= 0 seconds, got ${input}` };
    return { ms: Math.round(input * 1000) };
  }
  const s = input.trim();
  if (s === "") return { error: 'must be a duration like "30s", "5m" or "1h30m", got ""' };
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  while (pos < s.length) {
    PART.lastIndex = pos;
    const m = PART.exec(s);
    if (!m) {
      return {
        error: `must be a duration like "30s", "5m" or "1h30m", got ${JSON.stringify(input)}`,
      };
    }
    total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
    pos = PART.lastIndex;
  }
  return { ms: Math.round(total) };
}

/** Milliseconds of a duration already validated by the resource schema. */
export function durationMs(input: DurationInput): number {
  const r = parseDuration(input);
  if ("error" in r) throw new Error(r.error);
  return r.ms;
}

/** "1m30s" style for people. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}
