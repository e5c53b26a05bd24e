import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { TurnoutError } from "../../../errors.js";
import {
  assertWellFormed,
  conformanceRequest,
  describeProviderConformance,
} from "../conformance.js";
import type { Measurement } from "../provider.js";
import { CommandProvider } from "./command-provider.js";

const node = process.execPath;
/** argv running `code` in a fresh Node, with `args` after it (process.argv[1...]). */
const js = (code: string, ...args: string[]) => [node, "-e", code, ...args];
/** argv running a POSIX shell script (starts in a millisecond, where Node takes far longer on a
 *  busy machine), with `args` as $1...; the provider itself never uses a shell. */
const sh = (script: string, ...args: string[]) => ["/bin/sh", "-c", script, "sh", ...args];

describeProviderConformance("command", () => ({
  provider: new CommandProvider({ killGraceMs: 500 }),
  good: { source: { command: { command: sh("echo 0.25"), timeoutSeconds: 10 } } },
  templated: () => ({
    command: { command: sh('echo "$1"', "{{args.value}}"), timeoutSeconds: 10 },
  }),
  hanging: (timeoutSeconds) => ({
    source: { command: { command: ["sleep", "30"], timeoutSeconds: timeoutSeconds ?? 30 } },
  }),
  failing: { source: { command: { command: sh("kill -KILL $$") } } },
  huge: {
    source: {
      command: {
        command: sh("head -c 1048576 /dev/zero | tr '\\0' x; echo; echo 7"),
        timeoutSeconds: 10,
      },
    },
  },
  skips: [
    {
      reason:
        "a command has no 'no data' answer: its exit code passes or fails, or it prints a number",
      tests: ["noData"],
    },
  ],
  cleanup: async () => {},
}));

/** Is a process alive? A zombie (killed, not yet reaped by its new parent) is not. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** SIGKILL is delivered at once, but the kernel may take a moment to finish the process. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
  return !alive(pid);
}

describe("CommandProvider", () => {
  const provider = new CommandProvider({ killGraceMs: 300 });
  const measure = async (
    command: string[],
    opts: { timeoutSeconds?: number; args?: Record<string, string>; p?: CommandProvider } = {},
  ): Promise<Measurement> => {
    const req = conformanceRequest(
      {
        source: {
          command: {
            command,
            ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}),
          },
        },
        args: opts.args ?? {},
      },
      1_700_000_000_000,
    );
    const m = await (opts.p ?? provider).measure(req, new AbortController().signal);
    assertWellFormed(m);
    return m;
  };

  it("exit 0 without a number is 1 (pass); non-zero is 0 (fail) with the stderr tail", async () => {
    assert.equal((await measure(sh("echo all good"))).value, 1);
    const m = await measure(sh("echo 'checked 3 things; 1 broke' >&2; exit 3"));
    assert.equal(m.value, 0);
    assert.deepEqual(m.raw, {
      command: "/bin/sh",
      exitCode: 3,
      stdout: "",
      stderr: "checked 3 things; 1 broke\n",
    });
  });

  it("the last non-empty line of stdout, when a number, is the value", async () => {
    assert.equal((await measure(sh("echo p99:; echo ' 12.5e-1 '; echo; echo '  '"))).value, 1.25);
    assert.equal((await measure(sh("echo -3"))).value, -3);
    // Not a number: "12 ms" is text, so the exit code decides.
    assert.equal((await measure(sh("echo 12 ms"))).value, 1);
    // A non-zero exit wins over a printed number.
    assert.equal((await measure(sh("echo 5; exit 1"))).value, 0);
  });

  it("NaN or an infinity on the last line is an error, not a pass", async () => {
    const m = await measure(sh("echo NaN"));
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /printed NaN/);
    assert.match((await measure(sh("echo -Inf"))).error!, /-Inf/);
  });

  it("passes ANALYSIS_* variables, arguments included", async () => {
    const m = await measure(
      js(
        "const e = process.env; console.log(JSON.stringify(Object.fromEntries(Object.entries(e).filter(([k]) => k.startsWith('ANALYSIS_'))))); console.log(e.ANALYSIS_ARG_WINDOW_SIZE)",
      ),
      { args: { "window-size": "17", region: "eu west" } },
    );
    assert.equal(m.value, 17);
    const env = JSON.parse((m.raw as { stdout: string }).stdout.split("\n")[0]!);
    assert.deepEqual(env, {
      ANALYSIS_METRIC: "conformance",
      ANALYSIS_SERVICE: "svc",
      ANALYSIS_CANDIDATE: "v2",
      ANALYSIS_BASELINE: "v1",
      ANALYSIS_FROM_MS: "1699999940000",
      ANALYSIS_TO_MS: "1700000000000",
      ANALYSIS_NOW_MS: "1700000000000",
      ANALYSIS_ARG_WINDOW_SIZE: "17",
      ANALYSIS_ARG_REGION: "eu west",
    });
  });

  it("runs without a shell: arguments arrive as written", async () => {
    const m = await measure(
      js(
        "console.error(process.argv[1]); process.exit(process.argv[1] === '$(echo hi); exit 0' ? 0 : 1)",
        "$(echo {{args.x}}); exit 0",
      ),
      { args: { x: "hi" } },
    );
    assert.equal(m.value, 1, JSON.stringify(m.raw));
  });

  it("a timeout SIGTERMs the group, then SIGKILLs what ignores it; grandchildren die too", async () => {
    // The shell ignores SIGTERM, and so does the sleep it starts (ignored signals are
    // inherited); it prints both pids. A shell, because it is ready long before the timeout.
    const started = performance.now();
    const m = await measure(sh("trap '' TERM; sleep 30 & echo $$ $!; wait"), {
      timeoutSeconds: 0.5,
    });
    const elapsed = performance.now() - started;
    assert.equal(m.errorKind, "timeout");
    assert.match(m.error!, /did not finish within 500 ms/);
    assert.ok(elapsed >= 750 && elapsed < 3000, `timeout + grace, got ${elapsed} ms`);
    const pids = (m.raw as { stdout: string }).stdout.trim().split(" ").map(Number);
    assert.equal(pids.length, 2);
    for (const pid of pids) assert.ok(await gone(pid), `pid ${pid} is gone`);
  });

  it("whatever the command leaves running in its group is killed when it exits", async () => {
    // The background sleep's output goes elsewhere, so it does not hold the pipes open.
    const m = await measure(sh("sleep 30 >/dev/null 2>&1 & echo $!; echo 2"));
    assert.equal(m.value, 2);
    const pid = Number((m.raw as { stdout: string }).stdout.split("\n")[0]);
    assert.ok(await gone(pid), `pid ${pid} is gone`);
  });

  it("a missing executable is an error, not a throw", async () => {
    const m = await measure(["/nonexistent/turnout-check"]);
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /\/nonexistent\/turnout-check: not found/);
  });

  it("keeps only the last maxOutputBytes of output", async () => {
    const p = new CommandProvider({ maxOutputBytes: 100 });
    const m = await measure(sh("head -c 100000 /dev/zero | tr '\\0' a; echo; echo 9"), { p });
    assert.equal(m.value, 9);
    assert.ok((m.raw as { stdout: string }).stdout.length <= 110);
  });

  it("throws for an empty argv, a bad timeout, or arguments that collide in the environment", async () => {
    const isInvalid = (path: string) => (err: unknown) =>
      err instanceof TurnoutError && err.details.path === path;
    await assert.rejects(measure([]), isInvalid("source.command.command"));
    await assert.rejects(
      measure(["echo", "{{args.x}}"], { args: { x: "a\0b" } }),
      isInvalid("source.command.command[1]"),
    );
    await assert.rejects(
      measure(sh("true"), { timeoutSeconds: -1 }),
      isInvalid("source.command.timeoutSeconds"),
    );
    await assert.rejects(
      measure(sh("true"), { args: { "a-b": "1", a_b: "2" } }),
      (err: unknown) =>
        err instanceof TurnoutError && /both become ANALYSIS_ARG_A_B/.test(err.message),
    );
  });
});
