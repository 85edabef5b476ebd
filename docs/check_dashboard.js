// Check that `make dashboard` (optuna-dashboard on the sweep's journal) lists every study, and that a study's page
// shows its optimization history and parameter importances.
// Usage: npm install playwright-core; node docs/check_dashboard.js URL docs/optuna-dashboard.png STUDY [STUDY ...]
const { chromium } = require('playwright-core');
(async () => {
  const [url, png, ...studies] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  let failed = [];
  // the study list titles each study "<id>. <name>"
  const title = (study) => page.getByText(new RegExp(`^\\d+\\. ${study.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  try {
    await page.goto(url);
    await title(studies[0]).first().waitFor({ timeout: 60000 });
    await page.waitForTimeout(1000);
    for (const study of studies) {
      if (!(await title(study).count())) failed.push(`study ${study}`);
    }
    await page.screenshot({ path: png.replace(/\.png$/, '-studies.png'), fullPage: false });
    await title(studies[studies.length - 1]).first().click();
    await page.waitForFunction(() => document.body.innerText.includes('Hyperparameter Importance'), null,
                               { timeout: 60000 });
    await page.waitForTimeout(4000);  // the plots draw after the trials load
    const text = await page.locator('body').innerText();
    for (const want of ['History', 'Hyperparameter Importance']) {
      if (!text.includes(want)) failed.push(want);
    }
    if (!(await page.locator('.js-plotly-plot, canvas, svg.main-svg').count())) failed.push('a plot');
  } catch (e) {
    failed.push(String(e).split('\n')[0]);
  }
  await page.screenshot({ path: png, fullPage: true });
  await browser.close();
  if (failed.length) { console.error('missing: ' + failed.join(', ')); process.exit(1); }
  console.log(`ok: ${studies.length} studies listed, history and importance plots shown; screenshots ${png}`);
})();
