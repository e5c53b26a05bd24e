/**
 * Debian's chromium driven by playwright-core, for the dashboard's browser test and the
 * screenshot script. Headless, no network of its own (no updates, no sync, no QUIC), and a
 * fresh profile in a temp dir each launch. No browser is ever downloaded: `.ci/chromium.sh`
 * installs the Debian package.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = process.env.TURNOUT_CHROMIUM ?? "/usr/bin/chromium";

/** Why the browser test cannot run here, or null when it can. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `no chromium at ${CHROMIUM} (run .ci/chromium.sh)`;
}

export interface Launched {
  browser: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(
  opts: { width?: number; height?: number } = {},
): Promise<Launched> {
  const profile = mkdtempSync(join(tmpdir(), "turnout-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
    viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 },
  });
  return {
    browser: context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export type { Browser };
