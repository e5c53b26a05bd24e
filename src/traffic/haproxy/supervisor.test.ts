import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { TurnoutError } from "../../errors.js";
import { alertLines, bindFailure, checkHaproxy, HaproxySupervisor } from "./supervisor.js";
import { freePort, needsHaproxy, tempDir, waitFor } from "./testing.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as never;

function cfg(dir: string, ports: number[], body = "ok"): string {
  const lines = [
    "global",
    `  stats socket ${dir}/admin.sock mode 600 level admin expose-fd listeners`,
    "  hard-stop-after 10s",
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout client 5s",
    "  timeout server 5s",
    "  timeout http-keep-alive 5s",
    "  option idle-close-on-response",
  ];
  ports.forEach((p, i) => {
    lines.push(
      `frontend fe${i}`,
      `  bind 127.0.0.1:${p}`,
      `  http-request return status 200 content-type text/plain string ${body}`,
    );
  });
  return `${lines.join("\n")}\n`;
}

/** Whether a process runs (a zombie waiting for its parent to reap it does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

test("alert lines and bind failures are read from HAProxy's output", () => {
  const out =
    "[NOTICE]   (1) : haproxy version is 2.6.12\n[ALERT]    (1) : Starting frontend main: cannot bind socket (Address already in use) [127.0.0.1:8080]\n[ALERT]    (1) : [haproxy.main()] Some protocols failed to start their listeners! Exiting.\n";
  assert.equal(bindFailure(out), "127.0.0.1:8080");
  assert.match(
    alertLines(out),
    /^Starting frontend main: cannot bind socket .*; \[haproxy\.main\(\)\] Some protocols/,
  );
  assert.equal(bindFailure("[ALERT] parsing error"), null);
});

describe("the HAProxy binary", () => {
  test("a missing binary is TURNOUT_ERR_HAPROXY_NOT_FOUND, naming it", () => {
    assert.throws(
      () => checkHaproxy("/nonexistent/haproxy"),
      (e: TurnoutError) =>
        e.code === "TURNOUT_ERR_HAPROXY_NOT_FOUND" &&
        /\/nonexistent\/haproxy.*not found/.test(e.message),
    );
  });

  test("an old one, or one without Lua, is TURNOUT_ERR_HAPROXY_TOO_OLD with the version found", () => {
    const dir = tempDir();
    try {
      const old = join(dir.path, "haproxy-old");
      writeFileSync(
        old,
        "#!/bin/sh\necho 'HA-Proxy version 2.4.22 2023/02/14'\necho 'Built with Lua version : Lua 5.3.6'\n",
      );
      chmodSync(old, 0o755);
      assert.throws(
        () => checkHaproxy(old),
        (e: TurnoutError) =>
          e.code === "TURNOUT_ERR_HAPROXY_TOO_OLD" &&
          /version 2\.4\.22; Turnout needs 2\.6/.test(e.message),
      );
      const nolua = join(dir.path, "haproxy-nolua");
      writeFileSync(nolua, "#!/bin/sh\necho 'HAProxy version 2.8.3'\n");
      chmodSync(nolua, 0o755);
      assert.throws(() => checkHaproxy(nolua), /2\.8\.3 without Lua/);
    } finally {
      dir.remove();
    }
  });

  test("the installed one passes", needsHaproxy(), () => {
    assert.match(checkHaproxy().version, /^\d+\.\d+/);
  });
});

describe("HaproxySupervisor", needsHaproxy(), () => {
  const make = (dir: string) =>
    new HaproxySupervisor({
      binary: checkHaproxy(),
      dir,
      socketDir: dir,
      name: "svc",
      logger: quiet,
      restartInitialMs: 50,
    });

  test("a bad config is refused before anything starts, with HAProxy's alert", async () => {
    const dir = tempDir();
    const sup = make(dir.path);
    try {
      await assert.rejects(sup.start("global\n  nonsense-keyword 1\n"), (e: TurnoutError) => {
        assert.equal(e.code, "TURNOUT_ERR_HAPROXY_START_FAILED");
        assert.match(e.message, /HAProxy for svc refused its configuration: .*nonsense-keyword/);
        return true;
      });
      assert.equal(sup.status().running, false);
    } finally {
      await sup.stop();
      dir.remove();
    }
  });

  test("a port already taken is TURNOUT_ERR_HAPROXY_PORT_IN_USE naming the address", async () => {
    const dir = tempDir();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as net.AddressInfo).port;
    const sup = make(dir.path);
    try {
      await assert.rejects(sup.start(cfg(dir.path, [port])), (e: TurnoutError) => {
        assert.equal(e.code, "TURNOUT_ERR_HAPROXY_PORT_IN_USE");
        assert.match(e.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
        return true;
      });
    } finally {
      await sup.stop();
      blocker.close();
      dir.remove();
    }
  });

  test("restarted when it dies; stopped with nothing left running", async () => {
    const dir = tempDir();
    const port = await freePort();
    let starts = 0;
    const sup = new HaproxySupervisor({
      binary: checkHaproxy(),
      dir: dir.path,
      socketDir: dir.path,
      name: "svc",
      logger: quiet,
      restartInitialMs: 50,
      onStart: () => {
        starts++;
      },
    });
    try {
      await sup.start(cfg(dir.path, [port]));
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok");
      const { masterPid, workerPid } = sup.status();
      assert.ok(masterPid && workerPid);
      process.kill(masterPid, "SIGKILL");
      await waitFor("a restart", () => sup.status().restarts === 1 && sup.status().running);
      assert.notEqual(sup.status().masterPid, masterPid);
      assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok");
      assert.equal(starts, 2);
      const second = sup.status();
      await sup.stop();
      assert.equal(alive(second.masterPid!), false);
      await waitFor("the worker to exit", () => !alive(second.workerPid!));
      // The first worker saw its master die and left by itself.
      await waitFor("the first worker to exit", () => !alive(workerPid));
    } finally {
      await sup.stop();
      dir.remove();
    }
  });

  test("a reload under keep-alive load fails no request; a reload that cannot bind keeps the old worker", async () => {
    const dir = tempDir();
    const [port, port2] = [await freePort(), await freePort()];
    const sup = make(dir.path);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let ok = 0;
    const failures: string[] = [];
    const bodies = new Set<string>();
    let running = true;
    const loop = async () => {
      while (running) {
        await new Promise<void>((resolve) => {
          const req = http.get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
            let b = "";
            res.on("data", (d) => {
              b += d;
            });
            res.on("end", () => {
              if (res.statusCode === 200) {
                ok++;
                bodies.add(b);
              } else failures.push(String(res.statusCode));
              resolve();
            });
          });
          req.on("error", (e) => {
            failures.push(e.message);
            resolve();
          });
        });
      }
    };
    try {
      await sup.start(cfg(dir.path, [port], "one"));
      const clients = Array.from({ length: 4 }, loop);
      await waitFor("traffic", () => ok > 200);
      const before = sup.status().workerPid;
      await sup.reload(cfg(dir.path, [port], "two"));
      assert.notEqual(sup.status().workerPid, before);
      await waitFor("the new worker's answers", () => bodies.has("two"));
      const blocker = net.createServer();
      await new Promise<void>((r) => blocker.listen(port2, "127.0.0.1", r));
      const working = sup.status().workerPid;
      await assert.rejects(sup.reload(cfg(dir.path, [port, port2], "three")), (e: TurnoutError) => {
        assert.equal(e.code, "TURNOUT_ERR_HAPROXY_PORT_IN_USE");
        return true;
      });
      blocker.close();
      assert.match(
        readFileSync(sup.configPath, "utf8"),
        /string two/,
        "the old config is back in place",
      );
      const n = ok;
      await waitFor("more traffic", () => ok > n + 100);
      assert.equal(sup.status().workerPid, working);
      running = false;
      await Promise.all(clients);
      assert.deepEqual(failures, []);
      assert.ok(!bodies.has("three"));
    } finally {
      running = false;
      agent.destroy();
      await sup.stop();
      dir.remove();
    }
  });

  test("no HAProxy outlives a Turnout process that is SIGKILLed", async () => {
    const dir = tempDir();
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        fileURLToPath(new URL("./fixtures/run-supervisor.ts", import.meta.url)),
        dir.path,
        String(port),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      const pids = await waitFor(
        "the child's pids",
        () => {
          const line = out.split("\n").find((l) => l.startsWith("{"));
          return line ? (JSON.parse(line) as { master: number; worker: number }) : undefined;
        },
        20_000,
      );
      assert.ok(alive(pids.master) && alive(pids.worker));
      child.kill("SIGKILL");
      await waitFor("haproxy to go", () => !alive(pids.master) && !alive(pids.worker), 10_000);
    } finally {
      child.kill("SIGKILL");
      dir.remove();
    }
  });
});
