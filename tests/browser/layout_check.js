#!/usr/bin/env node
// Loads UI-format workflows in the real ComfyUI frontend (headless Chromium) and prints, per
// workflow, the node rectangles the frontend laid out and every pair that overlaps -- as loaded
// and with image/video output nodes grown to `grow` pixels tall (what a run's previews do), and the
// groups as the frontend holds them: title, rectangle and the nodes it counts as inside (its own
// recomputeInsideNodes: a node whose centre lies in the group).
// Usage: NODE_PATH=<harness>/browser/node_modules node layout_check.js URL GROW CHROMIUM wf1.json ...
'use strict';
const fs = require('fs');
const { chromium } = require('playwright-core');

const GROWS = new Set(['PreviewImage', 'SaveImage', 'SaveVideo', 'LoadImage', 'WorldWarpPreviewSchedule']);

async function main() {
  const [url, grow, exe, ...files] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.route('**/*', (r) => (/^(https?:\/\/(127\.0\.0\.1|localhost)|data:|blob:)/.test(r.request().url())
    ? r.continue() : r.abort()));
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph, null, { timeout: 120000 });
  const out = {};
  for (const f of files) {
    const wf = JSON.parse(fs.readFileSync(f, 'utf8'));
    out[f] = await page.evaluate(async ({ wf, grow, kinds }) => {
      await window.app.loadGraphData(wf, true, true, 'layout');
      await new Promise((r) => setTimeout(r, 1000));
      const nodes = window.app.graph._nodes || window.app.graph.nodes;
      const rects = nodes.map((n) => {
        const b = n.getBounding ? Array.from(n.getBounding()) : [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30];
        return { id: n.id, type: n.type, rect: b };
      });
      const overlaps = (rs) => {
        const o = [];
        for (let i = 0; i < rs.length; i++) for (let j = i + 1; j < rs.length; j++) {
          const [a, b] = [rs[i].rect, rs[j].rect];
          if (a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3])
            o.push(`${rs[i].id}:${rs[i].type} x ${rs[j].id}:${rs[j].type}`);
        }
        return o;
      };
      const grown = rects.map((r) => (kinds.includes(r.type)
        ? { ...r, rect: [r.rect[0], r.rect[1], r.rect[2], Math.max(r.rect[3], grow)] } : r));
      const groups = (window.app.graph._groups || window.app.graph.groups || []).map((g) => {
        if (g.recomputeInsideNodes) g.recomputeInsideNodes();
        return { title: g.title, rect: Array.from(g._bounding || g.bounding), nodes: (g._nodes || []).map((n) => n.id) };
      });
      return { nodes: rects, overlaps: overlaps(rects), overlaps_after_run: overlaps(grown), groups,
               group_overlaps: overlaps(groups.map((g) => ({ id: g.title, type: 'group', rect: g.rect }))) };
    }, { wf, grow: Number(grow), kinds: [...GROWS] });
  }
  await browser.close();
  console.log(JSON.stringify(out));
}
main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(2); });
