#!/usr/bin/env node
// In the real frontend (headless Chromium): places a node, chooses each profile on its `profile`
// widget the way the combo menu does (value set, then the widget's callback), and prints the
// widgets' values after each choice; then edits one widget by hand and chooses nothing, to show the
// edit stays.
// Usage: NODE_PATH=<harness>/browser/node_modules node profile_check.js URL CHROMIUM NODE_TYPE PROFILE...
'use strict';
const { chromium } = require('playwright-core');

async function main() {
  const [url, exe, type, ...profiles] = process.argv.slice(2);
  await fetch(`${url}/settings`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ 'Comfy.TutorialCompleted': true }) });
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.route('**/*', (r) => (/^(https?:\/\/(127\.0\.0\.1|localhost)|data:|blob:)/.test(r.request().url())
    ? r.continue() : r.abort()));
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e && e.stack || e)));
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph, null, { timeout: 120000 });
  await page.waitForTimeout(1000);
  const steps = [];
  await page.evaluate((t) => {
    const node = window.LiteGraph.createNode(t);
    window.app.graph.add(node);
    window._wwNode = node;
  }, type);
  const values = () => page.evaluate(() => Object.fromEntries(window._wwNode.widgets.map((w) => [w.name, w.value])));
  steps.push({ chose: null, widgets: await values() });
  for (const p of profiles) {
    await page.evaluate(async (v) => {
      const w = window._wwNode.widgets.find((x) => x.name === 'profile');
      w.value = v;
      await w.callback?.(v);
    }, p);
    await page.waitForTimeout(300);
    steps.push({ chose: p, widgets: await values() });
  }
  await page.evaluate(() => { window._wwNode.widgets.find((x) => x.name === 'chunk_frames').value = 17; });
  steps.push({ edited: 'chunk_frames', widgets: await values() });
  await browser.close();
  console.log(JSON.stringify({ steps, page_errors: pageErrors }));
}

main().catch((e) => { console.error(e); process.exit(1); });
