/** Small helpers every stage uses on the working state of a reconcile. */
import type { EventData, EventType } from "../events.js";
import type { ServiceStatus } from "../model.js";
import type { Work } from "./types.js";

/** Appends an event of the catalogue (`events.ts`) to this reconcile's history. */
export function emit<T extends EventType>(
  w: Work,
  type: T,
  message: string,
  data: EventData[T],
  actor = "controller",
) {
  w.events.push({ service: w.name, type, actor, message, data, time: w.now });
}

export function setPhase(w: Work, phase: ServiceStatus["phase"], message: string): void {
  if (w.status.phase !== phase) w.status.lastTransitionAt = w.now;
  w.status.phase = phase;
  w.status.message = message;
}

export function inRollout(s: ServiceStatus): boolean {
  return s.canaryVersion !== null;
}

export function stepLabel(w: Work, i: number): string {
  return `step ${i + 1}/${w.steps.length}`;
}

export function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}
