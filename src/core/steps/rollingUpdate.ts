/**
 * `rollingUpdate` (the rolling strategy): replaces the old version's instances batch by batch
 * with Kubernetes' Deployment semantics, so users see no downtime:
 *   - at most `replicas + maxSurge` instances run in all (surge rounds up);
 *   - at least `replicas - maxUnavailable` instances stay available (rounds down);
 *   - a new instance counts as available once it has been ready for `minReadySeconds`;
 *   - traffic follows ready instances: each version's weight is its share of them;
 *   - with `analysis`, each batch must pass it before the next batch starts;
 *   - no progress for `progressDeadlineSeconds`, or a new instance that fails, aborts: the
 *     old version grows back to full size and takes all traffic again.
 * Progress lives in `status.rolling`, so a restarted controller resumes where it was.
 */
import { formatDuration } from "../duration.js";
import type { RollingState, RollingUpdateStep } from "../model.js";
import { fenceposts, replicasOf } from "../replicas.js";
import { roundWeight } from "./setWeight.js";
import type { StepKind } from "./types.js";

export const rollingUpdate: StepKind<RollingUpdateStep> = {
  key: "rollingUpdate",
  describe: (b) =>
    `rolling update (maxSurge ${b.maxSurge}, maxUnavailable ${b.maxUnavailable}${
      b.analysis ? `, analysis ${b.analysis.templates.join(", ")} between batches` : ""
    })`,
  clear(status) {
    status.rolling = null;
  },
  run(ctx, i, b) {
    const s = ctx.status;
    const nv = s.canaryVersion as string;
    const ov = s.stableVersion as string;
    const n = replicasOf(ctx.spec);
    const { surge, unavailable } = fenceposts(b.maxSurge, b.maxUnavailable, n);
    s.rolling ??= {
      newReplicas: 0,
      oldReplicas: n,
      available: 0,
      seenReady: 0,
      readySince: null,
      lastProgressAt: ctx.now,
      gatedAt: null,
    };
    const st: RollingState = s.rolling;
    const rn = ctx.input.readiness[nv] ?? { ready: 0, failed: 0 };
    const ro = ctx.input.readiness[ov] ?? { ready: 0, failed: 0 };
    const numbers = () => ({
      version: nv,
      newReplicas: st.newReplicas,
      oldReplicas: st.oldReplicas,
      available: st.available,
      replicas: n,
      maxSurge: surge,
      maxUnavailable: unavailable,
    });

    // 1. A new instance that failed (exited, or never ready in time) ends the update.
    if (rn.failed > 0) {
      ctx.rollBack(`${nv} failed to start (${rn.message ?? `${rn.failed} instance(s) failed`})`, {
        ...numbers(),
        failed: rn.failed,
      });
      return "wait";
    }
    const newReady = Math.min(rn.ready, st.newReplicas);
    const oldReady = Math.min(ro.ready, st.oldReplicas);

    // 2. Availability: ready instances count once they have stayed ready for minReadySeconds.
    //    Conservative: a further instance becoming ready restarts the wait for all pending ones.
    if (newReady < st.available) st.available = newReady;
    if (newReady <= st.available) {
      st.seenReady = newReady;
      st.readySince = null;
    } else {
      if (newReady !== st.seenReady || st.readySince === null) {
        st.seenReady = newReady;
        st.readySince = ctx.now;
      }
      const due = st.readySince + b.minReadySeconds * 1000;
      if (ctx.now >= due) {
        st.available = newReady;
        st.readySince = null;
        st.lastProgressAt = ctx.now;
      } else ctx.wakeAt(due);
    }

    // 3. Done: every new instance available and no old one left.
    const done = (): boolean => {
      if (st.newReplicas !== n || st.available < n || st.oldReplicas !== 0) return false;
      s.canaryWeight = 100;
      s.replicas = { [nv]: n, [ov]: 0 };
      ctx.emit("StepCompleted", `${ctx.label(i)} (rolling update) done: ${n}/${n} replaced`, {
        step: i,
        ...numbers(),
      });
      return true;
    };
    if (done()) return "next";

    // 4. The progress deadline: no instance became available and none was replaced for too long.
    const deadline = b.progressDeadlineSeconds * 1000;
    if (ctx.now - st.lastProgressAt > deadline) {
      ctx.rollBack(
        `no progress for ${formatDuration(deadline)} (progressDeadlineSeconds): ${st.available}/${st.newReplicas} new instances available`,
        numbers(),
      );
      return "wait";
    }
    ctx.wakeAt(st.lastProgressAt + deadline + 1);

    // 5. Between batches, the analysis: a batch that is fully available must pass it first.
    let open = true;
    let analysing = false;
    const batchDone = st.newReplicas > 0 && st.available >= st.newReplicas;
    if (b.analysis && st.newReplicas < n && st.newReplicas > 0) {
      if (!batchDone) open = false;
      else if (st.gatedAt !== st.newReplicas) {
        const g = ctx.analysisGate(i, b.analysis);
        if (g === "stopped") return "wait";
        if (g === "running") {
          open = false;
          analysing = true;
        } else {
          st.gatedAt = st.newReplicas;
          st.lastProgressAt = ctx.now;
        }
      }
    }

    if (open) {
      // 6. Scale the old version down as far as availability allows.
      const minAvailable = n - unavailable;
      const removable = Math.max(0, oldReady + st.available - minAvailable);
      const oldTarget = st.oldReplicas - Math.min(st.oldReplicas, removable);
      // 7. Scale the new version up into the room the surge leaves.
      const newTarget = Math.min(n, Math.max(st.newReplicas, n + surge - oldTarget));
      if (oldTarget !== st.oldReplicas || newTarget !== st.newReplicas) {
        const from = { newReplicas: st.newReplicas, oldReplicas: st.oldReplicas };
        st.oldReplicas = oldTarget;
        st.newReplicas = newTarget;
        if (oldTarget !== from.oldReplicas) st.lastProgressAt = ctx.now;
        ctx.emit(
          "BatchScaled",
          `${nv} ${from.newReplicas} -> ${newTarget}, ${ov} ${from.oldReplicas} -> ${oldTarget} (${st.available} new available)`,
          { step: i, from, ...numbers() },
        );
      }
    }
    s.replicas = { [nv]: st.newReplicas, [ov]: st.oldReplicas };
    if (done()) return "next";

    // 8. Traffic follows ready instances (the ones the new targets keep).
    const trafficNew = Math.min(newReady, st.newReplicas);
    const trafficOld = Math.min(oldReady, st.oldReplicas);
    if (trafficNew + trafficOld > 0) {
      const w = roundWeight((100 * trafficNew) / (trafficNew + trafficOld));
      if (w !== s.canaryWeight) {
        ctx.emit("WeightChanged", `${nv} weight ${s.canaryWeight}% -> ${w}% (ready instances)`, {
          version: nv,
          from: s.canaryWeight,
          to: w,
          step: i,
          ready: { [nv]: trafficNew, [ov]: trafficOld },
        });
        s.canaryWeight = w;
      }
    }
    // An analysis in progress has set the phase and message itself.
    if (!analysing) {
      ctx.setPhase(
        "Progressing",
        `rolling ${ov} -> ${nv}: ${st.available}/${n} new available (${st.newReplicas} started), ${st.oldReplicas} old`,
      );
    }
    return "wait";
  },
};
