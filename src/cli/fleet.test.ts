import assert from "node:assert/strict";
import { test } from "node:test";
import { TurnoutError } from "../errors.js";
import { parseMetricsAddress } from "./fleet.js";

test("--metrics-address: HOST:PORT, [IPv6]:PORT; anything else is a usage error naming why", () => {
  assert.deepEqual(parseMetricsAddress("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseMetricsAddress("0.0.0.0:0"), { host: "0.0.0.0", port: 0 });
  assert.deepEqual(parseMetricsAddress("edge-1.internal:9464"), {
    host: "edge-1.internal",
    port: 9464,
  });
  assert.deepEqual(parseMetricsAddress("[::1]:9464"), { host: "::1", port: 9464 });
  for (const [given, why] of [
    ["9464", /the port is missing/],
    [":9464", /the host is missing/],
    ["::1:9464", /not a HOST:PORT/],
    ["[nope]:9464", /nope is not an IPv6 address/],
    ["127.0.0.1:65536", /port 65536 is not 0\.\.65535/],
    ["127.0.0.1:", /not a HOST:PORT/],
  ] as const) {
    assert.throws(
      () => parseMetricsAddress(given),
      (err: unknown) =>
        err instanceof TurnoutError &&
        err.code === "TURNOUT_ERR_CLI_USAGE" &&
        why.test(err.message) &&
        err.message.includes("e.g. 127.0.0.1:9464"),
      given,
    );
  }
});
