/**
 * An OpenFeature server provider that evaluates Turnout's flags in-process: it syncs the
 * effective flag definitions from Turnout (`GET /flags/v1/definitions`, a long poll with the
 * ETag: an answer comes as soon as anything changes, the kill switch included) and evaluates
 * them locally with the same pure core as Turnout's OFREP server and router, so the three
 * always agree and an evaluation costs no network round trip.
 *
 * `@openfeature/server-sdk` is an optional peer dependency of the `turnout` package: this file
 * only uses its types, so applications that do not use the provider do not need it.
 *
 * @example
 * import { OpenFeature } from "@openfeature/server-sdk";
 * import { TurnoutProvider } from "turnout";
 * await OpenFeature.setProviderAndWait(
 *   new TurnoutProvider({ url: "http://127.0.0.1:4040", clientKey: process.env.TURNOUT_FLAG_KEY! }),
 * );
 * await OpenFeature.getClient().getBooleanValue("new-checkout", false, { targetingKey: "user-42" });
 */
import type {
  ErrorCode,
  EvaluationContext,
  JsonValue,
  Provider,
  ResolutionDetails,
} from "@openfeature/server-sdk";
import {
  compileFlags,
  evaluate,
  type FlagDefinition,
  type FlagSet,
} from "../core/flags/evaluate.js";
import type { FlagType, SegmentSpec } from "../core/flags/types.js";

export interface TurnoutProviderOptions {
  /** Turnout's API URL, e.g. http://127.0.0.1:4040. */
  url: string;
  /** A client key (a line of `<dataDir>/flag-keys`); never the admin token. */
  clientKey: string;
  /** Seconds each long poll may wait for a change. Default 30. */
  waitSeconds?: number;
  /** Pause after a failed sync before the next, in ms. Default 1000. */
  retryMs?: number;
  fetch?: typeof fetch;
  /** Told about sync failures (the last definitions stay in use). */
  onError?: (err: unknown) => void;
  /** Told whenever new definitions arrive. */
  onChange?: (etag: string) => void;
}

interface DefinitionsBody {
  etag: string;
  flags: FlagDefinition[];
  segments: Record<string, SegmentSpec>;
}

export class TurnoutProvider implements Provider {
  readonly metadata = { name: "turnout" } as const;
  readonly runsOn = "server" as const;
  readonly #opts: TurnoutProviderOptions;
  readonly #fetch: typeof fetch;
  #flags: FlagSet = new Map();
  #etag: string | null = null;
  #abort = new AbortController();
  #loop: Promise<void> | null = null;

  constructor(opts: TurnoutProviderOptions) {
    this.#opts = opts;
    this.#fetch = opts.fetch ?? fetch;
  }

  /** The ETag of the definitions in use (null before the first sync). */
  get etag(): string | null {
    return this.#etag;
  }

  /** Fetches the definitions once (fails if Turnout cannot be reached), then keeps them synced. */
  async initialize(): Promise<void> {
    await this.#sync(0);
    this.#loop = this.#run();
  }

  async onClose(): Promise<void> {
    this.#abort.abort();
    await this.#loop?.catch(() => undefined);
  }

  async #run(): Promise<void> {
    const wait = this.#opts.waitSeconds ?? 30;
    while (!this.#abort.signal.aborted) {
      try {
        await this.#sync(wait);
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        this.#opts.onError?.(err);
        await new Promise((r) => setTimeout(r, this.#opts.retryMs ?? 1000).unref());
      }
    }
  }

  async #sync(waitSeconds: number): Promise<void> {
    const headers: Record<string, string> = { "x-api-key": this.#opts.clientKey };
    if (this.#etag !== null) headers["if-none-match"] = this.#etag;
    const res = await this.#fetch(
      `${this.#opts.url.replace(/\/$/, "")}/flags/v1/definitions${waitSeconds > 0 ? `?wait=${waitSeconds}` : ""}`,
      { headers, signal: this.#abort.signal },
    );
    if (res.status === 304) {
      await res.body?.cancel();
      return;
    }
    if (res.status !== 200) {
      const text = await res.text();
      throw new Error(`turnout flag sync: HTTP ${res.status}: ${text.slice(0, 200)}`);
    }
    const body = (await res.json()) as DefinitionsBody;
    this.#flags = compileFlags(body.flags, body.segments);
    this.#etag = body.etag;
    this.#opts.onChange?.(body.etag);
  }

  #resolve<T>(key: string, def: T, ctx: EvaluationContext, type: FlagType): ResolutionDetails<T> {
    const r = evaluate(this.#flags, key, ctx as Record<string, unknown>, type);
    if (r.errorCode !== undefined || r.value === undefined) {
      return {
        value: def,
        reason: "ERROR",
        errorCode: (r.errorCode ?? "GENERAL") as ErrorCode,
        ...(r.errorMessage !== undefined ? { errorMessage: r.errorMessage } : {}),
        flagMetadata: r.flagMetadata,
      };
    }
    return {
      value: r.value as T,
      reason: r.reason,
      ...(r.variant !== undefined ? { variant: r.variant } : {}),
      flagMetadata: r.flagMetadata,
    };
  }

  async resolveBooleanEvaluation(key: string, def: boolean, ctx: EvaluationContext) {
    return this.#resolve(key, def, ctx, "boolean");
  }

  async resolveStringEvaluation(key: string, def: string, ctx: EvaluationContext) {
    return this.#resolve(key, def, ctx, "string");
  }

  async resolveNumberEvaluation(key: string, def: number, ctx: EvaluationContext) {
    return this.#resolve(key, def, ctx, "number");
  }

  async resolveObjectEvaluation<T extends JsonValue>(key: string, def: T, ctx: EvaluationContext) {
    return this.#resolve(key, def, ctx, "object");
  }
}
