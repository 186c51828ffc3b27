// Paints a figure recorded by convcourse/scene.py (figure_scene) on an HTML canvas: the live view of the
// course's widgets. The kernel sends what matplotlib would paint (paths, images at their data's resolution,
// text lines), in canvas pixels with y downwards; this paints it, sharp at the screen's pixel density.

function bytesOf(value) {
  if (typeof value === "string") {
    const raw = atob(value);
    const bytes = new Uint8ClampedArray(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }
  if (value instanceof ArrayBuffer) return new Uint8ClampedArray(value);
  if (ArrayBuffer.isView(value)) return new Uint8ClampedArray(value.buffer, value.byteOffset, value.byteLength);
  throw new Error("convcourse scene: image data of an unknown kind");
}

function pathOf(data) {
  const path = new Path2D();
  const d = data.d;
  const c = data.c;
  const n = d.length / 2;
  if (!c) {
    if (n) path.moveTo(d[0], d[1]);
    for (let i = 1; i < n; i++) path.lineTo(d[2 * i], d[2 * i + 1]);
    return path;
  }
  for (let i = 0; i < n; ) {
    const k = 2 * i;
    switch (c[i]) {
      case 1: path.moveTo(d[k], d[k + 1]); i += 1; break;
      case 2: path.lineTo(d[k], d[k + 1]); i += 1; break;
      case 3: path.quadraticCurveTo(d[k], d[k + 1], d[k + 2], d[k + 3]); i += 2; break;
      case 4: path.bezierCurveTo(d[k], d[k + 1], d[k + 2], d[k + 3], d[k + 4], d[k + 5]); i += 3; break;
      case 79: path.closePath(); i += 1; break;
      default: i += 1;
    }
  }
  return path;
}

function hatchPattern(ctx, hatch, cache) {
  const key = JSON.stringify(hatch);
  if (!cache.has(key)) {
    const size = Math.max(1, Math.round(hatch.size));
    const tile = document.createElement("canvas");
    tile.width = size;
    tile.height = size;
    const t = tile.getContext("2d");
    t.strokeStyle = hatch.s;
    t.lineWidth = hatch.lw;
    t.stroke(pathOf(hatch));
    cache.set(key, ctx.createPattern(tile, "repeat"));
  }
  return cache.get(key);
}

function clip(ctx, op) {
  if (op.clip) {
    ctx.beginPath();
    ctx.rect(op.clip[0], op.clip[1], op.clip[2], op.clip[3]);
    ctx.clip();
  }
  if (op.cp) ctx.clip(pathOf(op.cp));
}

// As matplotlib paints a path: fill, then hatch, then the outline.
function paint(ctx, path, style, hatches) {
  if (style.f) {
    ctx.fillStyle = style.f;
    ctx.fill(path);
  }
  if (style.h) {
    ctx.fillStyle = hatchPattern(ctx, style.h, hatches);
    ctx.fill(path);
  }
  if (style.s) {
    ctx.strokeStyle = style.s;
    ctx.lineWidth = style.lw;
    ctx.setLineDash(style.dash || []);
    ctx.lineDashOffset = style.doff || 0;
    ctx.lineCap = style.cap || "butt";
    ctx.lineJoin = style.join || "miter";
    ctx.stroke(path);
  }
}

function drawOp(ctx, op, hatches) {
  ctx.save();
  if (op.o === "p") {
    clip(ctx, op);
    paint(ctx, pathOf(op), op, hatches);
  } else if (op.o === "pc") {
    // A collection: distinct paths once, then per item an offset, a path index, a fill and a stroke (each
    // column either one value for all items or one per item).
    clip(ctx, op);
    const paths = op.paths.map(pathOf);
    const pick = (column, k) => (Array.isArray(column) ? column[k] : column);
    const style = { h: op.h, dash: op.dash, doff: op.doff, cap: op.cap, join: op.join };
    for (let k = 0; k < op.xy.length / 2; k++) {
      style.f = pick(op.f, k);
      style.s = pick(op.s, k);
      style.lw = pick(op.lw, k);
      ctx.translate(op.xy[2 * k], op.xy[2 * k + 1]);
      paint(ctx, paths[op.i ? op.i[k] : 0], style, hatches);
      ctx.translate(-op.xy[2 * k], -op.xy[2 * k + 1]);
    }
  } else if (op.o === "i") {
    clip(ctx, op);
    const source = document.createElement("canvas");
    source.width = op.w;
    source.height = op.h;
    source.getContext("2d").putImageData(new ImageData(bytesOf(op.rgba), op.w, op.h), 0, 0);
    ctx.transform(op.m[0], op.m[1], op.m[2], op.m[3], op.m[4], op.m[5]);
    ctx.imageSmoothingEnabled = op.smooth;
    ctx.globalAlpha = op.alpha === undefined ? 1 : op.alpha;
    ctx.drawImage(source, 0, 0);
  } else if (op.o === "t") {
    clip(ctx, op);
    ctx.translate(op.x, op.y);
    if (op.a) ctx.rotate((-op.a * Math.PI) / 180);
    ctx.font = op.font;
    ctx.fillStyle = op.f;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    // Never wider than matplotlib's line (the browser's font may be a little wider than DejaVu Sans).
    ctx.fillText(op.s, 0, 0, op.w > 0 ? op.w + 0.5 : undefined);
  }
  ctx.restore();
}

// The scene the kernel sent (scene_wire in convcourse/scene.py): its JSON as UTF-8 bytes, images apart.
export function sceneOf(wire) {
  const scene = JSON.parse(new TextDecoder().decode(wire.json));
  for (const op of scene.ops) {
    if (op.o === "i" && op.rgba && op.rgba.image !== undefined) op.rgba = wire.images[op.rgba.image];
  }
  return scene;
}

// Paints `scene` on `canvas`; returns the milliseconds it took.
export function paintScene(canvas, scene) {
  const start = performance.now();
  const [vx, vy, vw, vh] = scene.view;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(vw * ratio);
  canvas.height = Math.round(vh * ratio);
  canvas.style.width = `${vw}px`;
  canvas.setAttribute("aria-label", scene.alt || "figure");
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, -vx * ratio, -vy * ratio);
  if (scene.bg) {
    ctx.fillStyle = scene.bg;
    ctx.fillRect(vx, vy, vw, vh);
  }
  const hatches = new Map();
  for (const op of scene.ops) drawOp(ctx, op, hatches);
  const end = performance.now();
  // For tests and benchmarks: how long this paint took, when it ended, and how many paints this canvas had.
  canvas.dataset.paintMs = (end - start).toFixed(2);
  canvas.dataset.paintedAt = end.toFixed(2);
  canvas.dataset.paints = String(Number(canvas.dataset.paints || 0) + 1);
  return end - start;
}

function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "convcourse-scene";
  canvas.setAttribute("role", "img");
  canvas.style.maxWidth = "100%";
  canvas.style.height = "auto";
  canvas.style.display = "block";
  el.appendChild(canvas);
  const draw = () => {
    const wire = model.get("scene");
    if (!wire || !wire.json) {
      canvas.style.display = "none";
      return;
    }
    canvas.style.display = "block";
    paintScene(canvas, sceneOf(wire));
  };
  model.on("change:scene", draw);
  draw();
  return () => model.off("change:scene", draw);
}

export default { render };
