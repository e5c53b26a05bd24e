/**
 * A reload's old worker, read to its last log line.
 *
 * HAProxy 2.6 closes a stopping worker's ring forwarding at once (its sink forwarder ends when
 * the process starts to stop), so the lines an old worker writes after a reload (its requests in
 * flight, and one more request on each idle keep-alive connection under
 * `idle-close-on-response`) never reach the intake by the ring's TCP forwarding. Being the last
 * numbers of their process, no later number shows them missing either: before this, a reload
 * under load lost a few dozen lines silently (measured: 82 of 3,000 requests, 8 connections).
 *
 * So, before a reload, Turnout opens a session on the worker's runtime API that streams its
 * ring (`show events turnout -w`: what the ring holds, then every new line), and keeps it after
 * the reload, while the now old worker finishes. Most lines come twice (forwarding and session):
 * the intake takes each number once (intake.ts). Not `-n` (new lines only): the lines the
 * forwarding had not sent yet when the worker began to stop are in the ring already, and under
 * load `-n` left a gap of about fifty of them. The session ends once the old worker's frontends
 * hold no connection (`@!<pid> show stat` on the master's CLI) and its last lines are read, or
 * when the worker exits; a session also keeps an old worker alive, so it never outlasts
 * `hard-stop-after` by more than that bound.
 */
import net from "node:net";
import { parseStat, type RuntimeApi } from "./runtime-api.js";

/** How often the old worker's connections are counted. */
const POLL_MS = 100;
/** After its frontends are empty, how long its last lines are given to reach the session. */
const SETTLE_MS = 200;

export class OldWorkerLines {
  readonly #sock: net.Socket;
  readonly #opened: Promise<void>;
  #rest = "";
  #closed = false;
  readonly #done: Promise<void>;

  /** Opens the session on `socketPath` (the worker the socket reaches now). */
  constructor(
    socketPath: string,
    readonly onLines: (batch: string) => void,
  ) {
    this.#sock = net.createConnection(socketPath);
    this.#sock.setEncoding("utf8");
    this.#opened = new Promise((resolve, reject) => {
      this.#sock.once("connect", () => {
        this.#sock.write("show events turnout -w\n");
        resolve();
      });
      this.#sock.once("error", reject);
    });
    this.#sock.on("error", () => {});
    this.#sock.on("data", (chunk: string) => {
      const text = this.#rest + chunk;
      const end = text.lastIndexOf("\n");
      if (end < 0) {
        this.#rest = text;
        return;
      }
      this.#rest = text.slice(end + 1);
      this.onLines(text.slice(0, end));
    });
    this.#done = new Promise((resolve) =>
      this.#sock.once("close", () => {
        this.#closed = true;
        resolve();
      }),
    );
  }

  /** Resolves once the session is open (rejects when the socket cannot be reached). */
  opened(): Promise<void> {
    return this.#opened;
  }

  /**
   * After the reload: reads on until worker `pid` has no connection left on `frontends` (or has
   * exited), then ends the session. Never throws.
   */
  async drain(master: RuntimeApi, pid: number, frontends: readonly string[]): Promise<void> {
    while (!this.#closed) {
      let busy: boolean;
      try {
        const rows = parseStat(await master.raw(`@!${pid} show stat`));
        if (rows.length === 0) break; // the worker is gone: the master cannot find it
        busy = rows.some(
          (r) => r.svname === "FRONTEND" && frontends.includes(r.pxname!) && Number(r.scur) > 0,
        );
      } catch {
        break;
      }
      if (!busy) {
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        break;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    this.close();
    await this.#done;
  }

  /** Ends the session (the old worker may then exit). */
  close(): void {
    if (!this.#closed) this.#sock.end();
  }
}
