import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RouterReport } from "../store/store.js";
import { dataPlanesOf } from "./data-plane.js";

const T0 = 1_700_000_000_000;
const BIND = "cannot listen on 127.0.0.1:18080: address already in use (EADDRINUSE)";

/** A router's report with only what `dataPlanesOf` reads. */
const report = (id: string, heartbeatAt: number, notServing?: RouterReport["notServing"]) =>
  ({
    id,
    address: id,
    pid: 1,
    startedAt: T0,
    heartbeatAt,
    revisions: {},
    notServing,
  }) as RouterReport;

describe("dataPlanesOf", () => {
  it("names every live router that cannot serve a service, one reason each, and no other", () => {
    const refused = "haproxy refused route table revision 1";
    const out = dataPlanesOf(
      [
        report("a", T0, { web: { revision: 1, reason: BIND } }),
        report("b", T0 - 1000, { web: { revision: 1, reason: BIND } }),
        report("c", T0, { web: { revision: 1, reason: refused } }),
        // Silent for 5 s: not live, so not evidence of anything any more.
        report("d", T0 - 5000, { api: { revision: 2, reason: BIND } }),
        report("e", T0),
      ],
      T0,
      5000,
    );
    assert.deepEqual(
      [...out],
      [["web", { serving: false, reason: `${BIND} (routers a, b); ${refused} (router c)` }]],
    );
  });
});
