#!/usr/bin/env node
// Drives the Camera Director in the real ComfyUI frontend (headless Chromium through the harness's
// playwright-core): load a workflow, queue it once so the node shows its scene, drag a keyframe
// with real mouse events, reload the workflow from its serialised JSON, queue it again, and report
// what the editor drew and what the route answered (tests/test_director_browser.py checks it).
//
//   node tests/director_browser.js --url http://127.0.0.1:8192 --workflow wf.json --out DIR
//        [--playwright PATH/playwright-core] [--chromium PATH]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const { chromium } = require(args.playwright || 'playwright-core');

async function main() {
  const report = { console_errors: [], page_errors: [], failed_requests: [], steps: [] };
  const wf = JSON.parse(fs.readFileSync(args.workflow, 'utf8'));
  await fetch(`${args.url}/settings`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ 'Comfy.TutorialCompleted': true, 'Comfy.Workflow.ShowMissingModelsWarning': false }) });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ww-director-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium, headless: true, viewport: { width: 1500, height: 1000 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
      '--disable-dev-shm-usage'],
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    await page.route('**/*', (r) => (/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(r.request().url())
      || !/^https?:/.test(r.request().url()) ? r.continue() : r.abort()));
    page.on('pageerror', (e) => report.page_errors.push(String(e && e.stack || e)));
    let started = false;
    page.on('console', (m) => {
      if (!started || m.type() !== 'error') return;
      report.console_errors.push({ text: m.text(), url: (m.location() || {}).url || '' });
    });
    page.on('response', (r) => { if (r.status() >= 400) report.failed_requests.push(`${r.status()} ${r.url()}`); });
    await page.goto(args.url + '/', { waitUntil: 'domcontentloaded', timeout: 120000 });
    await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph
      && Object.keys(window.LiteGraph.registered_node_types || {}).length > 50, null, { timeout: 120000 });
    await page.waitForTimeout(1500);
    started = true;

    // --- load, then queue once so the node receives its scene
    await page.evaluate(async (wf) => { await window.app.loadGraphData(wf, true, true, 'director.json'); }, wf);
    const director = () => window.app.graph._nodes.find((n) => n.comfyClass === 'WorldWarpCameraDirector');
    const waitIdle = async () => {
      await page.waitForFunction(async () => {
        const q = await (await fetch('/queue')).json();
        return q.queue_running.length === 0 && q.queue_pending.length === 0;
      }, null, { timeout: 300000, polling: 500 });
    };
    await page.evaluate(() => window.app.queuePrompt(0, 1));
    await page.waitForTimeout(500);
    await waitIdle();
    await page.waitForFunction((fn) => {
      const ed = eval(fn)().__wwDirector;
      return ed && ed.scene && ed.path && ed.fit && ed.coverage;
    }, director.toString(), { timeout: 60000, polling: 250 });
    // put the node in view, large, and draw
    await page.evaluate((fn) => {
      const node = eval(fn)();
      const canvas = window.app.canvas;
      canvas.ds.scale = 1;
      canvas.ds.offset = [-node.pos[0] + 110, -node.pos[1] + 90];
      canvas.setDirty(true, true);
    }, director.toString());
    await page.waitForTimeout(800);
    const info = async () => page.evaluate((fn) => {
      const node = eval(fn)();
      const ed = node.__wwDirector;
      const r = ed.canvas.getBoundingClientRect();
      const c = ed.canvas.getContext('2d').getImageData(0, 0, ed.canvas.width, ed.canvas.height).data;
      let drawn = 0;
      for (let i = 0; i < c.length; i += 4) if (Math.max(c[i], c[i + 1], c[i + 2]) > 60) drawn++;
      const handles = ed.handles().map((h) => {
        const s = ed.project(ed.lastCam, h.pos);
        return s && { index: h.index, x: r.left + (s[0] * r.width) / ed.canvas.width,
          y: r.top + (s[1] * r.height) / ed.canvas.height };
      });
      return { rect: { x: r.left, y: r.top, width: r.width, height: r.height }, drawn: drawn / (c.length / 4),
        keyframes: node.widgets.find((w) => w.name === 'keyframes').value, handles, mode: ed.path.mode,
        viewmats: ed.path.viewmats, frames: ed.path.frames, coverage: ed.coverage, scene_points: ed.scene.count,
        selected: ed.selected };
    }, director.toString());
    const before = await info();
    report.before = before;
    await page.screenshot({ path: path.join(args.out, 'director_before.png') });

    // --- drag the last keyframe with the mouse: right and up on the screen
    const h = before.handles.filter((x) => x && x.index >= 0).pop();
    await page.mouse.move(h.x, h.y);
    await page.mouse.down();
    for (let k = 1; k <= 8; k++) await page.mouse.move(h.x + 8 * k, h.y - 5 * k);
    await page.mouse.up();
    report.dragged_handle = h;
    await page.waitForFunction((fn) => {
      const ed = eval(fn)().__wwDirector;
      return ed.path.mode === 'keyframes';
    }, director.toString(), { timeout: 30000 });
    await page.waitForTimeout(1500); // the last path and coverage answers
    const after = await info();
    report.after = after;
    await page.screenshot({ path: path.join(args.out, 'director_after.png') });

    // --- reload the workflow from what the frontend saves, check the edit came back
    const saved = await page.evaluate(() => window.app.graph.serialize());
    fs.writeFileSync(path.join(args.out, 'saved_workflow.json'), JSON.stringify(saved));
    await page.evaluate(async () => { await window.app.loadGraphData({ nodes: [], links: [], version: 0.4 }, true, true, 'empty'); });
    await page.waitForTimeout(300);
    await page.evaluate(async (wf) => { await window.app.loadGraphData(wf, true, true, 'director-reloaded.json'); }, saved);
    await page.waitForFunction((fn) => {
      const ed = eval(fn)()?.__wwDirector;
      return ed && ed.path && ed.path.mode === 'keyframes';
    }, director.toString(), { timeout: 60000, polling: 250 });
    await page.waitForTimeout(1000);
    report.reloaded = await page.evaluate((fn) => {
      const node = eval(fn)();
      return { keyframes: node.widgets.find((w) => w.name === 'keyframes').value, viewmats: node.__wwDirector.path.viewmats };
    }, director.toString());

    // --- queue the reloaded workflow: Save Cameras writes the path
    await page.evaluate(() => window.app.queuePrompt(0, 1));
    await page.waitForTimeout(500);
    await waitIdle();
    report.history = await page.evaluate(async () => {
      const h = await (await fetch('/history?max_items=5')).json();
      return Object.values(h).map((x) => x.status);
    });
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(args.out, 'director_reloaded.png') });
    report.final = await info();
  } catch (e) {
    report.fatal = String(e && e.stack || e);
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  fs.writeFileSync(path.join(args.out, 'report.json'), JSON.stringify(report, null, 1));
  console.log(JSON.stringify({ fatal: report.fatal || null, console_errors: report.console_errors.length }));
}

main();
