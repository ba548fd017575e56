// Line charts for the dashboard, in SVG, without a library (about 5 KB against ~50 KB
// for uPlot, the smallest well-kept one; the UI stays within its 100 KB budget and
// needs no build step). What an operator needs to read them: a time axis in local time,
// a value axis with units and gridlines, the value and time under the pointer (or the
// keyboard: focus a chart, then ← →), gaps where there is no data, the time before the
// server started shaded as "not running", and an optional second series drawn dashed
// (the dashboard's own polling, which the main series leaves out).
const NS = "http://www.w3.org/2000/svg";
const W = 360, H = 150, L = 44, R = 8, T = 10, B = 22;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A "nice" top for the value axis: 1, 2 or 5 times a power of ten, at least `max`. */
function niceTop(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= max * 1.05) || 10 * p;
}

const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const hhmmss = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/**
 * points: [{t, v, aux?, up?}] oldest first, `t` the start of a bucket of `step` seconds
 * (Unix seconds), `v` a number or null (no data), `aux` the second series, `up` false
 * before the server started. Returns an <svg> with a title naming the latest value and
 * the maximum; `hover` (a bucket start) draws the cursor there.
 */
export function lineChart(points, { label, unit = "", digits = 1, step = 30, aux, hover, onHover }) {
  const known = points.filter((p) => p.up !== false);
  const vals = known.flatMap((p) => [p.v, aux ? p.aux : null]).filter((v) => typeof v === "number");
  const top = niceTop(Math.max(0, ...vals));
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t + step : 1;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  const fmt = (v) => (typeof v === "number" ? `${v.toFixed(digits)}${unit}` : "no data");
  const last = [...known].reverse().find((p) => typeof p.v === "number");
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", tabindex: 0 });
  svg.append(s("title", {}, `${label}: now ${fmt(last?.v)}, max ${vals.length ? fmt(Math.max(...known.map((p) => p.v).filter((v) => typeof v === "number"), 0)) : "no data"} over the last hour`));

  // Not running: the buckets before the server started.
  const down = points.filter((p) => p.up === false);
  if (down.length) {
    const x1 = x(down[down.length - 1].t + step);
    svg.append(s("rect", { x: L, y: T, width: Math.max(0, x1 - L), height: H - T - B, class: "down" }));
    if (x1 - L > 60) svg.append(s("text", { x: (L + x1) / 2, y: T + 14, class: "chart-label", "text-anchor": "middle" }, "not running"));
  }
  // Value axis: gridlines at 0, ½ and the top, labelled with the unit.
  for (const f of [0, 0.5, 1]) {
    const v = top * f;
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: f === 0 ? "axis" : "grid" }));
    svg.append(s("text", { x: L - 4, y: y(v) + 3, class: "chart-label", "text-anchor": "end" }, `${+v.toFixed(v < 10 ? 2 : 0)}${unit.trim() ? ` ${unit.trim()}` : ""}`));
  }
  // Time axis: a tick and a label every 15 minutes, in local time.
  for (let t = Math.ceil(t0 / 900) * 900; t <= t1; t += 900) {
    svg.append(s("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid" }));
    svg.append(s("text", { x: x(t), y: H - 6, class: "chart-label", "text-anchor": "middle" }, hhmm(t)));
  }
  // The series: a gap wherever a bucket has no value.
  const path = (key) => {
    let d = "";
    let pen = false;
    for (const p of points) {
      const v = p[key];
      if (p.up === false || typeof v !== "number") { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(p.t + step / 2).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    return d;
  };
  if (aux) {
    const d = path("aux");
    if (d) svg.append(s("path", { d, class: "line aux" }));
  }
  const d = path("v");
  if (d) svg.append(s("path", { d, class: "line" }));
  if (last) svg.append(s("circle", { cx: x(last.t + step / 2).toFixed(1), cy: y(last.v).toFixed(1), r: 2.5, class: "dot" }));

  // The cursor: the bucket under the pointer (or chosen with the arrow keys).
  const cursor = s("g", { class: "cursor" });
  svg.append(cursor);
  const show = (i) => {
    cursor.replaceChildren();
    const p = points[i];
    if (!p) return;
    const cx = x(p.t + step / 2);
    cursor.append(s("line", { x1: cx, x2: cx, y1: T, y2: H - B, class: "cursor-line" }));
    if (typeof p.v === "number" && p.up !== false) cursor.append(s("circle", { cx, cy: y(p.v), r: 3, class: "dot" }));
    const text = p.up === false ? `${hhmm(p.t)}: not running`
      : `${hhmmss(p.t)}–${hhmmss(p.t + step)}: ${fmt(p.v)}${aux && typeof p.aux === "number" ? `; ${aux} ${fmt(p.aux)}` : ""}`;
    const right = cx > W / 2;
    const tip = s("text", { x: right ? cx - 4 : cx + 4, y: T + 10, class: "chart-tip", "text-anchor": right ? "end" : "start" }, text);
    cursor.append(tip);
    svg.setAttribute("aria-label", `${label}, ${text}`);
    if (onHover) onHover(p.t);
  };
  const index = (t) => points.findIndex((p) => p.t === t);
  let at = hover !== undefined ? index(hover) : -1;
  if (at >= 0) show(at);
  svg.addEventListener("pointermove", (e) => {
    const box = svg.getBoundingClientRect();
    const vx = ((e.clientX - box.left) / box.width) * W;
    const t = t0 + ((vx - L) / (W - L - R)) * (t1 - t0);
    at = Math.max(0, Math.min(points.length - 1, Math.floor((t - t0) / step)));
    show(at);
  });
  svg.addEventListener("pointerleave", () => { at = -1; cursor.replaceChildren(); if (onHover) onHover(undefined); });
  svg.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    e.preventDefault();
    at = at < 0 ? points.length - 1 : Math.max(0, Math.min(points.length - 1, at + (e.key === "ArrowLeft" ? -1 : 1)));
    show(at);
  });
  svg.addEventListener("blur", () => { if (at >= 0) { at = -1; cursor.replaceChildren(); if (onHover) onHover(undefined); } });
  return svg;
}
