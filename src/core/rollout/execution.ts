/**
 * Step execution: the candidate must be ready before the steps run, then each step runs by its
 * kind (`../steps/`) until one waits or all are done.
 */
import { formatDuration } from "../duration.js";
import type { RolloutStep } from "../model.js";
import { replicasOf } from "../replicas.js";
import { kindOf, type StepContext } from "../steps/index.js";
import { DEFAULT_PROGRESS_DEADLINE_SECONDS } from "../strategies/index.js";
import { analysisGate, holdForData } from "./analysis.js";
import { advance, complete, rollBack } from "./transitions.js";
import type { Stage, Work } from "./types.js";
import { earliest, emit, inRollout, setPhase, stepLabel } from "./work.js";

/** 5. A rollout waits until every instance of the new version is ready; a failed one aborts it. */
export const waitForCanary: Stage = {
  name: "waitForCanary",
  run(w) {
    const s = w.status;
    if (!inRollout(s)) return "continue";
    // A rolling update grows the candidate itself, batch by batch.
    if (w.strategy.waitForCandidate === false) return "continue";
    const v = s.canaryVersion as string;
    const want = s.replicas?.[v] ?? replicasOf(w.spec);
    const r = w.input.readiness[v] ?? { ready: 0, failed: 0 };
    if (r.failed > 0) {
      rollBack(
        w,
        "controller",
        `${v} failed to start (${r.message ?? `${r.failed} instance(s) failed`})`,
        {
          ready: r.ready,
          failed: r.failed,
          wanted: want,
        },
      );
      return "stop";
    }
    if (r.ready < want) {
      // The progress deadline counts from when the wait began (a start, or an instance lost).
      s.candidateWaitSince ??= w.now;
      const deadline =
        (w.strategy.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS) * 1000;
      if (!s.pausedByUser && w.now - s.candidateWaitSince > deadline) {
        rollBack(
          w,
          "controller",
          `${v} not ready within the progress deadline (${formatDuration(deadline)}): ${r.ready}/${want} instances ready`,
          { ready: r.ready, wanted: want, deadlineSeconds: deadline / 1000 },
        );
        return "stop";
      }
      w.wakeAt = earliest(w.wakeAt, s.candidateWaitSince + deadline + 1);
      if (!s.pausedByUser)
        setPhase(w, "Progressing", `waiting for ${v}: ${r.ready}/${want} instances ready`);
      return "stop";
    }
    s.candidateWaitSince = null;
    return "continue";
  },
};

/** 6. Run the steps, each by its kind (`steps/`), until one waits or all are done. */
export const runSteps: Stage = {
  name: "steps",
  run(w) {
    const s = w.status;
    if (!inRollout(s)) return "continue";
    if (s.pausedByUser) {
      if (s.phase !== "Paused")
        setPhase(w, "Paused", `paused by a person at ${stepLabel(w, s.stepIndex ?? 0)}`);
      return "stop";
    }
    // Bounded: each iteration either advances a step or returns.
    const ctx = stepContext(w);
    while ((s.stepIndex ?? 0) < w.steps.length) {
      const i = s.stepIndex ?? 0;
      const { kind, body } = kindOf(w.steps[i] as RolloutStep);
      if (kind.run(ctx, i, body) === "wait") return "stop";
      advance(w);
    }
    complete(w);
    return "continue";
  },
};

/** What step kinds see of a reconcile (`steps/types.ts`). */
export function stepContext(w: Work): StepContext {
  return {
    now: w.now,
    name: w.name,
    spec: w.spec,
    input: w.input,
    steps: w.steps,
    status: w.status,
    get stepStartedAt() {
      return w.status.stepStartedAt ?? w.now;
    },
    emit: (type, message, data, actor) => emit(w, type, message, data, actor),
    setPhase: (phase, message) => setPhase(w, phase, message),
    label: (i) => stepLabel(w, i),
    wakeAt: (ms) => {
      w.wakeAt = earliest(w.wakeAt, ms);
    },
    rollBack: (why, data) => rollBack(w, "controller", why, data),
    analysisGate: (i, ref) => analysisGate(w, i, ref),
    holdForData: (i) => holdForData(w, i),
  };
}
