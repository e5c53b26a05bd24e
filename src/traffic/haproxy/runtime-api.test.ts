import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TurnoutError } from "../../errors.js";
import {
  parseAnswer,
  parseGetMap,
  parseInfo,
  parseServersState,
  parseStat,
  RuntimeApi,
} from "./runtime-api.js";
import {
  freePort,
  needsHaproxy,
  operatorConfig,
  type RunningHaproxy,
  runHaproxy,
  startUpstream,
  tempDir,
  type Upstream,
  waitFor,
} from "./testing.js";

// Answers recorded from HAProxy 2.6.12.
test("parseAnswer tells a refusal from a success, per command", () => {
  assert.deepEqual(parseAnswer("set server a/b state drain", "\n"), { ok: true, text: "" });
  assert.equal(parseAnswer("set server a/zz state drain", "No such server.\n\n").ok, false);
  assert.equal(parseAnswer("add server s1/c 127.0.0.1:1", "New server registered.\n\n").ok, true);
  assert.equal(
    parseAnswer(
      "add server s1/c 127.0.0.1:1",
      "Already exists a server with the same name in backend.\n\n",
    ).ok,
    false,
  );
  assert.equal(parseAnswer("del server s1/c", "Server deleted.\n").ok, true);
  assert.equal(
    parseAnswer("del server s1/c", "Only servers in maintenance mode can be deleted.\n").ok,
    false,
  );
  assert.equal(parseAnswer("prepare map /m", "New version created: 3\n\n").ok, true);
  assert.equal(
    parseAnswer("prepare map /x", "Unknown map identifier. Please use #<id> or <file>.\n\n").ok,
    false,
  );
  assert.equal(parseAnswer("commit map @7 /m", "Version number out of range.\n\n").ok, false);
  assert.equal(parseAnswer("show servers state nob", "Can't find backend.\n\n").ok, false);
  assert.equal(parseAnswer("show backend", "# name\nbe_none\ns0\n\n").ok, true);
});

test("parsers of show servers state, show stat, show info and get map", () => {
  const state = parseServersState(
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n5 s1 1 b 127.0.0.1 2 0 1\n5 s1 2 c 127.0.0.1 0 1 1\n\n",
  );
  assert.equal(state.length, 2);
  assert.equal(state[1]!.srv_name, "c");
  assert.equal(state[1]!.srv_admin_state, "1");
  const stat = parseStat("# pxname,svname,qcur,scur,\nfe,FRONTEND,,3,\ns1,b,0,1,\n\n");
  assert.deepEqual(stat[1], { pxname: "s1", svname: "b", qcur: "0", scur: "1" });
  assert.equal(parseInfo("Name: HAProxy\nVersion: 2.6.12-1\nPid: 42\n").Pid, "42");
  assert.equal(
    parseGetMap(
      'type=str, case=sensitive, found=yes, idx=tree, key="v1", value="s0", type="str"\n',
    ),
    "s0",
  );
  assert.equal(parseGetMap("type=str, case=sensitive, found=no\n"), undefined);
});

describe("RuntimeApi against a real HAProxy", needsHaproxy(), () => {
  const dir = tempDir();
  let hx: RunningHaproxy;
  let api: RuntimeApi;
  let port = 0;
  let a: Upstream;
  let b: Upstream;
  const mapFile = join(dir.path, "v.map");

  before(async () => {
    [a, b] = await Promise.all([startUpstream("a"), startUpstream("b")]);
    port = await freePort();
    writeFileSync(mapFile, "k1 one\n");
    const cfg = operatorConfig({
      socket: `${dir.path}/admin.sock`,
      port,
      frontend: [
        `  http-request return status 200 content-type text/plain lf-string "%[req.hdr(x-k),map(${mapFile})]" if { path /map }`,
        "  default_backend be",
      ],
      backends: ["backend be", "  balance roundrobin", `  server a 127.0.0.1:${a.port}`],
    });
    api = new RuntimeApi(join(dir.path, "admin.sock"));
    hx = await runHaproxy(dir.path, cfg, () => api.answers());
  });

  after(async () => {
    await hx?.stop();
    await Promise.all([a?.close(), b?.close()]);
    dir.remove();
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
    return (await r.text()).trim();
  };

  test("info, backends and server state", async () => {
    assert.match((await api.info()).Version!, /^2\.6/);
    assert.ok((await api.backends()).includes("be"));
    const rows = await api.serversState("be");
    assert.deepEqual(
      rows.map((r) => r.srv_name),
      ["a"],
    );
    assert.ok((await api.stat()).some((r) => r.pxname === "be" && r.svname === "a"));
  });

  test("add, drain and delete a server live", async () => {
    await api.addServer("be", "b", `127.0.0.1:${b.port}`);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(await get("/"));
    assert.deepEqual([...seen].sort(), ["a", "b"]);
    await api.setServerState("be", "a", "drain");
    for (let i = 0; i < 5; i++) assert.equal(await get("/"), "b");
    await api.setServerState("be", "a", "ready");
    await api.setServerWeight("be", "a", 0);
    for (let i = 0; i < 5; i++) assert.equal(await get("/"), "b");
    await api.setServerWeight("be", "a", 1);
    await api.delServer("be", "b");
    assert.deepEqual(
      (await api.serversState("be")).map((r) => r.srv_name),
      ["a"],
    );
  });

  test("a map is replaced atomically, in batches past the payload limit", async () => {
    assert.equal(await api.getMap(mapFile, "k1"), "one");
    const lines = Array.from({ length: 3000 }, (_, i) => `k${i} value-${i}`);
    await api.replaceMap(mapFile, lines);
    assert.equal(await get("/map", { "x-k": "k2999" }), "value-2999");
    assert.equal(await api.getMap(mapFile, "k1"), "value-1");
    await api.replaceMap(mapFile, []);
    assert.equal(await api.getMap(mapFile, "k1"), undefined);
    assert.deepEqual(await api.showMap(mapFile), []);
    await api.replaceMap(mapFile, ["x y z"]);
    assert.deepEqual(await api.showMap(mapFile), ["x y z"]);
  });

  test("refusals and a dead socket are TURNOUT_ERR_HAPROXY_RUNTIME_API errors naming the command", async () => {
    await assert.rejects(api.setServerState("be", "nope", "drain"), (e: TurnoutError) => {
      assert.equal(e.code, "TURNOUT_ERR_HAPROXY_RUNTIME_API");
      assert.match(e.message, /set server be\/nope state drain.*No such server/);
      return true;
    });
    const dead = new RuntimeApi(join(dir.path, "missing.sock"));
    assert.equal(await dead.answers(), false);
    await assert.rejects(dead.info(), /missing\.sock.*the socket does not exist/);
  });

  test("the process is still serving after all that", async () => {
    await waitFor("an answer", async () => (await get("/")) === "a");
  });
});
