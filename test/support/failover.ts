/**
 * The controller failover scenario (issue #14 item 5), run by test/e2e/fleet-ha.test.ts on a
 * machine as it is and by test/e2e/fleet-ha-busy.test.ts with a busy process on every core.
 * Real processes on a private PostgreSQL cluster. One `--roles api,router` process and two `--roles controller` processes
 * share one database. A canary waits at an indefinite pause; the leading controller is killed
 * with SIGKILL and a promote is sent at once. The standby must lead within 10 s, take the
 * promote up once, resume the rollout at the step it was at and finish it, with no event
 * recorded twice; `turnout status` names the new leader. Then the new leader stops cleanly and
 * the first one's replacement leads at once (the lease is released, not waited out).
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  api,
  busyCores,
  cli,
  freePort,
  pidsWith,
  sendMany,
  startBackend,
  startUp,
  staticService,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";
import { requirePostgres, sharedCluster } from "./postgres.js";

const TOKEN = "fleet-ha-token-0123456789abcdef";

/** A canary that waits for a person at 25%, then goes on by itself. */
const STEPS = [
  { setWeight: 25 },
  { pause: {} },
  { setWeight: 50 },
  { pause: { duration: "1s" } },
  { setWeight: 75 },
  { pause: { duration: "1s" } },
];
const service = (port: number, upstreams: Record<string, string[]>, version: string) =>
  staticService(port, upstreams, version, STEPS);

interface Event {
  id: number;
  type: string;
  actor: string;
  message: string;
  time: number;
  data: Record<string, unknown>;
}

/** "controller 3f9a1c (pid 4242 on host)" -> 4242. */
function pidOf(holder: string | null | undefined): number | null {
  const m = /\(pid (\d+) on /.exec(holder ?? "");
  return m ? Number(m[1]) : null;
}

export interface FailoverOptions {
  /** Runs a busy process on every core for the whole scenario (the machine as CI may be). */
  busyCores?: boolean;
}

/** Declares the failover suite under `title`. */
export function describeFailover(title: string, opts: FailoverOptions = {}): void {
  const skip = requirePostgres();
  describe(title, { skip }, () => {
    const dirs: string[] = [];
    const ups: Up[] = [];
    const backends: Awaited<ReturnType<typeof startBackend>>[] = [];
    const dir = () => {
      const d = tempDir("turnout-fleet-ha-");
      dirs.push(d);
      return d;
    };

    const marker = `turnout-fleet-ha-busy-${process.pid}-${Date.now()}`;
    let busy: ReturnType<typeof busyCores> | undefined;

    before(async () => {
      for (const name of ["v1", "v2"]) backends.push(await startBackend(name));
      if (opts.busyCores) busy = busyCores(marker);
    });

    after(async () => {
      busy?.stop();
      for (const pid of pidsWith(marker)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      for (const u of ups) await u.stop();
      for (const b of backends) await b.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    it("a standby leads within 10 s, takes the promote up once, and finishes the rollout", async (t) => {
      const pg = await sharedCluster();
      const url = await pg.createDatabase();
      const env = { TURNOUT_TOKEN: TOKEN };
      const front = await startUp(dir(), env, ["--store", url, "--roles", "api,router"]);
      ups.push(front);
      const controller = async () => {
        const u = await startUp(dir(), env, ["--store", url, "--roles", "controller"]);
        ups.push(u);
        return u;
      };
      const first = await controller();
      const second = await controller();
      const status = async () => (await api(front, "GET", "/api/v1/services/shop/status")).json;
      const events = async (): Promise<Event[]> =>
        (await api(front, "GET", "/api/v1/services/shop/history?limit=1000")).json.events;

      const port = await freePort();
      const upstreams = { v1: [backends[0]!.url], v2: [backends[1]!.url] };
      let r = await api(front, "POST", "/api/v1/apply", service(port, upstreams, "v1"));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor("v1 healthy", async () => (await status()).status?.phase === "Healthy");
      r = await api(front, "POST", "/api/v1/apply", service(port, upstreams, "v2"));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const paused = await waitFor("paused at 25%", async () => {
        const s = await status();
        return s.status?.phase === "Paused" && s.status.canaryWeight === 25 ? s : undefined;
      });
      assert.equal(paused.status.stepIndex, 1);
      const leader = paused.controller;
      assert.equal(leader.leaseMs, 5_000);
      const leaderPid = pidOf(leader.leader);
      const byPid = new Map([
        [first.proc.pid, first],
        [second.proc.pid, second],
      ]);
      const dead = leaderPid !== null ? byPid.get(leaderPid) : undefined;
      assert.ok(dead, `the leader ${leader.leader} is one of the two controllers`);
      const standby = dead === first ? second : first;
      const before = await events();

      // Traffic flows through the router all along: it does not depend on a controller.
      await waitFor("the router answers", async () => {
        const c = await sendMany(port, 4, 1).catch(() => null);
        return c !== null && [...c.keys()].every((k) => k === "v1" || k === "v2");
      });

      const killedAt = Date.now();
      dead.proc.kill("SIGKILL");
      // A promote sent while nobody leads: queued, and taken up by the next leader (the API
      // waits up to 15 s for it).
      const promote = api(front, "POST", "/api/v1/services/shop/promote", {});
      const counts = sendMany(port, 400, 4);

      const next = await waitFor(
        "a standby leads",
        async () => {
          const s = await status();
          return s.controller?.leader && pidOf(s.controller.leader) === standby.proc.pid
            ? s
            : undefined;
        },
        15_000,
      );
      const failoverMs = Date.now() - killedAt;
      assert.ok(failoverMs < 10_000, `the standby led ${failoverMs} ms after the kill`);
      t.diagnostic(`the standby led ${failoverMs} ms after the leader's kill -9`);
      assert.equal(next.controller.epoch, leader.epoch + 1);
      const answered = await promote;
      assert.equal(answered.status, 200, JSON.stringify(answered.json));
      assert.equal(answered.json.command.outcome, "applied");

      const done = await waitFor(
        "v2 stable",
        async () => {
          const s = await status();
          return s.status?.phase === "Completed" && s.status.stableVersion === "v2" ? s : undefined;
        },
        20_000,
      );
      assert.equal(done.status.stableVersion, "v2");
      const served = await counts;
      assert.deepEqual(
        [...served.keys()].filter((k) => k !== "v1" && k !== "v2"),
        [],
        `requests failed during the failover: ${JSON.stringify([...served])}`,
      );

      // History: the standby said where it resumed, once; the promote was taken up once; no
      // step was taken twice and no event appears twice.
      const all = await events();
      const added = all.slice(before.length);
      const started = added.filter((e) => e.type === "ControllerStarted");
      assert.equal(started.length, 1, JSON.stringify(started));
      assert.match(
        started[0]!.message,
        /leads \(epoch \d+\): resuming rollout 1 \(v1 -> v2\) at step 2 \(Paused\)/,
      );
      assert.equal(started[0]!.data.epoch, next.controller.epoch);
      assert.equal(added.filter((e) => e.type === "Promoted").length, 1);
      const weightSteps = all
        .filter((e) => e.type === "WeightChanged")
        .map((e) => `${e.data.step}:${e.data.to}`);
      assert.equal(new Set(weightSteps).size, weightSteps.length, weightSteps.join(" "));
      const sameEvent = (e: Event) => `${e.type}|${e.message}`;
      const keys = all.map(sameEvent);
      assert.equal(
        new Set(keys).size,
        keys.length,
        `an event was recorded twice: ${keys.filter((k, i) => keys.indexOf(k) !== i).join(", ")}`,
      );

      // `turnout status` names the leader and since when.
      const st = await cli(["status", "shop", "--server", front.url, "--token", TOKEN]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(
        st.stdout,
        /Controller:\s+controller \w+ \(pid \d+ on .*\) leads since .* epoch/,
      );
      assert.match(st.stdout, new RegExp(`pid ${standby.proc.pid} on`));

      // A clean stop releases the lease: a controller started now leads at its first look,
      // without waiting for the lease to run out.
      const third = await controller();
      assert.equal(await standby.stop(), 0);
      const stoppedAt = Date.now();
      await waitFor("the new controller leads", async () => {
        const s = await status();
        return pidOf(s.controller?.leader) === third.proc.pid;
      });
      const handover = Date.now() - stoppedAt;
      assert.ok(handover < 4_000, `a released lease was taken ${handover} ms after the stop`);
      t.diagnostic(`a released lease was taken ${handover} ms after the leader's clean stop`);
    });
  });
}
