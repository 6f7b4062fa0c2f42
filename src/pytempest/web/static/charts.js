/* A tiny hand-written SVG line chart (no library): time on x, values on y, null = gap. */
"use strict";

const PTChart = (() => {
  const { svg } = PT;
  const M = { left: 50, right: 12, top: 24, bottom: 22 };

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function clock(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /* series: [{name, color, points: [[ms, value|null], ...]}]; opts: {xmin, xmax, fmt} */
  function lineChart(node, series, opts) {
    const W = Math.max(320, Math.round(node.getBoundingClientRect().width || 600));
    const H = 210;
    node.setAttribute("viewBox", "0 0 " + W + " " + H);
    const fmt = opts.fmt || ((v) => String(v));
    const xmin = opts.xmin, xmax = Math.max(opts.xmax, opts.xmin + 1000);
    let top = 0;
    for (const s of series) for (const [, v] of s.points) if (v !== null && v > top) top = v;
    const ymax = niceCeil(top * 1.08);
    const x = (ms) => M.left + (W - M.left - M.right) * (ms - xmin) / (xmax - xmin);
    const y = (v) => H - M.bottom - (H - M.top - M.bottom) * v / ymax;
    const parts = [];
    for (let i = 0; i <= 4; i++) {
      const v = ymax * i / 4;
      parts.push(svg("line", { class: i ? "grid-line" : "axis", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
      parts.push(svg("text", { x: M.left - 6, y: y(v) + 3.5, "text-anchor": "end", text: fmt(v) }));
    }
    for (let i = 0; i <= 4; i++) {
      const ms = xmin + (xmax - xmin) * i / 4;
      parts.push(svg("text", { x: x(ms), y: H - 6, "text-anchor": i === 0 ? "start" : (i === 4 ? "end" : "middle"),
                               text: clock(ms) }));
    }
    let lx = M.left;
    for (const s of series) {
      let d = "";
      let pen = false;
      for (const [ms, v] of s.points) {
        if (v === null || v === undefined || ms < xmin) { pen = false; continue; }
        d += (pen ? "L" : "M") + x(ms).toFixed(1) + "," + y(v).toFixed(1);
        pen = true;
      }
      const g = svg("g", { class: "series-" + s.key });
      if (d) g.append(svg("path", { class: "series", d, stroke: s.color }));
      parts.push(g);
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      parts.push(svg("rect", { x: lx, y: 6, width: 10, height: 10, rx: 2, fill: s.color }));
      const label = svg("text", { x: lx + 14, y: 15, text: s.name + (last === null || last === undefined ? "" : " " + fmt(last)) });
      parts.push(label);
      lx += 30 + (s.name.length + 6) * 6.2;
    }
    node.replaceChildren(...parts);
  }

  return { lineChart };
})();
