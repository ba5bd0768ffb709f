// WorldWarp frontend extension: live previews drawn on the nodes (plain JS, no build step).
//  * Camera Trajectory: top (x-z) and side (z-y) views of the camera path and its frusta, recomputed
//    by the pack's own Python (POST /worldwarp/trajectory_preview) whenever a widget changes.
//  * Preview Noise Schedule: the noise level of context, warped tokens and holes over the denoising
//    steps for the current strength τ, step count and schedule variant (paper Fig. 9), from
//    POST /worldwarp/schedule_preview.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const PREVIEW_H = 170;

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

// σ over the steps of context, warped tokens and holes, from the pack's own Python
// (POST /worldwarp/schedule_preview, the same core functions as the node): follows steps, τ and the
// schedule variant ("full" starts every generated token at pure noise).
const GROUP_COLOURS = { context: "#78aaeb", warped: "#5ac878", holes: "#eb5f50" };

// Asks the server for a preview of the node's widget values `names`; the answer (or the error) is
// kept on the node as `node[key]` for its draw function.
async function refreshPreview(node, route, names, key) {
  const body = {};
  for (const name of names) body[name] = widget(node, name)?.value;
  try {
    const resp = await api.fetchApi(route, { method: "POST", body: JSON.stringify(body) });
    node[key] = await resp.json();
  } catch (e) {
    node[key] = { error: String(e) };
  }
  node.setDirtyCanvas(true, true);
}

function refreshSchedule(node) {
  return refreshPreview(node, "/worldwarp/schedule_preview", ["steps", "strength", "schedule"], "_wwSchedule");
}

function drawSchedule(node, ctx) {
  const data = node._wwSchedule;
  const y0 = previewTop(node), x0 = 34, w = node.size[0] - x0 - 10, h = PREVIEW_H - 52;
  ctx.save();
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#ccc";
  if (!data || data.error) {
    ctx.fillText(data?.error ? `schedule: ${data.error}` : "schedule preview…", 10, y0 + 12);
    ctx.restore();
    return;
  }
  const steps = data.steps;
  ctx.fillStyle = "#1a1a1a";
  ctx.fillRect(x0, y0, w, h);
  const px = (k) => x0 + (k / steps) * w;
  const py = (s) => y0 + (1 - s) * h;
  // axes: σ 0 / 0.5 / 1, steps 0 / half / all
  ctx.fillStyle = "#ccc";
  ctx.textAlign = "right";
  for (const v of [0, 0.5, 1]) ctx.fillText(String(v), x0 - 4, py(v) + 4);
  ctx.textAlign = "center";
  for (const k of [0, Math.floor(steps / 2), steps]) ctx.fillText(String(k), px(k), y0 + h + 12);
  ctx.fillText("step", x0 + w / 2, y0 + h + 24);
  ctx.textAlign = "left";
  ctx.fillText("σ", 10, py(0.75) + 4);
  for (const name of ["holes", "warped", "context"]) {
    const curve = data[name];
    ctx.strokeStyle = GROUP_COLOURS[name];
    ctx.lineWidth = 2;
    ctx.beginPath();
    curve.forEach((s, k) => (k === 0 ? ctx.moveTo(px(k), py(s)) : ctx.lineTo(px(k), py(s))));
    ctx.stroke();
  }
  // legend above the plot
  let x = x0;
  const start = data.schedule === "full" ? "from 1 (full)" : `from ${data.sigma_start.toFixed(3)}`;
  for (const [name, text] of [["context", "context 0"], ["warped", `warped ${start}`], ["holes", "holes from 1"]]) {
    ctx.fillStyle = GROUP_COLOURS[name];
    ctx.fillRect(x, y0 - 14, 9, 9);
    ctx.fillStyle = "#ccc";
    ctx.fillText(text, x + 12, y0 - 6);
    x += ctx.measureText(text).width + 24;
  }
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

function refreshPath(node) {
  return refreshPreview(node, "/worldwarp/trajectory_preview",
                        ["preset", "strength", "frames", "fov_degrees", "scene_scale", "easing"], "_wwPath");
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

// Save nodes: after a run, the line the node returned (which files, which folder) is shown on it.
const SAVED_H = 44;

function showSaved(node) {
  node.size[1] += SAVED_H;
  const prevDraw = node.onDrawForeground;
  node.onDrawForeground = function (ctx) {
    prevDraw?.apply(this, arguments);
    if (this.flags?.collapsed || !this._wwSaved) return;
    const base = this.computeSize ? this.computeSize()[1] : this.size[1] - SAVED_H;
    if (this.size[1] < base + SAVED_H) this.size[1] = base + SAVED_H;
    ctx.save();
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#9c9";
    // wrap the line to the node's width
    const words = this._wwSaved.split(" ");
    const lines = [""];
    for (const word of words) {
      const next = lines[lines.length - 1] ? `${lines[lines.length - 1]} ${word}` : word;
      if (ctx.measureText(next).width > this.size[0] - 20 && lines[lines.length - 1]) lines.push(word);
      else lines[lines.length - 1] = next;
    }
    lines.slice(0, 3).forEach((line, i) => ctx.fillText(line, 10, base + 6 + 13 * i));
    ctx.restore();
  };
  const onExecuted = node.onExecuted;
  node.onExecuted = function (output) {
    onExecuted?.apply(this, arguments);
    const text = output?.text;
    this._wwSaved = Array.isArray(text) ? text.join(" ") : text ? String(text) : null;
    this.setDirtyCanvas(true, true);
  };
}

// Profiles (Chunk Loop, Loop Start): choosing one sets the widgets it defines to its values
// (GET /worldwarp/profiles, from the pack's Python); they stay editable afterwards. Loading a saved
// workflow keeps its values (only a change made in the editor applies a profile).
let profileTable = null;

async function profileValues() {
  if (!profileTable) {
    const resp = await api.fetchApi("/worldwarp/profiles");
    profileTable = await resp.json();
  }
  return profileTable;
}

function followProfile(node) {
  const w = widget(node, "profile");
  if (!w) return;
  const cb = w.callback;
  w.callback = async function (value) {
    const r = cb?.apply(this, arguments);
    try {
      const values = (await profileValues())[node.comfyClass]?.[value ?? w.value] ?? {};
      for (const [name, v] of Object.entries(values)) {
        const target = widget(node, name);
        if (target) target.value = v;
      }
    } catch (e) {
      console.warn("WorldWarp: could not read the profiles", e);
    }
    node.setDirtyCanvas(true, true);
    return r;
  };
}

app.registerExtension({
  name: "worldwarp.previews",
  async nodeCreated(node) {
    const type = node.comfyClass;
    if (type === "WorldWarpChunkLoop" || type === "WorldWarpLoopStart") followProfile(node);
    if (type === "WorldWarpSaveCameras" || type === "WorldWarpSaveSplat") showSaved(node);
    if (type === "WorldWarpCameraTrajectory") {
      let timer = null;
      addPreview(node, drawPath, (n) => {
        clearTimeout(timer);
        timer = setTimeout(() => refreshPath(n), 250);
      });
    } else if (type === "WorldWarpPreviewSchedule") {
      let timer = null;
      addPreview(node, drawSchedule, (n) => {
        clearTimeout(timer);
        timer = setTimeout(() => refreshSchedule(n), 150);
      });
    }
  },
});
