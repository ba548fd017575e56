// A small SVG line chart (no library): one series over time, with its latest value.
const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * points: [{t, v}] (t in seconds; v a number or null for "no data"). Returns an <svg>
 * with an accessible title naming the latest value and the maximum.
 */
export function lineChart(points, { label, unit = "", digits = 1 }) {
  const W = 320, H = 90, P = 4, top = 16;
  const vals = points.map((p) => p.v).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...vals);
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t : 1;
  const x = (t) => P + ((t - t0) / Math.max(1, t1 - t0)) * (W - 2 * P);
  const y = (v) => H - P - (v / max) * (H - top - P);
  let d = "";
  let pen = false;
  for (const p of points) {
    if (p.v === null || p.v === undefined) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
    pen = true;
  }
  const last = [...points].reverse().find((p) => p.v !== null && p.v !== undefined);
  const fmt = (v) => (v === undefined ? "–" : `${v.toFixed(digits)}${unit}`);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  svg.append(s("title", {}, `${label}: now ${fmt(last?.v)}, max ${fmt(vals.length ? max : undefined)} over the last hour`));
  svg.append(s("line", { x1: P, x2: W - P, y1: H - P, y2: H - P, class: "axis" }));
  svg.append(s("text", { x: P, y: 11, class: "chart-label" }, `max ${fmt(vals.length ? max : undefined)}`));
  svg.append(s("text", { x: W - P, y: 11, class: "chart-label", "text-anchor": "end" }, `now ${fmt(last?.v)}`));
  if (d) svg.append(s("path", { d, class: "line" }));
  // The latest value as a dot (a lone bucket has no line to draw).
  if (last) svg.append(s("circle", { cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 2.5, class: "dot" }));
  return svg;
}
