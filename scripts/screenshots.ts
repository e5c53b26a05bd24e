/**
 * Screenshots of every dashboard screen into docs/screenshots/, from a populated Turnout
 * (scripts/dashboard-fixture.ts: a canary paused by a person after its analysis, a shadow,
 * an A/B test, flags), in Debian's chromium. `npm run screenshots` (builds the page first).
 */
import { mkdirSync } from "node:fs";
import { launchChromium } from "../test/browser.js";
import { settle, startFixture } from "./dashboard-fixture.js";

const OUT = new URL("../docs/screenshots/", import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

const f = await startFixture();
const b = await launchChromium({ width: 1360, height: 900 });
try {
  await settle(f);
  const page = await b.browser.newPage();
  const t = f.turnout;
  await page.goto(`${t.url}/`);
  await page.screenshot({ path: `${OUT}signin.png` });
  await page.getByLabel("Token").fill(t.token);
  await page.getByLabel(/Your name/).fill("alice");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('[data-service="checkout"]').waitFor();
  await page.waitForTimeout(3000); // two pushes: the observed share has a window
  await page.screenshot({ path: `${OUT}services.png`, fullPage: true });
  await page.goto(`${t.url}/#/services/checkout`);
  await page.getByText("Candidate weight: set and observed").waitFor();
  await page.waitForTimeout(2500);
  await page.screenshot({ path: `${OUT}service.png`, fullPage: true });
  await page.goto(`${t.url}/#/experiments/rec-ranking`);
  await page.getByText("Sample ratio check").waitFor();
  await page.screenshot({ path: `${OUT}experiment.png`, fullPage: true });
  await page.goto(`${t.url}/#/services/fraud-model/shadow`);
  await page.getByText("Paired latency").waitFor();
  await page.waitForTimeout(6000); // a few points of agreement over time
  await page.screenshot({ path: `${OUT}shadow.png`, fullPage: true });
  await page.goto(`${t.url}/#/flags`);
  await page.locator('[data-flag="new-checkout"]').waitFor();
  await page.screenshot({ path: `${OUT}flags.png`, fullPage: true });
  await page.goto(`${t.url}/#/flags/ranking-model`);
  await page.getByText("Kill switch").first().waitFor();
  await page.screenshot({ path: `${OUT}flag.png`, fullPage: true });
  console.log(`screenshots in ${OUT}`);
} finally {
  await b.close();
  await f.stop();
}
