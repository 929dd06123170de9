// Drives Debian's headless Chromium with playwright-core (tests/browser/package-lock.json,
// installed by scripts/npm-ci.sh; NODE_PATH points at its node_modules) through a list of
// steps, and prints one JSON object: what each snapshot step saw (rendered text, URL,
// screenshot path) and the steps that failed. The Python test asserts on that output.
//
//   node drive.cjs steps.json
//   steps.json: {"chromium": "/usr/bin/chromium", "userDataDir": "...", "outDir": "...",
//                "steps": [{"goto": url} | {"click": text} | {"wait": [text, ...], "timeout": ms}
//                          | {"snapshot": name}]}
//
// Chromium resolves no host but loopback (--host-resolver-rules), so a page's own telemetry
// (Spotlight's UI reports to sentry.io) never leaves the machine.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

async function main() {
  const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const result = { snapshots: {}, failures: [] };
  const context = await chromium.launchPersistentContext(plan.userDataDir, {
    executablePath: plan.chromium,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));
  try {
    for (const [index, step] of plan.steps.entries()) {
      const timeout = step.timeout || 30000;
      try {
        if (step.goto) {
          await page.goto(step.goto, { timeout });
        } else if (step.click) {
          await page.getByText(step.click, { exact: false }).first().click({ timeout });
        } else if (step.wait) {
          for (const text of step.wait) {
            await page.getByText(text, { exact: false }).first().waitFor({ state: 'visible', timeout });
          }
        } else if (step.snapshot) {
          const screenshot = path.join(plan.outDir, `${step.snapshot}.png`);
          await page.screenshot({ path: screenshot, fullPage: true });
          result.snapshots[step.snapshot] = { url: page.url(), text: await page.innerText('body'), screenshot };
        } else {
          throw new Error(`unknown step ${JSON.stringify(step)}`);
        }
      } catch (error) {
        result.failures.push({ index, step, error: String(error && error.message ? error.message : error) });
        if (step.goto || step.click) break; // later steps depend on being on that page
      }
    }
  } finally {
    result.console = consoleLines.slice(-50);
    await context.close();
  }
  process.stdout.write(JSON.stringify(result));
}

main().catch((error) => {
  process.stderr.write(`drive.cjs: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
