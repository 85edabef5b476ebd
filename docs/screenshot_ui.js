// Screenshot of the MLflow run comparison (parallel coordinates over some params -> one metric).
// Usage: npm install playwright-core; node docs/screenshot_ui.js URL docs/mlflow-compare.png [PARAMS] [METRIC]
// (Debian chromium). PARAMS is comma-separated, default n_factors; METRIC defaults to best_val_loss. Runs that lack
// a chosen param (bpmf has no lr or row_l2) are drawn at the top of that axis, so choose params every run has.
const { chromium } = require('playwright-core');
(async () => {
  const url = process.argv[2];  // a compare-runs URL of the MLflow UI that `make ui` serves
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  await page.goto(url);
  await page.waitForSelector('text=Parallel Coordinates Plot', { timeout: 60000 });
  await page.waitForTimeout(2000);
  // Close the assistant side panel if present.
  const close = page.locator('button[aria-label="Close"]').first();
  if (await close.count()) { try { await close.click({ timeout: 2000 }); } catch (e) {} }
  await page.click('text=Clear All');
  await page.waitForTimeout(500);
  const selects = page.locator('.ant-select-selection-search-input, input[role="combobox"]');
  console.log('selects', await selects.count());
  async function pick(idx, name) {
    const box = selects.nth(idx);
    await box.click();
    await box.fill(name);
    await page.waitForTimeout(400);
    await page.keyboard.press('Enter');
    await page.waitForTimeout(400);
    await page.keyboard.press('Escape');
  }
  for (const p of (process.argv[4] || 'n_factors').split(',')) await pick(0, p);
  await pick(1, process.argv[5] || 'best_val_loss');
  await page.waitForTimeout(2000);
  await page.screenshot({ path: process.argv[3], fullPage: false });
  await browser.close();
})();
