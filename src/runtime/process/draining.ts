/**
 * The graceful part of stopping an instance that served, before any signal: wait until no
 * router sends it new requests (the stop gate), then give the requests in flight `drainMs`.
 * Either wait ends early when the process exits on its own, and the gate's when Turnout shuts
 * down (its routers stop first).
 */
import type { Logger } from "../../logger.js";
import type { StopGate } from "../runtime.js";
import type { Managed, Proc } from "./instance.js";

/** Resolves when the instance may be sent SIGTERM; `gate` is null when it need not wait on one. */
export async function releaseAndDrain(
  m: Managed,
  proc: Proc,
  gate: StopGate | null,
  drainMs: number,
  closing: Promise<void>,
  logger: Logger,
): Promise<void> {
  if (gate) {
    // The instance goes out of the next route table as "stopping"; the gate resolves
    // once every live router has that table in force. Only then can no new request
    // reach it, and only then does the drain (for requests in flight) start.
    const released = gate({ service: m.service, id: m.id, version: m.version, url: m.url });
    await Promise.race([released.catch(() => undefined), proc.exitedPromise, closing]);
    if (!proc.exited && drainMs > 0) m.message = `draining for ${drainMs / 1000}s`;
    logger.info({ instance: m.id }, "instance released by every router");
  }
  if (drainMs > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => {
        timer = setTimeout(r, drainMs);
      }),
      proc.exitedPromise,
    ]);
    clearTimeout(timer);
    m.message = "stopping (SIGTERM sent)";
  }
}
