/**
 * Leader election for several controllers on one store (issue #14, controller HA): one leads,
 * the others stand by and take over when it dies.
 *
 * The lease is the writer epoch's row (`Store.leadController`). Correctness does not rest on
 * clocks: every controller commit carries the epoch and the store refuses any other, so a
 * deposed leader (a paused process, one cut off from the database) can never write. The lease
 * only keeps the side effects outside the store (starting and stopping instances, analysis
 * queries, notifications) to one controller at a time, and bounds how long a dead leader goes
 * unnoticed:
 *
 * - **Standby.** It polls the lease every `intervalMs` and remembers when, on its own clock, it
 *   first saw the current (epoch, renewals). When that pair has stood still for `leaseMs`, the
 *   leader stopped renewing: it asks the store to take over exactly that lease, which bumps the
 *   epoch. Two standbys asking at once: the store's serialized transaction lets one win.
 *   Judging expiry by a change seen locally, not by timestamps written by another machine, is
 *   how Kubernetes' leader election copes with clocks that disagree.
 * - **Leader.** It renews every `intervalMs` and acts only until `leaseMs - intervalMs` after
 *   the start of its last successful renewal. A standby can take over no earlier than `leaseMs`
 *   after it saw that renewal, so the leader has stopped acting, with `intervalMs` to spare,
 *   before anyone else can start (assuming clocks that run at about the same rate, not clocks
 *   that agree). A clean stop releases the lease so that a standby leads at once.
 *
 * Defaults: a 5 s lease renewed every 1.25 s, so a standby leads at most about 6.3 s after the
 * leader's last renewal (issue: within 10 s of a `kill -9`).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "../core/clock.js";
import type { ControllerLease, Store } from "../store/store.js";

export const DEFAULT_LEASE_MS = 5_000;

export interface LeaseLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ElectorOptions {
  store: Pick<Store, "leadController" | "releaseController">;
  clock: Clock;
  holder: string;
  /** How long a lease lasts without renewal. Default 5 s. */
  leaseMs?: number;
  /** How often the leader renews and standbys look. Default a quarter of the lease. */
  intervalMs?: number;
  logger?: LeaseLogger;
  /** Called when this controller starts or stops leading (epoch null: it stopped). */
  onChange?: (epoch: number | null) => void;
}

/** What `Elector.step` found. */
export interface ElectionState {
  /** The epoch this controller leads with, or null. */
  epoch: number | null;
  /** The lease as last read (null before the first read, or if nobody ever led). */
  lease: ControllerLease | null;
}

export class Elector {
  readonly holder: string;
  readonly leaseMs: number;
  readonly intervalMs: number;
  private readonly store: ElectorOptions["store"];
  private readonly clock: Clock;
  private readonly log: LeaseLogger | undefined;
  private readonly onChange: ((epoch: number | null) => void) | undefined;
  private epoch: number | null = null;
  /** Clock ms at which the last successful renewal (or the claim) was sent. */
  private renewedFrom = 0;
  /** The lease last seen as a standby, and when (this clock) it was first seen so. */
  private seen: { epoch: number; renewals: number; since: number } | null = null;
  private last: ControllerLease | null = null;
  /** The leader's epoch this standby last said it stands by for: said once per leader. */
  private standingByFor: number | null = null;
  /**
   * An epoch the store says this controller holds though it does not act on it: the answer to
   * a claim that timed out here but went through there. The next step renews it.
   */
  private unclaimed: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Fires at the acting deadline, so a leader stops even while its renewal hangs. */
  private deadline: NodeJS.Timeout | null = null;
  private stepping: Promise<ElectionState> | null = null;
  private stopped = true;

  constructor(opts: ElectorOptions) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.holder = opts.holder;
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.intervalMs = opts.intervalMs ?? Math.max(1, Math.floor(this.leaseMs / 4));
    if (!(this.intervalMs * 2 < this.leaseMs))
      throw new RangeError(
        `lease interval ${this.intervalMs} ms must be under half the lease (${this.leaseMs} ms)`,
      );
    this.log = opts.logger;
    this.onChange = opts.onChange;
  }

  /**
   * The epoch to act with now, or null: this controller leads and its lease has more than
   * `intervalMs` left by its own reckoning.
   */
  acting(): number | null {
    if (this.epoch === null) return null;
    if (this.clock.now() >= this.actUntil()) {
      this.lose("the lease could not be renewed in time; this controller stops acting");
      return null;
    }
    return this.epoch;
  }

  /** The lease as last read. */
  get lease(): ControllerLease | null {
    return this.last;
  }

  /** Clock ms until which the leader may act (its last renewal's start + lease - interval). */
  private actUntil(): number {
    return this.renewedFrom + this.leaseMs - this.intervalMs;
  }

  /** One election step now: renew if leading, else look and take over an expired lease. */
  step(): Promise<ElectionState> {
    this.stepping ??= this.stepOnce().finally(() => {
      this.stepping = null;
    });
    return this.stepping;
  }

  private async stepOnce(): Promise<ElectionState> {
    const sentAt = this.clock.now();
    const leading = this.epoch;
    const takeover =
      leading === null && this.seen !== null && sentAt - this.seen.since >= this.leaseMs
        ? { epoch: this.seen.epoch, renewals: this.seen.renewals }
        : undefined;
    const silentMs = takeover && this.seen ? sentAt - this.seen.since : null;
    const renew = leading ?? this.unclaimed;
    let answer: Awaited<ReturnType<ElectorOptions["store"]["leadController"]>>;
    try {
      // A database cut off by the network does not answer at all: a step that takes longer
      // than an interval has failed (its late answer, if any, is not acted on).
      answer = await withTimeout(
        this.store.leadController({
          holder: this.holder,
          now: sentAt,
          leaseMs: this.leaseMs,
          ...(renew !== null ? { renew } : {}),
          ...(takeover ? { takeover } : {}),
        }),
        this.intervalMs,
      );
    } catch (err) {
      // The store is unreachable: a leader keeps acting only until its lease runs short
      // (`acting`); a standby learns nothing and keeps its last sight of the lease.
      if (leading !== null) this.log?.warn({ err }, "controller lease: renewal failed");
      this.acting();
      return { epoch: this.epoch, lease: this.last };
    }
    this.last = answer.lease;
    this.unclaimed = null;
    if (answer.leading) {
      this.seen = null;
      this.standingByFor = null;
      this.renewedFrom = sentAt;
      if (leading !== answer.lease.epoch) {
        if (leading !== null) this.lose("the lease moved on");
        this.epoch = answer.lease.epoch;
        this.log?.info(
          { epoch: this.epoch, holder: this.holder, took: takeover ?? null },
          silentMs !== null
            ? `controller lease: the leader was silent for ${silentMs} ms; took over with epoch ${this.epoch}`
            : `controller lease: leading with epoch ${this.epoch}`,
        );
        this.onChange?.(this.epoch);
      }
      this.armDeadline();
      this.acting();
    } else {
      if (leading !== null)
        this.lose(
          `controller lease: ${answer.lease.holder} leads now (epoch ${answer.lease.epoch})`,
        );
      const l = answer.lease;
      if (l.holder === this.holder && !l.released) this.unclaimed = l.epoch;
      // Otherwise a standby says nothing while all is well; "who leads" is what one asks of it.
      if (l.holder !== this.holder && !l.released && this.standingByFor !== l.epoch) {
        this.standingByFor = l.epoch;
        this.log?.info(
          { epoch: l.epoch, leader: l.holder, holder: this.holder },
          `controller lease: standing by; ${l.holder} leads (epoch ${l.epoch}); this controller takes over if it stops renewing for ${this.leaseMs} ms`,
        );
      }
      if (this.seen === null || this.seen.epoch !== l.epoch || this.seen.renewals !== l.renewals)
        this.seen = { epoch: l.epoch, renewals: l.renewals, since: sentAt };
    }
    return { epoch: this.epoch, lease: this.last };
  }

  /** With a timer running (`start`), `acting()` is called at the deadline by itself. */
  private armDeadline(): void {
    if (this.stopped) return;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(
      () => {
        this.deadline = null;
        this.acting();
      },
      Math.max(0, this.actUntil() - this.clock.now()),
    );
    this.deadline.unref?.();
  }

  private lose(why: string): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    if (this.epoch === null) return;
    const epoch = this.epoch;
    this.epoch = null;
    this.log?.warn({ epoch, holder: this.holder }, why);
    this.onChange?.(null);
  }

  /** Steps every `intervalMs` until `stop()`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = async () => {
      this.timer = null;
      await this.step();
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.nextDelay());
    };
    void loop();
  }

  /** Leaders wake in time to stop acting even when a renewal hangs. */
  private nextDelay(): number {
    if (this.epoch === null) return this.intervalMs;
    return Math.max(0, Math.min(this.intervalMs, this.actUntil() - this.clock.now()));
  }

  /** Stops stepping; a leader releases the lease so that a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    await this.stepping?.catch(() => undefined);
    const epoch = this.epoch;
    if (epoch === null) return;
    this.epoch = null;
    this.onChange?.(null);
    await this.store
      .releaseController(this.holder, epoch, this.clock.now())
      .catch((err: unknown) => this.log?.warn({ err }, "controller lease: release failed"));
  }
}

/** `p`, or a rejection once `ms` have passed without an answer. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the store did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A holder name unique to this process: "controller 3f9a1c (pid 4242 on host-a)". */
export function controllerHolder(): string {
  const id = randomUUID().slice(0, 6);
  return `controller ${id} (pid ${process.pid} on ${hostname()})`;
}
