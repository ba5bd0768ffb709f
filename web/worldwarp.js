// WorldWarp frontend extension: live previews drawn on the nodes (plain JS, no build step).
//  * Camera Trajectory: top (x-z) and side (z-y) views of the camera path and its frusta, recomputed
//    by the pack's own Python (POST /worldwarp/trajectory_preview) whenever a widget changes.
//  * Preview Noise Schedule: the noise level of warped tokens and of
//    holes over the denoising steps for the current strength τ and step count (paper Fig. 9).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PREVIEW_H = 170;

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

// Flow-matching sigmas as diffusers' FlowMatchEulerDiscreteScheduler builds them (shift 3, Wan 480p).
function flowSigmas(steps, shift = 3.0) {
  const sMin = (shift * 0.001) / (1 + (shift - 1) * 0.001);
  const out = [];
  for (let i = 0; i < steps; i++) {
    const t = steps === 1 ? 1 : 1 - (i * (1 - sMin)) / (steps - 1);
    out.push((shift * t) / (1 + (shift - 1) * t));
  }
  out.push(0);
  return out;
}

function drawSchedule(node, ctx) {
  const steps = Math.max(1, widget(node, "steps")?.value ?? 50);
  const tau = widget(node, "strength")?.value ?? 0.8;
  const sig = flowSigmas(steps);
  const start = steps - Math.floor(steps * tau);
  const sStart = sig[start];
  const x0 = 10, y0 = previewTop(node), w = node.size[0] - 20, h = PREVIEW_H - 40;
  ctx.save();
  ctx.fillStyle = "#1a1a1a";
  ctx.fillRect(x0, y0, w, h);
  const px = (k) => x0 + (k / steps) * w;
  const py = (s) => y0 + (1 - s) * h;
  const line = (f, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (let k = 0; k <= steps; k++) {
      const s = f(k);
      k === 0 ? ctx.moveTo(px(k), py(s)) : ctx.lineTo(px(k), py(s));
    }
    ctx.stroke();
  };
  line((k) => sig[k], "#fde725"); // holes: from pure noise
  line((k) => Math.min(sStart, sig[k]), "#21918c"); // warped tokens: from σ(τ)
  line(() => 0, "#440154"); // context: fixed
  ctx.fillStyle = "#ccc";
  ctx.font = "11px sans-serif";
  ctx.fillText(`σ over ${steps} steps — holes (yellow), warped from σ=${sStart.toFixed(3)} (teal), context 0`, x0, y0 - 6);
  ctx.restore();
}

function drawPath(node, ctx) {
  const data = node._wwPath;
  const y0 = previewTop(node), h = PREVIEW_H - 40, w = (node.size[0] - 30) / 2;
  ctx.save();
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#ccc";
  if (!data || data.error) {
    ctx.fillText(data?.error ? `path: ${data.error}` : "path preview…", 10, y0 + 12);
    ctx.restore();
    return;
  }
  const views = [
    { name: "top (x→, z↑)", a: 0, b: 2, flip: true, x: 10 },
    { name: "side (z→, up↑)", a: 2, b: 1, flip: true, x: 20 + w },
  ];
  for (const v of views) {
    ctx.fillStyle = "#1a1a1a";
    ctx.fillRect(v.x, y0, w, h);
    const pts = data.centers.concat(data.centers.map((c, i) => c.map((x, j) => x + data.forward[i][j] * data.scale * 0.3)));
    let lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
    for (const p of pts) {
      lo = [Math.min(lo[0], p[v.a]), Math.min(lo[1], p[v.b])];
      hi = [Math.max(hi[0], p[v.a]), Math.max(hi[1], p[v.b])];
    }
    const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], 1e-6) * 1.2;
    const cx = (lo[0] + hi[0]) / 2, cy = (lo[1] + hi[1]) / 2;
    const sx = (p) => v.x + w / 2 + ((p[v.a] - cx) / span) * Math.min(w, h);
    const sy = (p) => y0 + h / 2 + (v.flip ? -1 : 1) * ((p[v.b] - cy) / span) * Math.min(w, h);
    const n = data.centers.length;
    data.centers.forEach((c, i) => {
      const f = data.forward[i];
      const tip = c.map((x, j) => x + f[j] * data.scale * 0.3);
      ctx.strokeStyle = `hsl(${200 - (160 * i) / Math.max(1, n - 1)}, 80%, 60%)`;
      ctx.beginPath();
      ctx.moveTo(sx(c), sy(c));
      ctx.lineTo(sx(tip), sy(tip));
      ctx.stroke();
    });
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    data.centers.forEach((c, i) => (i ? ctx.lineTo(sx(c), sy(c)) : ctx.moveTo(sx(c), sy(c))));
    ctx.stroke();
    ctx.fillStyle = "#ccc";
    ctx.fillText(v.name, v.x + 4, y0 + 12);
  }
  ctx.fillText(`${data.frames ?? data.centers.length} cameras`, 10, y0 - 6);
  ctx.restore();
}

async function refreshPath(node) {
  const body = {};
  for (const name of ["preset", "strength", "frames", "fov_degrees", "scene_scale", "easing"]) {
    body[name] = widget(node, name)?.value;
  }
  try {
    const resp = await api.fetchApi("/worldwarp/trajectory_preview", { method: "POST", body: JSON.stringify(body) });
    node._wwPath = await resp.json();
  } catch (e) {
    node._wwPath = { error: String(e) };
  }
  node.setDirtyCanvas(true, true);
}

// The preview sits below the widgets; grow the node if a saved workflow made it shorter.
function previewTop(node) {
  const base = node.computeSize ? node.computeSize()[1] : node.size[1] - PREVIEW_H;
  if (node.size[1] < base + PREVIEW_H) node.size[1] = base + PREVIEW_H;
  return base + 20;
}

function addPreview(node, draw, onChange) {
  node.size[1] += PREVIEW_H;
  const prevDraw = node.onDrawForeground;
  node.onDrawForeground = function (ctx) {
    prevDraw?.apply(this, arguments);
    if (!this.flags?.collapsed) draw(this, ctx);
  };
  for (const w of node.widgets ?? []) {
    const cb = w.callback;
    w.callback = function () {
      const r = cb?.apply(this, arguments);
      onChange?.(node);
      node.setDirtyCanvas(true, true);
      return r;
    };
  }
  onChange?.(node);
}

app.registerExtension({
  name: "worldwarp.previews",
  async nodeCreated(node) {
    const type = node.comfyClass;
    if (type === "WorldWarpCameraTrajectory") {
      let timer = null;
      addPreview(node, drawPath, (n) => {
        clearTimeout(timer);
        timer = setTimeout(() => refreshPath(n), 250);
      });
    } else if (type === "WorldWarpPreviewSchedule") {
      addPreview(node, drawSchedule, null);
    }
  },
});
