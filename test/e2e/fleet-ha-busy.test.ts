/**
 * Controller failover (test/support/failover.ts) with a busy process on every core for the
 * whole scenario: the leases, the takeover within 10 s, the promote taken up once and no event
 * twice must hold on a machine with no idle CPU, not only on a quiet one. It runs on its own
 * after the rest of the suite (scripts/test.mjs EXCLUSIVE), as the busy zero-downtime test does.
 */
import { describeFailover } from "../support/failover.js";

describeFailover("controller failover on PostgreSQL with every core busy", { busyCores: true });
