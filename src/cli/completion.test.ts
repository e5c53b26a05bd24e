import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = [process.execPath, "--import", "tsx", join(ROOT, "src/cli/main.ts")];
const turnout = (...args: string[]) =>
  execFileSync(CLI[0]!, [...CLI.slice(1), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });

describe("turnout completion (#18 item 13)", () => {
  it("bash: a real bash completes commands, subcommands, kinds and choices", () => {
    const script = turnout("completion", "bash");
    const probe = `${script}
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _turnout; echo "\${COMPREPLY[*]}"; }
t turnout pro
t turnout get s
t turnout --server http://x get se
t turnout flags ""
t turnout status -o ""
t turnout experiment re
t turnout completion ""
`;
    const out = execFileSync("bash", ["-c", probe], { encoding: "utf8" }).split("\n");
    assert.deepEqual(out.slice(0, 7), [
      "promote",
      "services segments",
      "services segments",
      "get enable disable set reset history",
      "text json yaml",
      "results",
      "bash zsh fish",
    ]);
  });

  it("zsh runs the bash functions; fish lists every command", () => {
    assert.match(
      turnout("completion", "zsh"),
      /bashcompinit[\s\S]*complete -o filenames -F _turnout turnout/,
    );
    const fish = turnout("completion", "fish");
    for (const cmd of ["up", "apply", "status", "promote", "flags", "completion"])
      assert.match(fish, new RegExp(`-n __fish_use_subcommand -a ${cmd} `));
    assert.match(fish, /__fish_seen_subcommand_from get' -a services/);
  });

  it("an unknown shell is a usage error (exit 2)", () => {
    assert.throws(
      () => turnout("completion", "tcsh"),
      (e: { status?: number }) => e.status === 2,
    );
  });
});
