// Screenshot of a page from a heading on, such as a report: node docs/screenshot_page.js URL PNG [HEADING]
// (npm install playwright-core; Debian chromium). The README's report picture is reports/variants/index.html after
// `make sweep` and `make report`, served by `python -m http.server -d reports/variants`.
const { chromium } = require('playwright-core');
(async () => {
  const [url, png, heading] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  await page.goto(url, { waitUntil: 'load' });
  if (heading) await page.getByText(heading, { exact: false }).first().scrollIntoViewIfNeeded();
  if (heading) await page.evaluate((h) => [...document.querySelectorAll('h2')].find(e => e.textContent.includes(h)).scrollIntoView(), heading);
  await page.screenshot({ path: png, fullPage: false });
  await browser.close();
  console.log(`ok: ${png}`);
})();
