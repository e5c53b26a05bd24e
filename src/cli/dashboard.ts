/**
 * `turnout dashboard`: asks the running server for a one-time sign-in code (valid 60 s, single
 * use) and prints the link `URL/#code=...`; on a terminal it also opens it in the browser
 * (xdg-open, open, or start), and never fails when it cannot. The admin token itself never
 * appears in the link: the page exchanges the code for a session cookie and drops the code
 * from the address bar and history.
 */
import { spawn } from "node:child_process";
import type { Command } from "commander";
import type { Client } from "./client.js";
import { dim } from "./format.js";

interface CodeAnswer {
  code: string;
  expiresAt: number;
  url: string;
}

/** Opens a URL in the desktop's browser, detached; false when there is no way to. */
export function openInBrowser(url: string): boolean {
  const cmd =
    process.platform === "darwin"
      ? ["open", url]
      : process.platform === "win32"
        ? ["cmd", "/c", "start", '""', url]
        : ["xdg-open", url];
  if (process.platform === "linux" && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY)
    return false;
  try {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: "ignore", detached: true });
    child.on("error", () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}

export function registerDashboardCommand(program: Command, client: (cmd: Command) => Client): void {
  program
    .command("dashboard")
    .description("print (and open, on a desktop) a one-time sign-in link to the dashboard")
    .option("--no-open", "only print the link")
    .action(async (opts: { open: boolean }, cmd: Command) => {
      const c = client(cmd);
      const answer = await c.call<CodeAnswer>("POST", "/api/v1/sessions/codes");
      // The server names itself by the Host it was called with; the client's URL is the one
      // that reaches it from here.
      const url = `${c.server}/#code=${answer.code}`;
      process.stdout.write(`${url}\n`);
      const secs = Math.max(0, Math.round((answer.expiresAt - Date.now()) / 1000));
      process.stderr.write(dim(`one-time sign-in link, valid for ${secs} s\n`));
      if (opts.open && process.stdout.isTTY) openInBrowser(url);
    });
}
