import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createUpLogger, defaultLogFormat, humanLine } from "./log-format.js";

function capture(isTTY: boolean) {
  const lines: string[] = [];
  return {
    lines,
    stream: { isTTY, write: (s: string) => lines.push(...s.split("\n").filter((l) => l !== "")) },
  };
}

describe("turnout up's log lines (#18 item 9)", () => {
  it("human on a terminal, JSON in a pipe, by default", () => {
    assert.equal(defaultLogFormat({ isTTY: true }), "human");
    assert.equal(defaultLogFormat({ isTTY: false }), "json");
    assert.equal(defaultLogFormat({}), "json");
    const saved = process.env.TURNOUT_LOG_LEVEL;
    delete process.env.TURNOUT_LOG_LEVEL;
    try {
      const pipe = capture(false);
      createUpLogger({ stream: pipe.stream }).info({ part: "controller" }, "hello");
      assert.equal(JSON.parse(pipe.lines[0]!).msg, "hello");
      const tty = capture(true);
      createUpLogger({ stream: tty.stream, color: false })
        .child({ part: "controller" })
        .warn({ service: "shop", epoch: 2 }, "lost the lease");
      assert.match(
        tty.lines[0]!,
        /^\d\d:\d\d:\d\d warn {2}controller shop: lost the lease epoch=2$/,
      );
    } finally {
      if (saved !== undefined) process.env.TURNOUT_LOG_LEVEL = saved;
    }
  });

  it("--log-format wins over the stream, --quiet keeps warnings and errors", () => {
    const saved = process.env.TURNOUT_LOG_LEVEL;
    delete process.env.TURNOUT_LOG_LEVEL;
    try {
      const tty = capture(true);
      const log = createUpLogger({ stream: tty.stream, format: "json", quiet: true });
      log.info({}, "routine");
      log.warn({}, "worth a look");
      assert.deepEqual(
        tty.lines.map((l) => JSON.parse(l).msg),
        ["worth a look"],
      );
    } finally {
      if (saved !== undefined) process.env.TURNOUT_LOG_LEVEL = saved;
    }
  });

  it("a human line: time, level, part and service, message, event, scalars; errors by message", () => {
    const time = new Date(2026, 0, 2, 3, 4, 5).getTime();
    assert.equal(
      humanLine(
        JSON.stringify({
          level: 30,
          time,
          part: "controller",
          service: "shop",
          event: "StepCompleted",
          data: { step: 0 },
          msg: "step 1/3 done",
        }),
      ),
      "03:04:05 info  controller shop: step 1/3 done (StepCompleted)",
    );
    assert.equal(
      humanLine(
        JSON.stringify({
          level: 50,
          time,
          err: { type: "Error", message: "boom", stack: "..." },
          msg: "tick failed",
          listen: { port: 1 },
          attempt: 3,
        }),
      ),
      "03:04:05 error tick failed: boom attempt=3",
    );
    assert.equal(humanLine("not json\n"), "not json");
  });
});
