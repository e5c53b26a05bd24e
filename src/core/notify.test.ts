import assert from "node:assert/strict";
import { test } from "node:test";
import { EVENTS } from "./events.js";
import {
  NOTIFIER_EVENT_NAMES,
  NOTIFIER_EVENTS,
  type NotifierSpec,
  notifierEventOf,
  notifierWants,
  serviceMatches,
} from "./notify.js";

test("every subscription maps to catalogued event types, each type to one subscription", () => {
  const seen = new Set<string>();
  for (const name of NOTIFIER_EVENT_NAMES) {
    for (const type of NOTIFIER_EVENTS[name]) {
      assert.ok(type in EVENTS, `${name}: ${type} is catalogued`);
      assert.ok(!seen.has(type), `${type} belongs to one subscription`);
      seen.add(type);
      assert.equal(notifierEventOf(type), name);
    }
  }
  assert.equal(notifierEventOf("WeightChanged"), undefined);
  assert.equal(notifierEventOf("NotificationFailed"), undefined, "no notification loops");
});

test("service globs: * is any run, the rest literal", () => {
  assert.ok(serviceMatches("pay", "pay"));
  assert.ok(!serviceMatches("pay", "payments"));
  assert.ok(serviceMatches("pay*", "payments"));
  assert.ok(serviceMatches("*-model", "fraud-model"));
  assert.ok(serviceMatches("*", "anything"));
  assert.ok(!serviceMatches("a*b", "a-c"));
  assert.ok(!serviceMatches("fraud.model", "fraud-model"), "a dot is no wildcard");
});

test("which notifiers want an event", () => {
  const all: NotifierSpec = { slack: { url: "u" }, events: ["paused", "flagKilled"] };
  const some: NotifierSpec = { ...all, services: ["pay-*"] };
  assert.ok(notifierWants(all, "AwaitingPromotion", "web"));
  assert.ok(notifierWants(all, "AnalysisInconclusive", "web"));
  assert.ok(!notifierWants(all, "RolloutStarted", "web"), "not subscribed");
  assert.ok(notifierWants(all, "FlagKilled", ""), "no selector: events of no service too");
  assert.ok(notifierWants(some, "Paused", "pay-eu"));
  assert.ok(!notifierWants(some, "Paused", "web"));
  assert.ok(!notifierWants(some, "FlagKilled", ""), "a selector names services only");
});
