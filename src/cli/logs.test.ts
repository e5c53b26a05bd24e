import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { logsVersionArgv } from "./logs.js";

describe("turnout logs --version V", () => {
  const argv = (...a: string[]) => ["node", "turnout", ...a];
  it("becomes the logs command's own option, in both spellings", () => {
    assert.deepEqual(
      logsVersionArgv(argv("logs", "web", "--version", "v2", "--tail", "5")),
      argv("logs", "web", "--only-version", "v2", "--tail", "5"),
    );
    assert.deepEqual(
      logsVersionArgv(argv("--server", "http://x", "logs", "web", "--version=v2")),
      argv("--server", "http://x", "logs", "web", "--only-version=v2"),
    );
  });
  it("leaves the program's --version and other commands alone", () => {
    assert.deepEqual(logsVersionArgv(argv("--version")), argv("--version"));
    assert.deepEqual(
      logsVersionArgv(argv("status", "logs", "--version")),
      argv("status", "logs", "--version"),
    );
  });
});
