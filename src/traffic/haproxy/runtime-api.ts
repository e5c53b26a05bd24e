/**
 * HAProxy's runtime API (the `stats socket`, management.txt §9.3): one command per connection.
 * Connecting to a unix socket costs tens of microseconds, and a connection per command keeps
 * every answer whole and unambiguous (in `prompt` mode answers are delimited only by the prompt,
 * which an answer could contain), so nothing is gained by keeping one open.
 *
 * The parsers (`parseAnswer`, `parseServersState`, `parseStat`, `parseInfo`) are pure and tested
 * against answers of a real HAProxy. HAProxy answers a successful change with an empty line or
 * a fixed sentence, and a refusal with a sentence of its own, on the same channel: `parseAnswer`
 * tells the two apart by what each command says when it succeeds.
 */
import net from "node:net";
import { TurnoutError } from "../../errors.js";

/** What HAProxy says when these commands succeed (anything else is a refusal). */
const SUCCESS: readonly [RegExp, RegExp][] = [
  [/^add server /, /^New server registered\.$/],
  [/^del server /, /^Server deleted\.$/],
  [/^prepare map /, /^New version created: \d+$/],
];
/** Commands that print data rather than a verdict. */
const READERS = /^(show |get |help|prompt|quit)/;

/** A command's answer: `ok` false when HAProxy refused it (the text says why). */
export interface Answer {
  ok: boolean;
  text: string;
}

/** Classifies the answer to `command` (see the module comment). */
export function parseAnswer(command: string, raw: string): Answer {
  const text = raw.replace(/\s+$/, "");
  if (READERS.test(command)) {
    // Readers report a bad argument in words instead of data.
    const refused =
      /^(Unknown command|No such|Unknown (backend|frontend|map|server)|Require |Missing |'[^']+' expects|Can't find|Invalid|Permission denied)/.test(
        text,
      );
    return { ok: !refused, text };
  }
  for (const [cmd, ok] of SUCCESS) if (cmd.test(command)) return { ok: ok.test(text), text };
  return { ok: text === "", text };
}

/** `show servers state` rows: one object per server, keyed by the header's field names. */
export type ServerStateRow = Record<string, string>;

/**
 * Parses `show servers state [<backend>]`: a format version line ("1"), a "# be_id be_name ..."
 * header and space-separated rows.
 */
export function parseServersState(text: string): ServerStateRow[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const head = lines.find((l) => l.startsWith("# "));
  if (head === undefined) return [];
  const names = head.slice(2).trim().split(/\s+/);
  const rows: ServerStateRow[] = [];
  for (const l of lines) {
    if (l.startsWith("#") || /^\d+$/.test(l.trim())) continue;
    const f = l.trim().split(/\s+/);
    const row: ServerStateRow = {};
    names.forEach((n, i) => {
      row[n] = f[i] ?? "";
    });
    rows.push(row);
  }
  return rows;
}

/** `show stat` rows (CSV): one object per proxy or server, keyed by the header's names. */
export type StatRow = Record<string, string>;

export function parseStat(text: string): StatRow[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const head = lines.find((l) => l.startsWith("# "));
  if (head === undefined) return [];
  const names = head.slice(2).split(",");
  const rows: StatRow[] = [];
  for (const l of lines) {
    if (l.startsWith("#")) continue;
    const f = l.split(",");
    const row: StatRow = {};
    names.forEach((n, i) => {
      if (n !== "") row[n] = f[i] ?? "";
    });
    rows.push(row);
  }
  return rows;
}

/** `show info`: "Name: value" lines. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of text.split("\n")) {
    const at = l.indexOf(":");
    if (at > 0) out[l.slice(0, at).trim()] = l.slice(at + 1).trim();
  }
  return out;
}

/** `get map <map> <key>`: `type=str, case=sensitive, found=yes, idx=tree, key="k", value="v", ...`. */
export function parseGetMap(text: string): string | undefined {
  if (!/found=yes/.test(text)) return undefined;
  const m = /value="((?:[^"\\]|\\.)*)"/.exec(text);
  return m === null ? undefined : m[1]!.replace(/\\(.)/g, "$1");
}

/** Server states Turnout sets. */
export type ServerAdminState = "ready" | "drain" | "maint";

/** The largest payload sent in one command: HAProxy reads a command into one buffer (16 KiB). */
const MAX_PAYLOAD_BYTES = 12 * 1024;

export interface RuntimeApiOptions {
  /** Per command (default 5000 ms). */
  timeoutMs?: number;
}

/**
 * A client of one HAProxy's runtime API socket.
 *
 * @example
 * const api = new RuntimeApi("/run/haproxy/admin.sock");
 * await api.setServerState("slot0", "v1:e_127.0.0.1_9001", "drain");
 */
export class RuntimeApi {
  readonly #timeoutMs: number;

  constructor(
    readonly socketPath: string,
    opts: RuntimeApiOptions = {},
  ) {
    this.#timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Sends one command (and its payload lines, if any) and returns HAProxy's raw answer. */
  raw(command: string, payload?: readonly string[]): Promise<string> {
    const line =
      payload === undefined ? `${command}\n` : `${command} <<\n${payload.join("\n")}\n\n`;
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.socketPath);
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        sock.destroy();
        reject(this.#error(command, `no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      sock.on("connect", () => sock.end(line));
      sock.on("data", (d) => chunks.push(d));
      sock.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const why =
          err.code === "ENOENT"
            ? "the socket does not exist"
            : err.code === "ECONNREFUSED"
              ? "nothing listens on the socket"
              : err.message;
        reject(this.#error(command, why));
      });
      sock.on("close", () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString("utf8"));
      });
    });
  }

  /** Sends one command; throws TURNOUT_ERR_HAPROXY_RUNTIME_API when HAProxy refuses it. */
  async run(command: string, payload?: readonly string[]): Promise<string> {
    const a = parseAnswer(command, await this.raw(command, payload));
    if (!a.ok) throw this.#error(command, `HAProxy answered: ${a.text}`);
    return a.text;
  }

  #error(command: string, why: string): TurnoutError {
    return new TurnoutError(
      "TURNOUT_ERR_HAPROXY_RUNTIME_API",
      `HAProxy runtime API ${this.socketPath}: "${command}": ${why}`,
      { socket: this.socketPath, command },
    );
  }

  /** Whether the socket answers at all (`show info`). */
  async answers(): Promise<boolean> {
    try {
      return /Pid:/.test(await this.raw("show info"));
    } catch {
      return false;
    }
  }

  async info(): Promise<Record<string, string>> {
    return parseInfo(await this.run("show info"));
  }

  async serversState(backend?: string): Promise<ServerStateRow[]> {
    return parseServersState(await this.run(`show servers state${backend ? ` ${backend}` : ""}`));
  }

  async stat(): Promise<StatRow[]> {
    return parseStat(await this.run("show stat"));
  }

  /** Backend names (`show backend`). */
  async backends(): Promise<string[]> {
    const text = await this.run("show backend");
    return text
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"))
      .map((l) => l.trim());
  }

  async setServerWeight(backend: string, server: string, weight: number): Promise<void> {
    await this.run(`set server ${backend}/${server} weight ${weight}`);
  }

  async setServerState(backend: string, server: string, state: ServerAdminState): Promise<void> {
    await this.run(`set server ${backend}/${server} state ${state}`);
  }

  /**
   * Adds a server and puts it in service: HAProxy creates dynamic servers in maintenance, with
   * their health check disabled.
   */
  async addServer(backend: string, server: string, args: string): Promise<void> {
    await this.run(`add server ${backend}/${server} ${args}`);
    if (/\bcheck\b/.test(args)) await this.run(`enable health ${backend}/${server}`);
    await this.run(`enable server ${backend}/${server}`);
  }

  /** Removes a server: maintenance first (HAProxy deletes only those), then `del server`. */
  async delServer(backend: string, server: string): Promise<void> {
    await this.run(`set server ${backend}/${server} state maint`);
    await this.run(`del server ${backend}/${server}`);
  }

  /**
   * Replaces every entry of a map at once (`prepare map`, `add map @ver`, `commit map`): a
   * request sees the old entries or the new ones, never a mix.
   */
  async replaceMap(file: string, lines: readonly string[]): Promise<void> {
    const prepared = await this.run(`prepare map ${file}`);
    const ver = /(\d+)$/.exec(prepared)?.[1];
    if (ver === undefined)
      throw this.#error(`prepare map ${file}`, `unexpected answer ${prepared}`);
    let batch: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      await this.run(`add map @${ver} ${file}`, batch);
      batch = [];
      bytes = 0;
    };
    for (const l of lines) {
      if (bytes + l.length + 1 > MAX_PAYLOAD_BYTES) await flush();
      batch.push(l);
      bytes += l.length + 1;
    }
    await flush();
    await this.run(`commit map @${ver} ${file}`);
  }

  /** A map's value for `key`, or undefined when it has none. */
  async getMap(file: string, key: string): Promise<string | undefined> {
    return parseGetMap(await this.raw(`get map ${file} ${key}`));
  }

  /** The map's entries as `key value` lines (`show map`). */
  async showMap(file: string): Promise<string[]> {
    const text = await this.run(`show map ${file}`);
    // "0x55d0c0a0 key value": drop the entry's address.
    return text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => l.replace(/^0x[0-9a-f]+ /, ""));
  }
}
