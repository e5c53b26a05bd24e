/**
 * The delivery loop: works off the notification outbox (`src/store/outbox-store.ts`) in the
 * controller role, beside the controller and never inside its tick (the tick only writes
 * outbox rows in its own transaction; sending happens here, on its own timers).
 *
 * 1. Take the due head of each (notifier, service) queue, at most `concurrency` at a time and
 *    one per queue, so a service's notifications arrive in order and a slow or failing
 *    receiver holds back only its own queues.
 * 2. Render it for its Notifier as it is now (webhook JSON signed with the secret, or Slack),
 *    and POST it with undici, bounded by `timeoutMs`.
 * 3. 2xx: delivered. 4xx other than 408 and 429: the receiver refused it and will refuse it
 *    again, so it is given up at once (NotificationFailed in the history, shown by `turnout get
 *    notifiers`). Anything else (5xx, 408, 429, no answer, a missing secret) is tried again
 *    after an exponential back-off with jitter: initialMs * 2^(attempts-1), capped at maxMs,
 *    times a factor in [0.5, 1) from the injected `random`, until `giveUpAfterMs` since the
 *    event (24 h by default), so a receiver that is down for minutes or hours gets every
 *    notification once back, and one gone for good is eventually reported.
 * 4. Repeat when a delivery settles, when told (`wake`, on store changes), at the next due
 *    back-off, or every `pollMs` (other processes write outbox rows too).
 *
 * At least once: an entry is marked delivered after the receiver's 2xx, so a crash between the
 * two sends it again with the same `Idempotency-Key`; receivers dedupe on it.
 */
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { Agent, type Dispatcher, request } from "undici";
import type { Clock, TimerHandle } from "../core/clock.js";
import type { NotifierResource, SecretRef } from "../core/notify.js";
import type { OutboxEntry, OutboxStore } from "../store/outbox-store.js";
import { slackRequest, type WireRequest, webhookRequest } from "./render.js";

export interface BackoffOptions {
  /** The first retry's delay (before jitter). Default 1 s. */
  initialMs: number;
  /** The longest delay between two attempts. Default 5 min. */
  maxMs: number;
}

/** What the sender reports: the receiver's status and the start of its answer. */
export interface SendResult {
  status: number;
  body: string;
}

/** Sends one POST; throws when there is no answer (refused, reset, timed out). */
export type Sender = (
  url: string,
  req: WireRequest,
  opts: { timeoutMs: number },
) => Promise<SendResult>;

export interface DelivererOptions {
  outbox: OutboxStore;
  /** The Notifiers as they are now (read from the store each pass). */
  notifiers: () => Promise<NotifierResource[]>;
  clock: Clock;
  /** In [0, 1); seeded in tests. Default Math.random. */
  random?: () => number;
  /** Default: undici over a private Agent. */
  send?: Sender;
  logger?: Logger;
  backoff?: Partial<BackoffOptions>;
  /** Give a notification up this long after its event. Default 24 h. */
  giveUpAfterMs?: number;
  /** Per request (connect, headers and body). Default 10 s. */
  timeoutMs?: number;
  /** Requests in flight at most (one per queue). Default 8. */
  concurrency?: number;
  /** How often to look for work without being woken. Default 1 s. */
  pollMs?: number;
  /** Where `secretRef.env` is looked up. Default process.env. */
  env?: Record<string, string | undefined>;
  /** Settled entries are deleted this long after they settled. Default 7 days. */
  keepSettledMs?: number;
}

/** What happened to one attempt. */
export type AttemptOutcome = "delivered" | "retry" | "failed";

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 5 * 60_000 };
const DAY = 24 * 60 * 60 * 1000;
/** How much of a receiver's error answer is kept for people. */
const ANSWER_CHARS = 200;

/** The retry delay after `attempts` failed attempts (1 for the first), jitter included. */
export function backoffDelay(attempts: number, b: BackoffOptions, random: () => number): number {
  const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(attempts - 1, 30));
  // "Equal jitter": half fixed, half random, so receivers coming back are not hit in step.
  return Math.round(base * (0.5 + random() * 0.5));
}

/** 4xx means "this request is wrong": sending it again cannot help, except 408 and 429. */
export function isPermanent(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

export class NotificationDeliverer {
  readonly #o: Required<Omit<DelivererOptions, "logger" | "send" | "backoff">> & {
    logger: Logger | undefined;
    backoff: BackoffOptions;
  };
  readonly #send: Sender;
  readonly #agent: Agent | undefined;
  /** In flight, by queue ("notifier\0service"). */
  readonly #inflight = new Map<string, Promise<AttemptOutcome>>();
  #timer: TimerHandle | undefined;
  #running = false;
  #passing: Promise<void> | null = null;
  #again = false;
  #lastPrune = Number.NEGATIVE_INFINITY;

  constructor(opts: DelivererOptions) {
    this.#o = {
      outbox: opts.outbox,
      notifiers: opts.notifiers,
      clock: opts.clock,
      random: opts.random ?? Math.random,
      logger: opts.logger,
      backoff: { ...DEFAULT_BACKOFF, ...opts.backoff },
      giveUpAfterMs: opts.giveUpAfterMs ?? DAY,
      timeoutMs: opts.timeoutMs ?? 10_000,
      concurrency: opts.concurrency ?? 8,
      pollMs: opts.pollMs ?? 1_000,
      env: opts.env ?? process.env,
      keepSettledMs: opts.keepSettledMs ?? 7 * DAY,
    };
    if (opts.send) {
      this.#send = opts.send;
    } else {
      const timeout = this.#o.timeoutMs;
      this.#agent = new Agent({
        connect: { timeout },
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      this.#send = undiciSender(this.#agent);
    }
  }

  /** Starts the background loop. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.wake();
  }

  /**
   * Stops the loop and waits for the requests in flight (bounded by `timeoutMs`); `start()`
   * resumes it. A controller that stops leading pauses its deliverer: only the leader delivers.
   */
  async pause(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#passing;
    await Promise.allSettled([...this.#inflight.values()]);
  }

  /** Stops the loop for good, waiting for the requests in flight. */
  async stop(): Promise<void> {
    await this.pause();
    await this.#agent?.close();
  }

  /** Look for work now (new outbox rows were written). Cheap: passes coalesce. */
  wake(): void {
    if (!this.#running) return;
    if (this.#passing) {
      this.#again = true;
      return;
    }
    this.#passing = this.#loop().finally(() => {
      this.#passing = null;
    });
  }

  /**
   * One pass that waits for every attempt it starts: for tests and tools that drive delivery
   * with an injected clock instead of the background loop. Returns what each attempt did.
   */
  async runOnce(): Promise<AttemptOutcome[]> {
    const started = await this.#pass();
    return Promise.all(started);
  }

  /** Queues with a request in flight (for tests and status). */
  get inFlight(): number {
    return this.#inflight.size;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#pass();
      } catch (err) {
        // The store is unavailable or closing: try again at the next poll.
        this.#o.logger?.warn({ err }, "notification delivery pass failed");
      }
    } while (this.#again && this.#running);
    await this.#schedule();
  }

  async #schedule(): Promise<void> {
    if (!this.#running) return;
    const now = this.#o.clock.now();
    let next = now + this.#o.pollMs;
    try {
      const due = await this.#o.outbox.nextDueAt();
      if (due !== null && due > now) next = Math.min(next, due);
    } catch {
      // As above: the poll comes anyway.
    }
    if (!this.#running) return;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = this.#o.clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.wake();
      },
      Math.max(0, next - now),
    );
  }

  /** Starts an attempt for each due head whose queue is idle; returns the attempts started. */
  async #pass(): Promise<Promise<AttemptOutcome>[]> {
    const o = this.#o;
    const now = o.clock.now();
    if (now - this.#lastPrune >= 60 * 60_000) {
      this.#lastPrune = now;
      await o.outbox.prune(now - o.keepSettledMs);
    }
    const free = o.concurrency - this.#inflight.size;
    if (free <= 0) return [];
    // Heads in flight are still pending and come back too: ask for enough to see past them.
    const heads = await o.outbox.dueHeads(now, free + this.#inflight.size);
    if (heads.length === 0) return [];
    const notifiers = new Map((await o.notifiers()).map((n) => [n.metadata.name, n]));
    const started: Promise<AttemptOutcome>[] = [];
    for (const h of heads) {
      const key = `${h.notifier}\0${h.service}`;
      if (this.#inflight.has(key) || this.#inflight.size >= o.concurrency) continue;
      const p = this.#attempt(h, notifiers.get(h.notifier))
        .catch((err: unknown): AttemptOutcome => {
          // The mark failed (the store is unavailable or closing): the entry is still pending
          // and is sent again later, with the same key. Never an unhandled rejection.
          o.logger?.warn({ err, notifier: h.notifier }, "could not record a notification attempt");
          return "retry";
        })
        .finally(() => {
          this.#inflight.delete(key);
          // The queue may have a next entry now: look again (the background loop only).
          this.wake();
        });
      this.#inflight.set(key, p);
      started.push(p);
    }
    return started;
  }

  async #attempt(e: OutboxEntry, n: NotifierResource | undefined): Promise<AttemptOutcome> {
    const o = this.#o;
    const log = o.logger?.child({
      notifier: e.notifier,
      service: e.service,
      event: e.eventType,
      idempotencyKey: e.idempotencyKey,
    });
    if (n === undefined) {
      await o.outbox.markFailed(e.id, {
        now: o.clock.now(),
        status: null,
        error: `Notifier ${e.notifier} was deleted`,
      });
      return "failed";
    }
    let status: number | null = null;
    let error: string;
    try {
      const { url, req } = this.#render(e, n);
      const res = await this.#send(url, req, { timeoutMs: o.timeoutMs });
      status = res.status;
      if (res.status >= 200 && res.status < 300) {
        await o.outbox.markDelivered(e.id, o.clock.now(), res.status);
        log?.debug({ status }, "notification delivered");
        return "delivered";
      }
      const answer = res.body.trim().slice(0, ANSWER_CHARS);
      error = `HTTP ${res.status}${answer ? `: ${answer}` : ""}`;
      if (res.status >= 300 && res.status < 400)
        error += " (a redirect: set the Notifier's url to where it points)";
    } catch (err) {
      error = describeError(err);
    }
    const now = o.clock.now();
    if (
      (status !== null && (isPermanent(status) || (status >= 300 && status < 400))) ||
      now - e.createdAt >= o.giveUpAfterMs
    ) {
      const why =
        status !== null && (isPermanent(status) || (status >= 300 && status < 400))
          ? error
          : `${error}; still failing ${Math.round((now - e.createdAt) / 60_000)} min after the event, given up`;
      await o.outbox.markFailed(e.id, { now, status, error: why });
      log?.warn({ status, error: why, attempts: e.attempts + 1 }, "notification given up");
      return "failed";
    }
    const delay = backoffDelay(e.attempts + 1, o.backoff, o.random);
    await o.outbox.markRetry(e.id, { now, status, error, nextAttemptAt: now + delay });
    log?.info(
      { status, error, attempts: e.attempts + 1, retryInMs: delay },
      "notification will be retried",
    );
    return "retry";
  }

  #render(e: OutboxEntry, n: NotifierResource): { url: string; req: WireRequest } {
    const spec = n.spec;
    if (spec.slack) return { url: spec.slack.url, req: slackRequest(e.notification) };
    const w = spec.webhook;
    if (!w) throw new Error(`Notifier ${n.metadata.name} has neither webhook nor slack`);
    const secret = w.secret ?? this.#secret(w.secretRef as SecretRef);
    return { url: w.url, req: webhookRequest(e.notification, secret, w.headers) };
  }

  #secret(ref: SecretRef): string {
    if ("env" in ref) {
      const v = this.#o.env[ref.env];
      if (v === undefined || v === "")
        throw new Error(`the secret's environment variable ${ref.env} is not set for turnout up`);
      return v;
    }
    try {
      const v = readFileSync(ref.file, "utf8").trim();
      if (v === "") throw new Error("it is empty");
      return v;
    } catch (err) {
      throw new Error(`cannot read the secret's file ${ref.file}: ${(err as Error).message}`);
    }
  }
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: string }).code;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = code ?? cause?.code;
  return detail && !err.message.includes(detail) ? `${err.message} (${detail})` : err.message;
}

/** POSTs with undici over `dispatcher`, reading at most a little of the answer. */
export function undiciSender(dispatcher: Dispatcher): Sender {
  return async (url, req) => {
    const res = await request(url, {
      method: "POST",
      headers: req.headers,
      body: req.body,
      dispatcher,
    });
    let body = "";
    for await (const chunk of res.body) {
      if (body.length < ANSWER_CHARS) body += (chunk as Buffer).toString("utf8");
      // The rest is read and dropped so that the connection can be reused.
    }
    return { status: res.statusCode, body: body.slice(0, ANSWER_CHARS) };
  };
}
