/**
 * End to end: controller failover (issue #14 item 5) with real processes on a private
 * PostgreSQL cluster: the scenario is test/support/failover.ts. One `--roles api,router`
 * process and two `--roles controller` processes share one database; the leader is killed
 * with SIGKILL while a promote waits; the standby leads within 10 s, takes the promote up once
 * and finishes the rollout with no event twice. test/e2e/fleet-ha-busy.test.ts runs the same
 * with every core busy.
 */
import { describeFailover } from "../support/failover.js";

describeFailover("controller failover on PostgreSQL (kill -9 of the leader)");
