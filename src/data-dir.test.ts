/**
 * The data dir lock with real processes: a live owner is refused with its pid and URL, a lock
 * of a dead process or of a reused pid is taken over, racing starters get exactly one owner;
 * and a read-only data dir is named as such (a read-only tmpfs, which needs root).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pino from "pino";
import { LOCK_FILE, lockDataDir, readOnlyError, SERVER_FILE } from "./data-dir.js";
import { processStartTicks } from "./runtime/process/proc.js";
import { startTurnout } from "./server.js";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "turnout-lock-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A logger that keeps its warnings, to check what a takeover says. */
function recordingLogger() {
  const warnings: string[] = [];
  return { warnings, warn: (_o: object, msg?: string) => void warnings.push(msg ?? "") };
}

/** A pid that existed and has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(p, "exit");
  return p.pid!;
}

describe("data dir lock", () => {
  it("is taken, refused to a second taker with pid and URL, and released", () => {
    const dir = tempDir();
    const lock = lockDataDir(dir);
    const held = JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"));
    assert.equal(held.pid, process.pid);
    assert.equal(held.startTicks, processStartTicks(process.pid));
    writeFileSync(
      join(dir, SERVER_FILE),
      JSON.stringify({ url: "http://127.0.0.1:4999", pid: process.pid }),
    );
    assert.throws(
      () => lockDataDir(dir),
      (err: { code?: string; message?: string }) => {
        assert.equal(err.code, "TURNOUT_ERR_DATA_DIR_LOCKED");
        assert.match(
          err.message ?? "",
          new RegExp(`pid ${process.pid}, API at http://127\\.0\\.0\\.1:4999`),
        );
        assert.match(err.message ?? "", /nothing was changed/);
        return true;
      },
    );
    lock.release();
    assert.equal(existsSync(join(dir, LOCK_FILE)), false);
    lockDataDir(dir).release();
    // No temporary files are left behind.
    assert.deepEqual(readdirSync(dir), [SERVER_FILE]);
  });

  it("takes over a lock whose process is gone, and says so", async () => {
    const dir = tempDir();
    const pid = await deadPid();
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid, startTicks: "1", startedAt: 0, nonce: "old" }),
    );
    const log = recordingLogger();
    const lock = lockDataDir(dir, log);
    assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8")).pid, process.pid);
    assert.match(log.warnings.join("\n"), new RegExp(`lock of pid ${pid} is stale`));
    lock.release();
  });

  it("takes over a lock whose pid now belongs to another process (other start time)", () => {
    const dir = tempDir();
    // Our own pid, alive, but not started at that time: a pid reused after a reboot or in a
    // new container.
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: process.pid, startTicks: "7", startedAt: 0, nonce: "reused" }),
    );
    const log = recordingLogger();
    const lock = lockDataDir(dir, log);
    assert.equal(log.warnings.length, 1);
    lock.release();
  });

  it("a release does not remove a lock that another process took over", () => {
    const dir = tempDir();
    const lock = lockDataDir(dir);
    const theirs = JSON.stringify({ pid: 1, startTicks: "2", startedAt: 0, nonce: "theirs" });
    writeFileSync(join(dir, LOCK_FILE), theirs);
    lock.release();
    assert.equal(readFileSync(join(dir, LOCK_FILE), "utf8"), theirs);
  });

  it("of starters racing for a stale lock, exactly one wins", async () => {
    const dir = tempDir();
    const stale = JSON.stringify({
      pid: await deadPid(),
      startTicks: "1",
      startedAt: 0,
      nonce: "x",
    });
    writeFileSync(join(dir, LOCK_FILE), stale);
    // Each child takes the lock, reports, and holds it until its stdin closes.
    const script = `
      import { lockDataDir } from ${JSON.stringify(new URL("./data-dir.ts", import.meta.url).href)};
      let out;
      try { lockDataDir(process.argv[1]); out = "won"; } catch (e) { out = e.code; }
      process.stdout.write(out + "\\n");
      process.stdin.resume();
      process.stdin.on("end", () => process.exit(0));
    `;
    const children = Array.from({ length: 6 }, () =>
      spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, dir], {
        stdio: ["pipe", "pipe", "inherit"],
      }),
    );
    const results = await Promise.all(
      children.map(
        (c) =>
          new Promise<string>((resolve) => {
            let out = "";
            c.stdout!.on("data", (d) => {
              out += d;
              if (out.includes("\n")) resolve(out.trim());
            });
            c.on("exit", () => resolve(out.trim() || "exited"));
          }),
      ),
    );
    for (const c of children) c.stdin!.end();
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, "exit") : undefined)));
    assert.equal(results.filter((r) => r === "won").length, 1, results.join(","));
    assert.equal(
      results.filter((r) => r === "TURNOUT_ERR_DATA_DIR_LOCKED").length,
      5,
      results.join(","),
    );
  });

  it("startTurnout refuses a locked data dir before touching it, and releases on stop", async () => {
    const dir = tempDir();
    const logger = pino({ level: "silent" });
    const first = await startTurnout({ dataDir: dir, port: 0, logger });
    const before = readdirSync(dir).sort();
    const record = readFileSync(join(dir, SERVER_FILE), "utf8");
    try {
      await assert.rejects(startTurnout({ dataDir: dir, port: 0, logger }), {
        code: "TURNOUT_ERR_DATA_DIR_LOCKED",
      });
      assert.deepEqual(readdirSync(dir).sort(), before);
      assert.equal(readFileSync(join(dir, SERVER_FILE), "utf8"), record);
      assert.equal((await fetch(`${first.url}/healthz`)).status, 200);
    } finally {
      await first.stop();
    }
    assert.equal(existsSync(join(dir, LOCK_FILE)), false);
    const again = await startTurnout({ dataDir: dir, port: 0, logger });
    await again.stop();
  });
});

describe("read-only data dir", () => {
  it("maps EROFS/EACCES and SQLite's CANTOPEN on an unwritable dir, and nothing else", () => {
    const dir = tempDir();
    const erofs = readOnlyError(dir, Object.assign(new Error("x"), { code: "EROFS" }));
    assert.equal(erofs?.code, "TURNOUT_ERR_DATA_DIR_READ_ONLY");
    assert.match(
      erofs?.message ?? "",
      new RegExp(`data dir ${dir} is read-only \\(EROFS\\): choose a writable --data-dir`),
    );
    assert.match(
      readOnlyError(
        dir,
        { code: "TURNOUT_ERR_STORE_UNAVAILABLE", details: { sqliteCode: "SQLITE_READONLY" } },
        join(dir, "turnout.db"),
      )?.message ?? "",
      /turnout\.db in data dir .* is read-only \(SQLITE_READONLY\)/,
    );
    // CANTOPEN in a writable directory is something else (a missing directory, say).
    assert.equal(readOnlyError(dir, { details: { sqliteCode: "SQLITE_CANTOPEN" } }), undefined);
    assert.equal(readOnlyError(dir, Object.assign(new Error("x"), { code: "ENOSPC" })), undefined);
    assert.equal(readOnlyError(dir, new Error("plain")), undefined);
  });

  it("`turnout up` on a read-only file system says the data dir is read-only", async (t) => {
    const mnt = tempDir();
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], { stdio: "ignore" });
    } catch {
      t.skip("cannot mount a tmpfs here (needs root): the mapping is covered by the test above");
      return;
    }
    try {
      // A data dir that worked once, then became read-only (the file system remounted ro).
      const dir = join(mnt, "data");
      mkdirSync(dir);
      const up = await startTurnout({ dataDir: dir, port: 0, logger: pino({ level: "silent" }) });
      await up.stop();
      execFileSync("mount", ["-o", "remount,ro", mnt]);
      await assert.rejects(
        startTurnout({ dataDir: dir, port: 0, logger: pino({ level: "silent" }) }),
        (err: { code?: string; message?: string }) => {
          assert.equal(err.code, "TURNOUT_ERR_DATA_DIR_READ_ONLY");
          assert.match(err.message ?? "", new RegExp(`data dir ${dir} is read-only \\(EROFS\\)`));
          assert.doesNotMatch(err.message ?? "", /unable to open database file/);
          return true;
        },
      );
      // A data dir that does not exist yet, on the read-only file system.
      await assert.rejects(
        startTurnout({ dataDir: join(mnt, "new"), port: 0, logger: pino({ level: "silent" }) }),
        { code: "TURNOUT_ERR_DATA_DIR_READ_ONLY" },
      );
    } finally {
      execFileSync("umount", [mnt]);
    }
  });
});
