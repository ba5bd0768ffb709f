// WorldWarp Camera Director: a 3D path editor inside the node (plain Canvas 2D, no build step,
// nothing copied in).
//
// What it draws comes from the server (nodes/director.py): the path is always the server's answer
// for the node's widget values (POST /worldwarp/director/path), so the frusta on screen are the
// cameras the node will output; this file never interpolates a path itself. It edits keyframes
// (the `keyframes` widget, JSON) and asks again.
//
// Frames: everything is drawn in the START camera's frame, in median depths (OpenCV axes: x right,
// y down, z forward; "up" on screen is -y). The scene is the start image's point cloud, drawn with
// a small z-buffered point splatter written here.
//
// Mouse: drag empty space = orbit, right/middle/shift-drag = pan, wheel = zoom; drag a keyframe
// (yellow dot) = move it parallel to the screen, shift-drag = move it in depth, alt/ctrl-drag =
// turn it (yaw / pitch); Delete removes the selected keyframe. The strip below is the timeline:
// drag to scrub (the inset shows that frame's view), drag a keyframe diamond to retime it; bars are
// the fraction of each frame the geometry covers (red where the model will have to invent).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE = "WorldWarpCameraDirector";
const VIEW_H = 340;
const STRIP_H = 76;
const BAR_H = 30;
const STATE_WIDGETS = ["preset", "strength", "frames", "fov_degrees", "scene_scale", "easing", "keyframes"];
const EASES = ["linear", "ease-in-out", "ease-in", "ease-out"];

// ----------------------------------------------------------------------------- small maths
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const scale3 = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => { const n = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0] / n, a[1] / n, a[2] / n]; };

function quatToMat([w, x, y, z]) { // rows of a 3x3 rotation
  return [
    [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
  ];
}

function matToQuat(R) { // (w, x, y, z), w >= 0; R is orthonormal here (built by quatToMat and axisAngle)
  const s = (v) => Math.sqrt(Math.max(0, v)) / 2;
  const w = s(1 + R[0][0] + R[1][1] + R[2][2]);
  let x = s(1 + R[0][0] - R[1][1] - R[2][2]);
  let y = s(1 - R[0][0] + R[1][1] - R[2][2]);
  let z = s(1 - R[0][0] - R[1][1] + R[2][2]);
  x = Math.sign(R[2][1] - R[1][2] || 1) * x;
  y = Math.sign(R[0][2] - R[2][0] || 1) * y;
  z = Math.sign(R[1][0] - R[0][1] || 1) * z;
  const n = Math.hypot(w, x, y, z);
  return [w / n, x / n, y / n, z / n];
}

const matMul = (A, B) => A.map((r) => [0, 1, 2].map((j) => r[0] * B[0][j] + r[1] * B[1][j] + r[2] * B[2][j]));

function axisAngle(axis, a) {
  const [x, y, z] = norm(axis), c = Math.cos(a), s = Math.sin(a), t = 1 - c;
  return [[c + x * x * t, x * y * t - z * s, x * z * t + y * s],
    [y * x * t + z * s, c + y * y * t, y * z * t - x * s],
    [z * x * t - y * s, z * y * t + x * s, c + z * z * t]];
}

// a server c2w row (16 numbers, row-major) -> {R: rows, t}
const pose = (m) => ({ R: [[m[0], m[1], m[2]], [m[4], m[5], m[6]], [m[8], m[9], m[10]]], t: [m[3], m[7], m[11]] });
const apply = (P, p) => add([dot(P.R[0], p), dot(P.R[1], p), dot(P.R[2], p)], P.t);

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

// ----------------------------------------------------------------------------- the editor
class Director {
  constructor(node) {
    this.node = node;
    this.path = null; // server answer for the current widget values
    this.fit = null; // keyframes of the preset path (shown as handles before the first edit)
    this.scene = null; // {points: Float32Array, colors: Uint8Array, count}
    this.coverage = null;
    this.memory = null; // {remembered, chunk, context}: what world memory could recall, predicted
    this.frame = 0;
    this.selected = -1; // index into the keyframe list; -1: none
    this.status = "";
    this.error = "";
    this.seq = 0;
    this.dirty = true;
    this.playing = false;
    const v = node.properties?.worldwarp_view;
    this.view = v && Number.isFinite(v.dist) ? { ...v } : { yaw: -0.6, pitch: 0.45, dist: 3.2, target: [0, 0, 1] };
    this.build();
  }

  // ------------------------------------------------------------------ DOM
  build() {
    const root = document.createElement("div");
    root.className = "worldwarp-director";
    Object.assign(root.style, { display: "flex", flexDirection: "column", gap: "4px", width: "100%",
      height: "100%", boxSizing: "border-box", font: "11px sans-serif", color: "#ddd", userSelect: "none" });
    const bar = document.createElement("div");
    Object.assign(bar.style, { display: "flex", flexWrap: "wrap", gap: "3px", alignItems: "center" });
    const button = (label, title, fn) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      Object.assign(b.style, { font: "11px sans-serif", padding: "2px 6px", background: "#2b2f36", color: "#e6e6e6",
        border: "1px solid #444b55", borderRadius: "4px", cursor: "pointer" });
      b.addEventListener("click", (e) => { e.stopPropagation(); fn(); });
      b.addEventListener("pointerdown", (e) => e.stopPropagation());
      bar.appendChild(b);
      return b;
    };
    this.playButton = button("▶", "play the path in the inset view", () => this.togglePlay());
    button("+key", "add a keyframe at the scrubbed frame (on the path, so nothing moves until you drag it)",
      () => this.addKey());
    button("−key", "delete the selected keyframe (Delete)", () => this.deleteKey());
    this.easeButton = button("ease", "speed profile of the segment that ends at the selected keyframe",
      () => this.cycleEase());
    this.interpButton = button("spline", "interpolation between keyframes", () => this.toggleInterp());
    button("preset", "drop the keyframes and use the preset string again", () => this.resetToPreset());
    button("fit", "frame the scene and the path", () => this.fitView());
    const open = document.createElement("input");
    open.type = "file";
    open.accept = ".txt,.json";
    open.style.display = "none";
    open.addEventListener("change", () => { if (open.files?.[0]) this.importFile(open.files[0]); open.value = ""; });
    root.appendChild(open);
    button("open", "load a camera file (RealEstate10K .txt, camera JSON, nerfstudio transforms.json) as keyframes; "
      + "or drop one onto the node", () => open.click());
    const fmt = document.createElement("select");
    for (const [v, l] of [["re10k", "RealEstate10K .txt"], ["json", "WorldWarp .json"],
      ["nerfstudio", "transforms.json"]]) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = l;
      fmt.appendChild(o);
    }
    Object.assign(fmt.style, { font: "11px sans-serif", background: "#2b2f36", color: "#e6e6e6",
      border: "1px solid #444b55", borderRadius: "4px" });
    fmt.addEventListener("pointerdown", (e) => e.stopPropagation());
    bar.appendChild(fmt);
    button("save", "download the path's cameras in the chosen format", () => this.exportFile(fmt.value));
    this.jsonButton = button("{}", "show / hide the keyframes JSON", () => this.toggleJson());
    root.appendChild(bar);

    this.canvas = document.createElement("canvas");
    Object.assign(this.canvas.style, { width: "100%", flex: "1 1 auto", minHeight: "160px", borderRadius: "4px",
      cursor: "grab", background: "#15171b", touchAction: "none" });
    this.canvas.tabIndex = 0;
    root.appendChild(this.canvas);
    this.strip = document.createElement("canvas");
    Object.assign(this.strip.style, { width: "100%", height: `${STRIP_H}px`, flex: "0 0 auto", borderRadius: "4px",
      cursor: "ew-resize", touchAction: "none" });
    root.appendChild(this.strip);
    this.root = root;
    this.bindMouse();
    this.bindDrop(root);
    new ResizeObserver(() => this.redraw()).observe(this.canvas);
  }

  toggleJson() {
    const w = widget(this.node, "keyframes");
    if (!w) return;
    w.hidden = !w.hidden;
    this.node.setSize?.([this.node.size[0], this.node.computeSize()[1]]);
    this.node.setDirtyCanvas(true, true);
  }

  // ------------------------------------------------------------------ server
  body(extra = {}) {
    const b = {};
    for (const n of STATE_WIDGETS) b[n] = widget(this.node, n)?.value;
    const s = this.node.properties?.worldwarp_scene;
    if (s) { b.width = s.width; b.height = s.height; if (this.scene && s.scene) b.scene = s.scene; }
    return Object.assign(b, extra);
  }

  async post(route, body) {
    const resp = await api.fetchApi(`/worldwarp/director/${route}`, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" } });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = { error: `HTTP ${resp.status}` }; }
    if (!resp.ok || data?.error) throw new Error(data?.error || `HTTP ${resp.status}`);
    return data;
  }

  // the path for the current widget values; then the preset's keyframes and the coverage
  refresh(delay = 120) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fetchPath(), delay);
  }

  async fetchPath() {
    const seq = ++this.seq;
    try {
      const path = await this.post("path", this.body());
      if (seq !== this.seq) return;
      this.path = path;
      this.error = "";
      this.frame = Math.min(this.frame, path.frames - 1);
      if (!this.viewFitted) { this.fitView(); this.viewFitted = true; }
      this.redraw();
      if (path.mode === "preset") this.fetchFit(seq);
      else this.fit = null;
      clearTimeout(this.covTimer);
      this.covTimer = setTimeout(() => this.fetchCoverage(seq), 250);
    } catch (e) {
      if (seq !== this.seq) return;
      this.error = String(e.message || e);
      this.redraw();
    }
  }

  async fetchFit(seq) {
    try {
      const fit = await this.post("fit", this.body());
      if (seq === this.seq) { this.fit = JSON.parse(fit.keyframes); this.redraw(); }
    } catch (e) { /* the path itself already reported any problem */ }
  }

  async fetchCoverage(seq) {
    if (!this.scene) { this.coverage = null; this.redraw(); return; }
    try {
      const cov = await this.post("coverage", this.body());
      if (seq === this.seq) {
        this.coverage = cov.coverage;
        this.memory = cov.remembered ? { remembered: cov.remembered, chunk: cov.chunk_frames,
          context: cov.context_frames } : null;
        this.redraw();
      }
    } catch (e) {
      if (seq === this.seq) {
        this.coverage = null; this.memory = null; this.status = String(e.message || e); this.redraw();
      }
    }
  }

  async loadScene() {
    const s = this.node.properties?.worldwarp_scene;
    if (!s?.scene) return;
    try {
      const data = await this.post("scene", { scene: s.scene });
      const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const points = new Float32Array(bytes(data.points).buffer);
      this.scene = { points, colors: bytes(data.colors), count: data.count,
        stride: Math.max(1, Math.round(Math.sqrt((data.width * data.height) / Math.max(1, data.count)))) };
      // the scene's extent (5 % .. 95 % of the points on each axis) for framing, and its floor
      const q = (axis, f) => {
        const v = [];
        for (let i = axis; i < points.length; i += 3 * Math.max(1, Math.floor(data.count / 2000))) v.push(points[i]);
        v.sort((a, b) => a - b);
        return v[Math.min(v.length - 1, Math.floor(f * v.length))] ?? 0;
      };
      this.scene.lo = [q(0, 0.05), q(1, 0.05), q(2, 0.05)];
      this.scene.hi = [q(0, 0.95), q(1, 0.95), q(2, 0.95)];
      this.floorY = Math.max(0.2, q(1, 0.97));
      this.status = "";
      this.viewFitted = false;
    } catch (e) {
      this.scene = null;
      this.status = String(e.message || e);
    }
    this.refresh(0);
  }

  // a point's world size per unit of depth: its pixel footprint in the start view (grid step / focal)
  pointRadius() {
    const fx = this.path?.start_K?.[0]?.[0] || 500;
    return (0.75 * (this.scene?.stride ?? 1)) / fx;
  }

  // ------------------------------------------------------------------ keyframes
  keys() { // the editable keyframe path: the widget's, else the preset's fit
    const text = widget(this.node, "keyframes")?.value ?? "";
    if (text.trim()) {
      try { return JSON.parse(text); } catch (e) { return null; }
    }
    return this.fit;
  }

  // writes the keyframes (frame numbers on the current frame count) and asks for the new path
  commit(keys, delay = 60) {
    const w = widget(this.node, "keyframes");
    if (!w || !keys) return;
    w.value = JSON.stringify(keys);
    w.callback?.(w.value);
    this.node.setDirtyCanvas(true, true);
    this.refresh(delay);
  }

  editable() {
    const k = this.keys();
    if (!k) return null;
    const frames = widget(this.node, "frames")?.value ?? k.frames;
    const out = JSON.parse(JSON.stringify(k));
    if (out.frames !== frames && out.frames > 1 && frames > 1) {
      const s = (frames - 1) / (out.frames - 1);
      for (const key of out.keyframes) key.frame *= s;
    }
    out.frames = frames;
    return out;
  }

  handles() { // [{pos, index}] with index -1 for the start camera
    const k = this.keys();
    const out = [{ pos: [0, 0, 0], index: -1 }];
    (k?.keyframes ?? []).forEach((key, i) => out.push({ pos: key.position, index: i, key }));
    return out;
  }

  keyFrameOnPath(key, keys) {
    const F = this.path?.frames ?? keys.frames;
    return keys.frames > 1 ? (key.frame * (F - 1)) / (keys.frames - 1) : 0;
  }

  addKey() {
    const keys = this.editable();
    if (!keys || !this.path) return;
    const f = this.frame;
    if (f <= 0) { this.status = "frame 0 is the start camera; scrub to another frame first"; this.redraw(); return; }
    const existing = keys.keyframes.findIndex((k) => Math.abs(k.frame - f) < 1e-6);
    if (existing >= 0) { this.selected = existing; this.redraw(); return; }
    const P = pose(this.path.c2w[f]);
    const key = { frame: f, position: P.t, rotation: matToQuat(P.R), focal: this.path.focal[f], ease: "linear" };
    keys.keyframes.push(key);
    keys.keyframes.sort((a, b) => a.frame - b.frame);
    this.selected = keys.keyframes.indexOf(key);
    this.commit(keys, 0);
  }

  deleteKey() {
    const keys = this.editable();
    if (!keys || this.selected < 0 || this.selected >= keys.keyframes.length) return;
    keys.keyframes.splice(this.selected, 1);
    this.selected = -1;
    this.commit(keys, 0);
  }

  cycleEase() {
    const keys = this.editable();
    if (!keys || this.selected < 0) return;
    const k = keys.keyframes[this.selected];
    k.ease = EASES[(EASES.indexOf(k.ease ?? "linear") + 1) % EASES.length];
    this.commit(keys, 0);
  }

  toggleInterp() {
    const keys = this.editable();
    if (!keys) return;
    keys.interpolation = keys.interpolation === "linear" ? "spline" : "linear";
    this.commit(keys, 0);
  }

  resetToPreset() {
    this.selected = -1;
    const w = widget(this.node, "keyframes");
    if (w) { w.value = ""; w.callback?.(""); }
    this.refresh(0);
  }

  async importFile(file) {
    try {
      const text = await file.text();
      const fit = await this.post("fit", this.body({ file_text: text, file_name: file.name }));
      const keys = JSON.parse(fit.keyframes);
      const frames = widget(this.node, "frames");
      if (frames && frames.value !== keys.frames) { frames.value = keys.frames; frames.callback?.(keys.frames); }
      this.status = `${file.name}: ${fit.count} keyframes` + (fit.fit_error > 1 ? " (approximate)" : "");
      this.selected = -1;
      this.commit(keys, 0);
    } catch (e) {
      this.error = `${file.name}: ${e.message || e}`;
      this.redraw();
    }
  }

  async exportFile(format) {
    try {
      const out = await this.post("export", this.body({ format }));
      const url = URL.createObjectURL(new Blob([out.text], { type: "text/plain" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = out.name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
      this.status = `saved ${out.name}`;
    } catch (e) {
      this.error = String(e.message || e);
    }
    this.redraw();
  }

  bindDrop(el) {
    el.addEventListener("dragover", (e) => { e.preventDefault(); e.stopPropagation(); });
    el.addEventListener("drop", (e) => {
      const f = e.dataTransfer?.files?.[0];
      if (!f) return;
      e.preventDefault();
      e.stopPropagation();
      this.importFile(f);
    });
  }

  // ------------------------------------------------------------------ the orbit camera
  camera(w, h) {
    const v = this.view;
    const dir = [-Math.sin(v.yaw) * Math.cos(v.pitch), -Math.sin(v.pitch), -Math.cos(v.yaw) * Math.cos(v.pitch)];
    const eye = add(v.target, scale3(dir, v.dist));
    const Z = norm(sub(v.target, eye));
    const X = norm(cross([0, 1, 0], Z)); // right = down x forward (OpenCV)
    const Y = cross(Z, X);
    const f = (0.5 * h) / Math.tan((50 * Math.PI) / 360);
    return { eye, X, Y, Z, f, cx: w / 2, cy: h / 2, w, h };
  }

  project(C, p) {
    const d = sub(p, C.eye);
    const z = dot(d, C.Z);
    if (z < 1e-3) return null;
    return [C.cx + (C.f * dot(d, C.X)) / z, C.cy + (C.f * dot(d, C.Y)) / z, z];
  }

  fitView() {
    const pts = [[0, 0, 0]];
    if (this.path) for (const m of this.path.c2w) pts.push([m[3], m[7], m[11]]);
    if (this.scene) pts.push(this.scene.lo, this.scene.hi);
    else pts.push([0, 0, 1]); // the scene's middle: one median depth ahead
    const lo = [0, 1, 2].map((i) => Math.min(...pts.map((p) => p[i])));
    const hi = [0, 1, 2].map((i) => Math.max(...pts.map((p) => p[i])));
    this.view.target = lo.map((l, i) => (l + hi[i]) / 2);
    this.view.dist = Math.max(1.0, 1.15 * Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]));
    this.saveView();
    this.redraw();
  }

  saveView() {
    this.node.properties = this.node.properties || {};
    this.node.properties.worldwarp_view = { ...this.view, target: [...this.view.target] };
  }

  // ------------------------------------------------------------------ mouse
  canvasPos(e, el) {
    const r = el.getBoundingClientRect();
    return [((e.clientX - r.left) * el.width) / r.width, ((e.clientY - r.top) * el.height) / r.height];
  }

  pick(x, y) { // nearest keyframe handle within 9 px
    if (!this.lastCam) return null;
    let best = null;
    for (const h of this.handles()) {
      const s = this.project(this.lastCam, h.pos);
      if (!s) continue;
      const d = Math.hypot(s[0] - x, s[1] - y);
      if (d < 9 * this.dpr && (!best || d < best.d)) best = { ...h, d, s };
    }
    return best;
  }

  bindMouse() {
    const c = this.canvas;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      e.stopPropagation();
      this.view.dist *= Math.exp(Math.sign(e.deltaY) * 0.12);
      this.saveView();
      this.redraw();
    }, { passive: false });
    c.addEventListener("keydown", (e) => {
      if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); e.stopPropagation(); this.deleteKey(); }
    });
    c.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      e.stopPropagation();
      c.focus();
      c.setPointerCapture(e.pointerId);
      const [x, y] = this.canvasPos(e, c);
      const hit = e.button === 0 ? this.pick(x, y) : null;
      if (hit && hit.index >= 0) {
        this.selected = hit.index;
        const keys = this.editable();
        const F = this.path?.frames ?? 1;
        this.frame = Math.max(0, Math.min(F - 1, Math.round(this.keyFrameOnPath(keys.keyframes[hit.index], keys))));
        this.drag = { kind: e.altKey || e.ctrlKey || e.metaKey ? "turn" : e.shiftKey ? "depth" : "move",
          keys, index: hit.index, x, y, start: [...keys.keyframes[hit.index].position],
          rot: [...keys.keyframes[hit.index].rotation], z: hit.s[2] };
        c.style.cursor = "grabbing";
      } else {
        if (hit && hit.index < 0) this.status = "the start camera is the image's own camera; it stays fixed";
        this.drag = { kind: e.button === 0 && !e.shiftKey ? "orbit" : "pan", x, y, view: { ...this.view,
          target: [...this.view.target] } };
      }
      this.redraw();
    });
    c.addEventListener("pointermove", (e) => {
      const [x, y] = this.canvasPos(e, c);
      const d = this.drag;
      if (!d) {
        const hit = this.pick(x, y);
        c.style.cursor = hit && hit.index >= 0 ? "move" : "grab";
        return;
      }
      e.preventDefault();
      e.stopPropagation();
      const dx = x - d.x, dy = y - d.y, C = this.lastCam;
      if (d.kind === "orbit") {
        this.view.yaw = d.view.yaw + dx * 0.008;
        this.view.pitch = Math.max(-1.45, Math.min(1.45, d.view.pitch + dy * 0.008));
      } else if (d.kind === "pan") {
        const k = d.view.dist / C.f;
        this.view.target = add(d.view.target, add(scale3(C.X, -dx * k), scale3(C.Y, -dy * k)));
      } else {
        const key = d.keys.keyframes[d.index];
        if (d.kind === "move") {
          const k = d.z / C.f;
          key.position = add(d.start, add(scale3(C.X, dx * k), scale3(C.Y, dy * k)));
        } else if (d.kind === "depth") {
          key.position = add(d.start, scale3(C.Z, -dy * (d.z / C.f)));
        } else { // turn: yaw about the scene's vertical, pitch about the camera's own x axis
          const R = quatToMat(d.rot);
          key.rotation = matToQuat(matMul(matMul(axisAngle([0, 1, 0], dx * 0.01), R), axisAngle([1, 0, 0], -dy * 0.01)));
        }
        this.commit(d.keys, 40);
      }
      if (d.kind === "orbit" || d.kind === "pan") this.saveView();
      this.redraw();
    });
    const end = (e) => {
      if (!this.drag) return;
      if (this.drag.keys) this.commit(this.drag.keys, 0);
      this.drag = null;
      c.style.cursor = "grab";
      try { c.releasePointerCapture(e.pointerId); } catch (err) { /* already released */ }
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);

    const s = this.strip;
    const frameAt = (e) => {
      const [x] = this.canvasPos(e, s);
      const F = this.path?.frames ?? 1, pad = 8 * this.dpr;
      return Math.max(0, Math.min(F - 1, Math.round(((x - pad) / Math.max(1, s.width - 2 * pad)) * (F - 1))));
    };
    s.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      e.stopPropagation();
      s.setPointerCapture(e.pointerId);
      const f = frameAt(e);
      const keys = this.editable();
      const [, y] = this.canvasPos(e, s);
      let grab = -1;
      if (keys && y < 16 * this.dpr) { // the keyframe row: retime a keyframe
        keys.keyframes.forEach((k, i) => { if (Math.abs(this.keyFrameOnPath(k, keys) - f) <= 1) grab = i; });
      }
      this.stripDrag = grab >= 0 ? { keys, index: grab } : { scrub: true };
      if (grab >= 0) this.selected = grab;
      this.frame = f;
      this.redraw();
    });
    s.addEventListener("pointermove", (e) => {
      const d = this.stripDrag;
      if (!d) return;
      e.stopPropagation();
      const f = frameAt(e);
      if (d.keys) {
        const ks = d.keys.keyframes, i = d.index;
        const lo = i > 0 ? Math.floor(ks[i - 1].frame) + 1 : 1;
        const hi = i < ks.length - 1 ? Math.ceil(ks[i + 1].frame) - 1 : d.keys.frames - 1;
        const nf = Math.max(lo, Math.min(hi, f));
        if (nf !== ks[i].frame) { ks[i].frame = nf; this.commit(d.keys, 40); }
      }
      this.frame = f;
      this.redraw();
    });
    const endStrip = () => { if (this.stripDrag?.keys) this.commit(this.stripDrag.keys, 0); this.stripDrag = null; };
    s.addEventListener("pointerup", endStrip);
    s.addEventListener("pointercancel", endStrip);
  }

  togglePlay() {
    this.playing = !this.playing;
    this.playButton.textContent = this.playing ? "❚❚" : "▶";
    const step = () => {
      if (!this.playing || !this.path) return;
      this.frame = (this.frame + 1) % this.path.frames;
      this.redraw();
      setTimeout(step, 1000 / 12);
    };
    step();
  }

  // ------------------------------------------------------------------ drawing
  redraw() {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  fitCanvas(el, cssH) {
    this.dpr = Math.min(2, window.devicePixelRatio || 1);
    const w = Math.max(50, Math.round((el.clientWidth || 400) * this.dpr));
    const h = Math.round((el.clientHeight || cssH) * this.dpr);
    if (el.width !== w || el.height !== h) { el.width = w; el.height = h; }
    return [w, h];
  }

  // z-buffered square splats of the scene's points into an ImageData, seen by camera C
  splat(img, C, radius = 1) {
    const { points, colors, count } = this.scene;
    const W = img.width, H = img.height, data = img.data;
    const zbuf = new Float32Array(W * H).fill(Infinity);
    const { eye, X, Y, Z, f, cx, cy } = C;
    const rw = this.pointRadius();
    for (let i = 0; i < count; i++) {
      const px = points[3 * i] - eye[0], py = points[3 * i + 1] - eye[1], pz = points[3 * i + 2] - eye[2];
      const z = px * Z[0] + py * Z[1] + pz * Z[2];
      if (z < 1e-3) continue;
      const u = cx + (f * (px * X[0] + py * X[1] + pz * X[2])) / z;
      const v = cy + (f * (px * Y[0] + py * Y[1] + pz * Y[2])) / z;
      const r = Math.min(4, Math.max(radius * 0.5, (f * rw * points[3 * i + 2]) / z));
      const x0 = Math.max(0, Math.floor(u - r)), x1 = Math.min(W - 1, Math.floor(u + r));
      const y0 = Math.max(0, Math.floor(v - r)), y1 = Math.min(H - 1, Math.floor(v + r));
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const k = y * W + x;
          if (z >= zbuf[k]) continue;
          zbuf[k] = z;
          data[4 * k] = colors[3 * i];
          data[4 * k + 1] = colors[3 * i + 1];
          data[4 * k + 2] = colors[3 * i + 2];
          data[4 * k + 3] = 255;
        }
      }
    }
  }

  draw() {
    const [W, H] = this.fitCanvas(this.canvas, VIEW_H);
    const ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    const C = this.camera(W, H);
    this.lastCam = C;
    const bg = ctx.createLinearGradient(0, 0, 0, H);
    bg.addColorStop(0, "#1d2128");
    bg.addColorStop(1, "#101215");
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, W, H);
    this.drawGrid(ctx, C);
    if (this.scene) {
      const img = ctx.getImageData(0, 0, W, H);
      this.splat(img, C);
      ctx.putImageData(img, 0, 0);
    }
    const p = this.path;
    const dpr = this.dpr;
    if (p) {
      const F = p.frames;
      // the path: a line through the centres, frusta along it, the scrubbed frame highlighted
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = "rgba(255,255,255,0.85)";
      ctx.beginPath();
      let moved = false;
      for (const m of p.c2w) {
        const s = this.project(C, [m[3], m[7], m[11]]);
        if (!s) { moved = false; continue; }
        if (moved) ctx.lineTo(s[0], s[1]); else ctx.moveTo(s[0], s[1]);
        moved = true;
      }
      ctx.stroke();
      const every = Math.max(1, Math.ceil(F / 24));
      for (let i = 0; i < F; i += every) this.drawFrustum(ctx, C, i, `hsla(${205 - (170 * i) / Math.max(1, F - 1)},85%,62%,0.85)`, 1);
      this.drawFrustum(ctx, C, F - 1, "hsla(35,85%,62%,0.95)", 1.2);
      this.drawFrustum(ctx, C, 0, "#ffffff", 1.6);
      this.drawFrustum(ctx, C, this.frame, "#4dff88", 2.2);
    }
    // keyframe handles
    const keys = this.keys();
    for (const h of this.handles()) {
      const s = this.project(C, h.pos);
      if (!s) continue;
      ctx.beginPath();
      if (h.index < 0) {
        ctx.rect(s[0] - 5 * dpr, s[1] - 5 * dpr, 10 * dpr, 10 * dpr);
        ctx.fillStyle = "#ffffff";
      } else {
        ctx.arc(s[0], s[1], (h.index === this.selected ? 7 : 5.5) * dpr, 0, 2 * Math.PI);
        ctx.fillStyle = h.index === this.selected ? "#ffffff" : this.path?.mode === "preset" ? "#d9b84a" : "#ffd23f";
      }
      ctx.fill();
      ctx.lineWidth = 1.5 * dpr;
      ctx.strokeStyle = "#111";
      ctx.stroke();
    }
    this.drawInset(ctx, W, H);
    // text
    ctx.font = `${11 * dpr}px sans-serif`;
    ctx.fillStyle = "#cfd6df";
    const mode = p ? (p.mode === "preset" ? "preset path (drag a keyframe to edit)" : `${keys?.keyframes?.length ?? 0} keyframes, ${keys?.interpolation ?? "spline"}`) : "…";
    ctx.fillText(`${mode}${this.scene ? "" : " · no scene: connect geometry and run the node"}`, 8 * dpr, 16 * dpr);
    if (this.error || this.status) {
      ctx.fillStyle = this.error ? "#ff7a7a" : "#9fc3ff";
      ctx.fillText(this.error || this.status, 8 * dpr, H - 8 * dpr);
    }
    const sel = keys?.keyframes?.[this.selected];
    this.easeButton.textContent = sel ? `ease: ${sel.ease ?? "linear"}` : "ease";
    this.interpButton.textContent = keys?.interpolation ?? "spline";
    this.drawStrip();
  }

  drawGrid(ctx, C) {
    // a floor grid one median depth below the start camera's eye line (y = +0.6), 4 x 4 depths
    const y = this.floorY ?? 0.6;
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(120,135,160,0.18)";
    for (let i = -8; i <= 8; i++) {
      for (const [a, b] of [[[i * 0.25, y, -1], [i * 0.25, y, 3]], [[-2, y, i * 0.25 + 1], [2, y, i * 0.25 + 1]]]) {
        const s = this.project(C, a), t = this.project(C, b);
        if (!s || !t) continue;
        ctx.beginPath();
        ctx.moveTo(s[0], s[1]);
        ctx.lineTo(t[0], t[1]);
        ctx.stroke();
      }
    }
  }

  frustumCorners(i, depth) {
    const p = this.path, K = p.start_K, f = p.focal[i];
    const P = pose(p.c2w[i]);
    const corner = (u, v) => apply(P, [((u - K[0][2]) / (K[0][0] * f)) * depth, ((v - K[1][2]) / (K[1][1] * f)) * depth, depth]);
    return { c: P.t, q: [corner(0, 0), corner(p.width, 0), corner(p.width, p.height), corner(0, p.height)],
      up: apply(P, [0, ((-0.15 * p.height - K[1][2]) / (K[1][1] * f)) * depth, depth]) };
  }

  drawFrustum(ctx, C, i, color, width) {
    const fr = this.frustumCorners(i, 0.035 * this.view.dist);
    const s = [fr.c, ...fr.q, fr.up].map((p) => this.project(C, p));
    if (s.some((v) => !v)) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = width * this.dpr;
    ctx.beginPath();
    for (let k = 1; k <= 4; k++) { ctx.moveTo(s[0][0], s[0][1]); ctx.lineTo(s[k][0], s[k][1]); }
    ctx.moveTo(s[1][0], s[1][1]);
    for (const k of [2, 3, 4, 1]) ctx.lineTo(s[k][0], s[k][1]);
    ctx.moveTo(s[1][0], s[1][1]);
    ctx.lineTo(s[5][0], s[5][1]);
    ctx.lineTo(s[2][0], s[2][1]);
    ctx.stroke();
  }

  // the view from the scrubbed frame: the scene seen by that camera (holes stay dark)
  drawInset(ctx, W, H) {
    const p = this.path;
    if (!p) return;
    const iw = Math.round(W * 0.34), ih = Math.round((iw * p.height) / p.width);
    const x0 = W - iw - 8 * this.dpr, y0 = H - ih - 8 * this.dpr;
    ctx.fillStyle = "#000";
    ctx.fillRect(x0, y0, iw, ih);
    if (this.scene) {
      const P = pose(p.c2w[this.frame]), K = p.start_K, f = p.focal[this.frame], s = iw / p.width;
      const col = (j) => [P.R[0][j], P.R[1][j], P.R[2][j]];
      const C = { eye: P.t, X: col(0), Y: col(1), Z: col(2), f: K[0][0] * f * s, cx: K[0][2] * s, cy: K[1][2] * s };
      const img = ctx.createImageData(iw, ih);
      this.splat(img, C, 1);
      ctx.putImageData(img, x0, y0);
    }
    ctx.strokeStyle = "#4dff88";
    ctx.lineWidth = 1.5 * this.dpr;
    ctx.strokeRect(x0, y0, iw, ih);
    ctx.font = `${10 * this.dpr}px sans-serif`;
    ctx.fillStyle = "#4dff88";
    let cov = this.coverage ? ` · covered ${(100 * this.coverage[this.frame]).toFixed(0)}%` : "";
    const m = this.memory;
    if (this.coverage && m?.remembered?.length === this.coverage.length && m.remembered[this.frame] >= 0.005) {
      cov += ` · memory +${(100 * m.remembered[this.frame]).toFixed(0)}% (planned)`;
    }
    ctx.fillText(`frame ${this.frame}${cov}`, x0 + 4 * this.dpr, y0 - 4 * this.dpr);
  }

  drawStrip() {
    const [W, H] = this.fitCanvas(this.strip, STRIP_H);
    const ctx = this.strip.getContext("2d");
    const dpr = this.dpr, pad = 8 * dpr;
    ctx.fillStyle = "#15171b";
    ctx.fillRect(0, 0, W, H);
    const p = this.path;
    if (!p) return;
    const F = p.frames;
    const xOf = (f) => pad + (F > 1 ? (f / (F - 1)) * (W - 2 * pad) : 0);
    const top = 18 * dpr, bh = BAR_H * dpr;
    ctx.fillStyle = "#22262d";
    ctx.fillRect(pad, top, W - 2 * pad, bh);
    if (this.coverage && this.coverage.length === F) {
      const bw = Math.max(1, (W - 2 * pad) / F);
      this.coverage.forEach((c, i) => {
        ctx.fillStyle = `hsl(${Math.round(120 * Math.max(0, Math.min(1, (c - 0.4) / 0.6)))},70%,48%)`;
        ctx.fillRect(xOf(i) - bw / 2, top + bh * (1 - c), bw, bh * c);
      });
      // the predicted world-memory recall (pixels the online cache would lack): a cyan line with a
      // faint fill over the geometry's bars, and the chunk boundaries it depends on as faint ticks
      const m = this.memory;
      if (m?.remembered?.length === F) {
        ctx.fillStyle = "#3a414c";
        for (let f = m.chunk; f < F; f += m.chunk - m.context) ctx.fillRect(xOf(f) - 0.5 * dpr, top, dpr, bh);
        ctx.fillStyle = "rgba(51,214,255,0.28)";
        m.remembered.forEach((r, i) => {
          if (r > 1e-3) ctx.fillRect(xOf(i) - bw / 2, top + bh * (1 - r), bw, bh * r);
        });
        ctx.strokeStyle = "#33d6ff";
        ctx.lineWidth = 1.5 * dpr;
        ctx.beginPath();
        m.remembered.forEach((r, i) => {
          const x = xOf(i), y = top + bh * (1 - r) + (r > 0 ? 0 : -0.75 * dpr);
          if (i === 0) ctx.moveTo(x - bw / 2, y); else ctx.lineTo(x - bw / 2, y);
          ctx.lineTo(x + bw / 2, y);
        });
        ctx.stroke();
      }
    }
    // keyframe diamonds on the top row
    const keys = this.keys();
    const diamond = (x, color) => {
      ctx.beginPath();
      ctx.moveTo(x, 3 * dpr);
      ctx.lineTo(x + 5 * dpr, 9 * dpr);
      ctx.lineTo(x, 15 * dpr);
      ctx.lineTo(x - 5 * dpr, 9 * dpr);
      ctx.closePath();
      ctx.fillStyle = color;
      ctx.fill();
    };
    diamond(xOf(0), "#ffffff");
    (keys?.keyframes ?? []).forEach((k, i) => diamond(xOf(this.keyFrameOnPath(k, keys)),
      i === this.selected ? "#ffffff" : "#ffd23f"));
    // playhead
    ctx.strokeStyle = "#4dff88";
    ctx.lineWidth = 2 * dpr;
    ctx.beginPath();
    ctx.moveTo(xOf(this.frame), top - 2 * dpr);
    ctx.lineTo(xOf(this.frame), top + bh + 2 * dpr);
    ctx.stroke();
    ctx.font = `${10 * dpr}px sans-serif`;
    ctx.fillStyle = "#aab3bf";
    const avg = (a) => a.reduce((x, y) => x + y, 0) / a.length;
    const mean = this.coverage ? avg(this.coverage) : null;
    const low = this.coverage ? this.coverage.filter((c) => c < 0.5).length : 0;
    const text = this.coverage
      ? `start geometry covers: mean ${(100 * mean).toFixed(0)}%, ${low} of ${F} frames under half`
      : this.scene ? "coverage…" : "coverage: run the node with geometry connected";
    ctx.fillText(`frame ${this.frame} / ${F - 1}   ·   ${text}`, pad, H - 16 * dpr);
    const m = this.memory;
    if (this.coverage && m?.remembered?.length === F) {
      // a prediction on a proxy surface, for the pipeline's chunking (memory: world)
      const extra = avg(m.remembered);
      ctx.fillStyle = "#33d6ff";
      ctx.fillText(extra >= 0.005
        ? `world memory could recall +${(100 * extra).toFixed(0)}% over the online cache (planned: proxy surface, `
          + `${m.chunk}-frame chunks)`
        : `world memory: nothing to recall on this path (planned: ${m.chunk}-frame chunks)`, pad, H - 4 * dpr);
    }
  }
}

// ----------------------------------------------------------------------------- node hooks
app.registerExtension({
  name: "worldwarp.director",
  async nodeCreated(node) {
    if (node.comfyClass !== NODE) return;
    const ed = new Director(node);
    node.__wwDirector = ed;
    const w = node.addDOMWidget("director_view", "worldwarp_director", ed.root, {
      serialize: false, hideOnZoom: false,
      getMinHeight: () => VIEW_H + STRIP_H + 64,
    });
    w.serialize = false;
    const kw = widget(node, "keyframes");
    if (kw) kw.hidden = true;
    node.setSize([Math.max(node.size[0], 560), node.computeSize()[1]]);
    for (const name of STATE_WIDGETS) {
      const ww = widget(node, name);
      if (!ww) continue;
      const cb = ww.callback;
      ww.callback = function () {
        const r = cb?.apply(this, arguments);
        ed.refresh();
        return r;
      };
    }
    const onExecuted = node.onExecuted;
    node.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      const info = output?.worldwarp_director?.[0];
      if (!info) return;
      this.properties = this.properties || {};
      const before = this.properties.worldwarp_scene?.scene;
      this.properties.worldwarp_scene = info;
      if (info.scene && (info.scene !== before || !ed.scene)) ed.loadScene();
      else ed.refresh(0);
    };
    const onConfigure = node.onConfigure;
    node.onConfigure = function () {
      const r = onConfigure?.apply(this, arguments);
      const v = this.properties?.worldwarp_view;
      if (v && Number.isFinite(v.dist)) { ed.view = { ...v, target: [...v.target] }; ed.viewFitted = true; }
      const k = widget(this, "keyframes");
      if (k) k.hidden = true;
      if (this.size[0] < 480) this.setSize([560, this.computeSize()[1]]);
      if (this.properties?.worldwarp_scene?.scene) ed.loadScene();
      else ed.refresh(0);
      return r;
    };
    node.onDragOver = (e) => !!e?.dataTransfer?.types?.includes?.("Files");
    node.onDragDrop = (e) => {
      const f = e?.dataTransfer?.files?.[0];
      if (!f || !/\.(txt|json)$/i.test(f.name)) return false;
      ed.importFile(f);
      return true;
    };
    ed.refresh(0);
  },
});
