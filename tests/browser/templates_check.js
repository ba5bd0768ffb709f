#!/usr/bin/env node
// Opens ComfyUI's Templates browser in the real frontend (headless Chromium), picks the pack's entry
// under Extensions and prints, per template card, its title (and whether the card cuts it off) and
// the thumbnail it shows (its size as loaded and as displayed, or the frontend's stand-in picture
// when ours is missing); takes a screenshot; then clicks one card and reports how many nodes the
// workflow it loaded has.
// Usage: NODE_PATH=<harness>/browser/node_modules node templates_check.js URL CHROMIUM SCREENSHOT PACK [OPEN]
'use strict';
const { chromium } = require('playwright-core');

async function main() {
  const [url, exe, screenshot, pack, open] = process.argv.slice(2);
  // no first-run tutorial over the canvas
  await fetch(`${url}/settings`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ 'Comfy.TutorialCompleted': true }) });
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.route('**/*', (r) => (/^(https?:\/\/(127\.0\.0\.1|localhost)|data:|blob:)/.test(r.request().url())
    ? r.continue() : r.abort()));
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e && e.stack || e)));
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph && window.app.extensionManager,
    null, { timeout: 120000 });
  await page.waitForTimeout(1000);
  // the sidebar's Templates button, else the command it runs
  const button = page.locator('.side-bar-button', { hasText: 'Templates' }).first();
  if (await button.count()) await button.click();
  else await page.evaluate(() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates'));
  await page.getByRole('dialog').getByText(pack, { exact: true }).first().click({ timeout: 60000 });
  const cards = '[data-testid^="template-workflow-"]';
  await page.waitForFunction((sel) => {
    const imgs = Array.from(document.querySelectorAll(`${sel} img`));
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, cards, { timeout: 60000 });
  await page.waitForTimeout(500);
  const report = await page.evaluate((sel) => Array.from(document.querySelectorAll(sel)).map((card) => {
    const img = card.querySelector('img');
    const h3 = card.querySelector('h3');
    const r = img.getBoundingClientRect();
    return {
      name: card.dataset.testid.replace('template-workflow-', ''),
      title: h3 ? h3.textContent.trim() : null,
      title_cut: h3 ? h3.scrollWidth > h3.clientWidth : null,
      stand_in: /default-template/.test(img.src),
      loaded: [img.naturalWidth, img.naturalHeight],
      shown: [Math.round(r.width), Math.round(r.height)],
    };
  }), cards);
  await page.screenshot({ path: screenshot });
  const out = { cards: report, page_errors: pageErrors };
  if (open) {
    await page.locator(`[data-testid="template-workflow-${open}"]`).click();
    await page.waitForFunction(() => !document.querySelector('[data-testid="template-workflows-content"]'), null,
      { timeout: 60000 });
    await page.waitForTimeout(1000);
    out.opened = { name: open, nodes: await page.evaluate(() => (window.app.graph._nodes || window.app.graph.nodes).length) };
  }
  await browser.close();
  console.log(JSON.stringify(out));
}
main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(2); });
