// Check that the link `make ui` prints opens the runs table ("Model training"), with every study parent listed.
// Usage: npm install playwright-core; node docs/check_ui.js URL docs/mlflow-runs.png STUDY [STUDY ...]
// (Debian chromium). Exits 1, saying what is missing, if the page shows the GenAI overview or lacks a study.
const { chromium } = require('playwright-core');
(async () => {
  const [url, png, ...studies] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  let failed = [];
  try {
    await page.goto(url);
    await page.waitForSelector('text=Run Name', { timeout: 60000 });  // the runs table's header
    await page.waitForTimeout(2500);
    const close = page.locator('button[aria-label="Close"]').first();  // an assistant panel, if any
    if (await close.count()) { try { await close.click({ timeout: 2000 }); } catch (e) {} }
    const text = await page.locator('body').innerText();
    if (!/Model training|Training runs|Runs/.test(text)) failed.push('no runs view');
    if (/Token usage/.test(text)) failed.push('the GenAI overview');
    for (const study of studies) {
      if (!(await page.getByText(study, { exact: true }).count())) failed.push(`study ${study}`);
    }
  } catch (e) {
    failed.push(String(e).split('\n')[0]);
  }
  await page.screenshot({ path: png, fullPage: false });
  await browser.close();
  if (failed.length) { console.error('missing: ' + failed.join(', ')); process.exit(1); }
  console.log(`ok: the runs table lists ${studies.length} studies; screenshot ${png}`);
})();
