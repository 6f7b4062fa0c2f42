/* pytempest director: helpers shared by the pages (no framework, no build step).
   Every value from the server is put in the page with textContent, never as HTML. */
"use strict";

const PT = (() => {
  const csrf = document.querySelector('meta[name="pt-csrf"]').content;
  const SVG_NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  async function request(method, url, body) {
    const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (err) {
      throw new Error("cannot reach the dashboard server (" + err.message + ")");
    }
    let data = null;
    try { data = await resp.json(); } catch (err) { data = null; }
    if (!resp.ok) throw new Error((data && data.error) || ("HTTP " + resp.status));
    return data;
  }

  const num = new Intl.NumberFormat("en-US");
  function fmtInt(v) { return v === null || v === undefined ? "-" : num.format(Math.round(v)); }
  function fmtRate(v) {
    if (v === null || v === undefined) return "-";
    if (v === 0) return "0";
    if (v >= 100) return num.format(Math.round(v));
    return v.toFixed(v >= 10 ? 1 : 2);
  }
  function fmtMs(v) {
    if (v === null || v === undefined) return "-";
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s";
    if (v >= 10) return v.toFixed(0) + " ms";
    if (v > 0 && v < 0.01) return "<0.01 ms";
    return v.toFixed(v >= 1 ? 1 : 2) + " ms";
  }
  function fmtPct(v) { return v === null || v === undefined ? "-" : (v * 100).toFixed(v >= 0.1 ? 0 : 1) + " %"; }
  function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString() : "-"; }
  function fmtDateTime(ms) { return ms ? new Date(ms).toLocaleString() : "-"; }
  function ago(ms, now) {
    if (!ms) return "-";
    const s = Math.max(0, ((now || Date.now()) - ms) / 1000);
    if (s < 120) return s.toFixed(s < 10 ? 1 : 0) + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  const problems = new Map();
  function banner(key, message) {
    if (message) problems.set(key, message); else problems.delete(key);
    const b = document.getElementById("banner");
    if (!b) return;
    b.textContent = [...new Set(problems.values())].join(" · ");
    b.classList.toggle("hidden", problems.size === 0);
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  /* Call load() now and every periodMs after it finished (never two at once); pause while
     the tab is hidden. Returns a function that loads again at once. */
  let loops = 0;
  function every(periodMs, load) {
    const key = "loop" + (loops++);
    let timer = null, busy = false, again = false;
    async function tick() {
      if (busy) { again = true; return; }
      busy = true;
      timer = null;
      try {
        await load();
        banner(key, "");
      } catch (err) {
        banner(key, err.message);
      }
      busy = false;
      if (again) { again = false; tick(); return; }
      if (!document.hidden) timer = setTimeout(tick, periodMs);
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null && !busy) tick();
    });
    tick();
    return () => { if (timer !== null) { clearTimeout(timer); timer = null; } tick(); };
  }

  function statusBadge(node, status, healthy) {
    node.textContent = status + (healthy === false ? " (source unhealthy)" : "");
    node.className = "badge " + status + (healthy === false ? " unhealthy" : "");
  }

  return { el, svg, request, fmtInt, fmtRate, fmtMs, fmtPct, fmtTime, fmtDateTime, ago, banner, setText,
           every, statusBadge };
})();
