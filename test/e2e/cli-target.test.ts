/**
 * Where the CLI sends its token: only to the server it came from. A fake HTTP server records
 * every Authorization header it gets; the CLI is pointed at data dirs whose server record is
 * missing or names a dead process (at the fake's URL), and must send nothing. Then the API
 * over HTTPS (a self-signed certificate made here with openssl) and on all interfaces.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { processStartTicks } from "../../src/runtime/process/proc.js";
import { cli, freePort, ROOT, tempDir } from "../helpers.js";

const TOKEN = "secret-token-of-the-data-dir";

/** An HTTP server that answers 401 like Turnout does and keeps what it was sent. */
async function recordingServer() {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.writeHead(401, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        error: {
          code: "TURNOUT_ERR_AUTH_UNAUTHORIZED",
          message: req.headers.authorization
            ? "wrong bearer token"
            : "missing bearer token: send Authorization: Bearer <token>, the token in <data dir>/token on Turnout's machine (or the fleet's --token-file)",
        },
      }),
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const a = server.address();
  const url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("the CLI sends the token only to the server it came from", () => {
  const root = tempDir();
  let fake: Awaited<ReturnType<typeof recordingServer>>;
  const dataDir = (name: string, record?: object) => {
    const d = join(root, name);
    mkdirSync(d);
    writeFileSync(join(d, "token"), `${TOKEN}\n`, { mode: 0o600 });
    if (record) writeFileSync(join(d, "server.json"), JSON.stringify(record));
    return d;
  };
  const clean = { TURNOUT_SERVER: "", TURNOUT_TOKEN: "", TURNOUT_DATA_DIR: "" };

  before(async () => {
    fake = await recordingServer();
  });
  after(async () => {
    await fake.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("a token but no server record: says so, sends nothing", async () => {
    const d = dataDir("no-record");
    const r = await cli(["--data-dir", d, "get", "services"], clean);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`no Turnout running for data dir ${d} \\(no server record`));
    assert.match(r.stderr, /turnout up --data-dir/);
    assert.match(r.stderr, /--server URL with --token T/);
    assert.match(r.stderr, /TURNOUT_ERR_CLI_NO_SERVER/);
    assert.equal(fake.seen.length, 0);
  });

  it("a server record of a dead process: names where it was last seen, sends nothing", async () => {
    const p = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await once(p, "exit");
    const d = dataDir("dead", { url: fake.url, pid: p.pid });
    const r = await cli(["--data-dir", d, "status", "web"], clean);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`no Turnout running for data dir ${d} \\(last seen at ${fake.url}, pid ${p.pid}`),
    );
    assert.equal(fake.seen.length, 0, "nothing reached the URL of the stale record");

    // A live pid with another start time is a reused pid, not that server.
    const reused = dataDir("reused", { url: fake.url, pid: process.pid, startTicks: "1" });
    const r2 = await cli(["--data-dir", reused, "get", "services"], clean);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /no Turnout running for data dir/);
    assert.equal(fake.seen.length, 0);
  });

  it("--server without --token gets no data-dir token unless the data dir's live server is that one", async () => {
    // The data dir's server is alive (this test process stands in for it), elsewhere.
    const d = dataDir("live-elsewhere", {
      url: "http://127.0.0.1:1",
      pid: process.pid,
      startTicks: processStartTicks(process.pid),
    });
    const r = await cli(["--data-dir", d, "--server", fake.url, "get", "services"], clean);
    assert.equal(r.code, 1);
    assert.equal(fake.seen.length, 1);
    assert.equal(fake.seen[0]!.authorization, undefined, "the data dir's token was not sent");
    assert.match(
      r.stderr,
      /missing bearer token: Turnout at http:\/\/127\.0\.0\.1:\d+ \(from --server\) got no token/,
    );
    assert.match(
      r.stderr,
      new RegExp(`the token of data dir ${d} is sent only to the server it records`),
    );
    assert.match(r.stderr, /pass --data-dir DIR .* or --server URL with --token T/);

    // Pointed at the data dir's own live server, the token goes with it.
    const own = dataDir("live-here", {
      url: fake.url,
      pid: process.pid,
      startTicks: processStartTicks(process.pid),
    });
    const r2 = await cli(["--data-dir", own, "--server", fake.url, "get", "services"], clean);
    assert.equal(r2.code, 1);
    assert.equal(fake.seen[1]!.authorization, `Bearer ${TOKEN}`);
    assert.match(
      r2.stderr,
      new RegExp(`wrong bearer token: .* refused the token from ${own}/token`),
    );
  });

  it("a wrong --token is reported with the server and where the token came from", async () => {
    const before = fake.seen.length;
    const r = await cli(["--server", fake.url, "--token", "nope", "get", "services"], clean);
    assert.equal(r.code, 1);
    assert.equal(fake.seen[before]!.authorization, "Bearer nope");
    assert.match(
      r.stderr,
      new RegExp(
        `wrong bearer token: Turnout at ${fake.url} \\(from --server\\) refused the token from --token`,
      ),
    );
  });
});

interface Spawned {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/** `turnout up` with extra flags; resolves once it printed its listening line. */
async function up(
  dataDir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Spawned> {
  const proc = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "src/cli/main.ts"),
      "up",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      ...args,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", TURNOUT_LOG_LEVEL: "error", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("Ctrl-C")) resolve();
    });
    void exited.then((code) => reject(new Error(`turnout up exited with ${code}: ${err}`)));
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return exited;
    },
  };
}

describe("the API over HTTPS, and on all interfaces", () => {
  const root = tempDir();
  const cert = join(root, "cert.pem");
  const key = join(root, "key.pem");
  after(() => rmSync(root, { recursive: true, force: true }));

  before(() => {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { stdio: "ignore" },
    );
  });

  it("--tls-cert/--tls-key: https only; the CLI trusts the recorded certificate, never silently any", async () => {
    const dir = join(root, "tls");
    const t = await up(dir, ["--tls-cert", cert, "--tls-key", key]);
    try {
      const record = JSON.parse(readFileSync(join(dir, "server.json"), "utf8"));
      assert.match(record.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(record.tlsCert, cert);
      assert.match(t.stdout(), new RegExp(`listening on ${record.url}`));
      assert.doesNotMatch(t.stderr(), /plain HTTP/);

      const env = { TURNOUT_DATA_DIR: dir, TURNOUT_SERVER: "", TURNOUT_TOKEN: "", TURNOUT_CA: "" };
      const svc = join(root, "svc.yaml");
      const routerPort = await freePort();
      writeFileSync(
        svc,
        `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: web }
spec:
  listen: { port: ${routerPort} }
  runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9"] } } } }
  version: v1
`,
      );
      const applied = await cli(["apply", "-f", svc], env);
      assert.equal(applied.code, 0, applied.stderr);
      const got = await cli(["get", "services", "-o", "json"], env);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(JSON.parse(got.stdout).items[0].name, "web");
      const st = await cli(["status", "web", "-o", "json"], env);
      assert.equal(st.code, 0, st.stderr);

      // Plain HTTP is not served on that port.
      const port = new URL(record.url).port;
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));

      // Told the URL without the data dir, the CLI verifies against the system's CAs and
      // refuses; with --ca it trusts that certificate.
      const token = readFileSync(join(dir, "token"), "utf8").trim();
      const other = {
        TURNOUT_DATA_DIR: join(root, "elsewhere"),
        TURNOUT_SERVER: "",
        TURNOUT_TOKEN: "",
        TURNOUT_CA: "",
      };
      const untrusted = await cli(
        ["--server", record.url, "--token", token, "get", "services"],
        other,
      );
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /TLS certificate of Turnout at https:.* is not trusted/);
      assert.match(untrusted.stderr, /--ca FILE/);
      const trusted = await cli(
        ["--server", record.url, "--token", token, "--ca", cert, "get", "services"],
        other,
      );
      assert.equal(trusted.code, 0, trusted.stderr);
    } finally {
      assert.equal(await t.stop(), 0, t.stderr());
    }
  });

  it("--tls-cert without --tls-key is a usage error; an unreadable certificate is named", async () => {
    const r = await cli(["up", "--port", "0", "--data-dir", join(root, "x"), "--tls-cert", cert]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--tls-cert and --tls-key go together/);
    const missing = join(root, "missing.pem");
    const r2 = await cli([
      "up",
      "--port",
      "0",
      "--data-dir",
      join(root, "y"),
      "--tls-cert",
      missing,
      "--tls-key",
      key,
    ]);
    assert.equal(r2.code, 1);
    assert.match(
      r2.stderr,
      new RegExp(`cannot read the TLS certificate \\(--tls-cert\\) ${missing}`),
    );
    assert.match(r2.stderr, /TURNOUT_ERR_TLS_CONFIG/);
    // The key of another certificate.
    const otherKey = join(root, "other-key.pem");
    execFileSync("openssl", ["genrsa", "-out", otherKey, "2048"], { stdio: "ignore" });
    const r3 = await cli([
      "up",
      "--port",
      "0",
      "--data-dir",
      join(root, "z"),
      "--tls-cert",
      cert,
      "--tls-key",
      otherKey,
    ]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /cannot be used together/);
  });

  it("--host 0.0.0.0 prints the bound address and warns that it is plain HTTP on the network", async () => {
    const dir = join(root, "all");
    // The warning is a log line at level warn (the default level; `--quiet` keeps warnings).
    const t = await up(dir, ["--host", "0.0.0.0"], { TURNOUT_LOG_LEVEL: "warn" });
    try {
      const record = JSON.parse(readFileSync(join(dir, "server.json"), "utf8"));
      const port = new URL(record.url).port;
      assert.equal(record.url, `http://127.0.0.1:${port}`);
      assert.match(
        t.stdout(),
        new RegExp(
          `listening on http://0\\.0\\.0\\.0:${port} \\(all interfaces\\): http://127\\.0\\.0\\.1:${port} from this machine`,
        ),
      );
      // stderr is its own pipe: its line may arrive after stdout's, so wait for it (bounded).
      const warning = /the API and \/metrics are reachable from the network in plain HTTP/g;
      for (let i = 0; i < 100 && !t.stderr().match(warning); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      // Once: the server's log line (JSON in this pipe), not a second human copy beside it.
      assert.equal(t.stderr().match(warning)?.length, 1, t.stderr());
      const got = await cli(["get", "services"], {
        TURNOUT_DATA_DIR: dir,
        TURNOUT_SERVER: "",
        TURNOUT_TOKEN: "",
      });
      assert.equal(got.code, 0, got.stderr);
    } finally {
      assert.equal(await t.stop(), 0, t.stderr());
    }
  });
});
