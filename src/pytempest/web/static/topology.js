/* One topology: cards, graph, charts, tasks, instances, workers, failures, dead letter. */
"use strict";

(() => {
  const { el, svg, request, fmtInt, fmtRate, fmtMs, fmtPct, fmtDateTime, ago, setText, every,
          statusBadge } = PT;
  const name = decodeURIComponent(location.pathname.replace(/^\/topology\//, ""));
  const api = "/api/topologies/" + encodeURIComponent(name);
  const WINDOW_MS = 5 * 60 * 1000;
  document.title = name + " - pytempest director";
  setText("name", name);

  function nodeState(n) {
    if ((n.error_rate || 0) >= 0.1) return "bad";
    if ((n.error_rate || 0) > 0) return "warn";
    if ((n.rate || 0) > 0) return "ok";
    return "idle";
  }
  const FILL = { ok: ["#e6f4ea", "#1e8e3e"], warn: ["#fef3e0", "#b06000"], bad: ["#fce8e6", "#c5221f"],
                 idle: ["#f1f3f4", "#80868b"] };

  function renderGraph(graph) {
    const node = document.getElementById("graph");
    node.setAttribute("viewBox", "0 0 " + graph.width + " " + graph.height);
    node.setAttribute("width", graph.width);
    node.setAttribute("height", graph.height);
    const defs = svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa3b5" })));
    const parts = [defs];
    for (const e of graph.edges) {
      parts.push(svg("path", { class: "edge", d: e.path, "data-from": e.from, "data-to": e.to,
                               "marker-end": "url(#arrow)" }));
      const label = e.rate ? fmtRate(e.rate) + "/s" : "";
      parts.push(svg("text", { class: "edge-label", x: e.label_x, y: e.label_y, "text-anchor": "middle",
                               "data-from": e.from, "data-to": e.to, text: label }));
    }
    for (const n of graph.nodes) {
      const state = nodeState(n);
      const [fill, stroke] = FILL[state];
      let stat = n.rate ? fmtRate(n.rate) + "/s" : "idle";
      if (n.p99_ms !== null && n.p99_ms !== undefined) stat += " · p99 " + fmtMs(n.p99_ms);
      if (n.errors) stat += " · " + fmtInt(n.errors) + " err";
      const g = svg("g", { class: "node " + state, "data-task": n.name, transform: "translate(" + n.x + "," + n.y + ")" },
        svg("title", { text: n.name + ": " + stat }),
        svg("rect", { width: n.w, height: n.h, rx: 8, fill, stroke }),
        svg("text", { x: 12, y: 19, "font-weight": 600, text: n.name }),
        svg("text", { class: "stat", x: 12, y: 36, text: stat }));
      parts.push(g);
    }
    node.replaceChildren(...parts);
  }

  function renderCharts(history, now) {
    const f = history.fields || [];
    const col = (key) => f.indexOf(key);
    const pts = history.points || [];
    const series = (key, label, color) => ({ key, name: label, color, points: pts.map((p) => [p[0], p[col(key)]]) });
    const xmax = Math.max(now, pts.length ? pts[pts.length - 1][0] : 0);
    // Show the last 5 minutes at most, at least 30 s, and no empty time before the data.
    const first = pts.length ? pts[0][0] : xmax;
    const opts = { xmin: Math.max(xmax - WINDOW_MS, Math.min(first, xmax - 30 * 1000)), xmax };
    PTChart.lineChart(document.getElementById("chart-rate"), [
      series("read", "read", "#2f6fde"), series("acked", "acked", "#1e8e3e"),
      series("failed", "failed", "#c5221f"), series("deadlettered", "dead-lettered", "#b06000"),
    ], { ...opts, fmt: fmtRate });
    PTChart.lineChart(document.getElementById("chart-latency"), [
      series("latency_p50_ms", "p50", "#2f6fde"), series("latency_p99_ms", "p99", "#8e44ad"),
    ], { ...opts, fmt: (v) => fmtMs(v).replace(" ms", "") });
  }

  function renderCards(d) {
    for (const k of ["read", "acked", "failed", "deadlettered"]) {
      setText("rate-" + k, fmtRate(d.rates[k]));
      setText("total-" + k, fmtInt(d.totals[k]));
    }
    const max = d.settings.max_pending_total || 0;
    setText("inflight", fmtInt(d.totals.inflight) + " / " + fmtInt(max));
    const bar = document.getElementById("inflight-bar");
    const share = max ? Math.min(1, (d.totals.inflight || 0) / max) : 0;
    bar.style.width = (100 * share) + "%";
    bar.classList.toggle("full", share >= 0.95);
    setText("source-lag", fmtInt(d.totals.source_lag) + " / " + fmtInt(d.totals.source_pending));
    setText("source-name", d.source ? d.source.name : "");
    setText("latency", fmtMs(d.latency.p50_ms) + " / " + fmtMs(d.latency.p99_ms));
  }

  function renderTasks(d) {
    const table = document.getElementById("tasks");
    const dist = d.mode === "distributed";
    table.querySelectorAll(".dist").forEach((n) => n.classList.toggle("hidden", !dist));
    const rows = d.tasks.map((t) => {
      const errClass = (t.error_rate || 0) >= 0.1 ? "bad" : ((t.error_rate || 0) > 0 ? "warn" : "");
      const cells = [
        el("td", { text: t.name }),
        el("td", { class: "muted", text: t.kind || "-" }),
        el("td", { class: "num" + (dist && t.workers === 0 ? " bad" : ""), text: t.workers === null || t.workers === undefined ? "-" : fmtInt(t.workers) }),
        el("td", { class: "num", text: fmtRate(t.rate) }),
        el("td", { class: "num handled", text: fmtInt(t.handled) }),
        el("td", { class: "num " + (t.errors ? "bad" : ""), text: fmtInt(t.errors) }),
        el("td", { class: "num " + errClass, text: fmtPct(t.error_rate) }),
        el("td", { class: "num", text: t.p50_ms === null || t.p50_ms === undefined ? "-" : fmtMs(t.p50_ms) }),
        el("td", { class: "num", text: t.p99_ms === null || t.p99_ms === undefined ? "-" : fmtMs(t.p99_ms) }),
        el("td", { class: "num", text: fmtInt(t.queue_depth) }),
      ];
      if (dist) {
        cells.push(el("td", { class: "num", text: fmtInt(t.stream_waiting) }));
        cells.push(el("td", { class: "num", text: fmtInt(t.stream_pending) }));
      }
      return el("tr", { "data-task": t.name }, ...cells);
    });
    table.querySelector("tbody").replaceChildren(...rows);
  }

  function stateCell(alive, final) {
    const s = alive ? "running" : (final ? "stopped" : "stale");
    const b = el("span", { class: "badge " + s, text: alive ? "live" : s });
    return el("td", {}, b);
  }

  function renderMembers(d) {
    const inst = d.instances.map((i) => el("tr", {},
      el("td", { text: i.name }), stateCell(i.alive, i.final), el("td", { text: i.host || "-" }),
      el("td", { class: "num", text: i.pid || "-" }), el("td", { class: "num", text: fmtInt(i.read) }),
      el("td", { class: "num", text: fmtInt(i.acked) }),
      el("td", { text: fmtInt(i.inflight) + " / " + fmtInt(i.max_pending) }),
      el("td", { text: ago(i.last_seen_ms, d.now_ms) })));
    document.querySelector("#instances tbody").replaceChildren(...inst);
    const box = document.getElementById("workers-box");
    box.classList.toggle("hidden", d.mode !== "distributed" && !d.workers.length);
    const workers = d.workers.map((w) => el("tr", {},
      el("td", { text: w.name }), stateCell(w.alive, false), el("td", { text: w.host || "-" }),
      el("td", { text: w.tasks || "-" }), el("td", { class: "num", text: fmtInt(w.handled) }),
      el("td", { class: "num", text: fmtInt(w.errors) }), el("td", { class: "num", text: fmtInt(w.in_hand) }),
      el("td", { text: ago(w.last_seen_ms, d.now_ms) })));
    document.querySelector("#workers tbody").replaceChildren(...workers);
  }

  let failureKey = "";
  function renderFailures(errors) {
    const key = errors.map((e) => e.ms + ":" + e.source_id + ":" + e.attempt).join("|");
    if (key === failureKey) return;
    failureKey = key;
    document.getElementById("no-failures").hidden = errors.length > 0;
    const items = errors.map((e) => {
      const li = el("li", { "data-task": e.task || "" },
        el("div", { class: "head" },
          el("span", { text: fmtDateTime(e.ms) }),
          el("span", { text: "task " + (e.task || "-") }),
          el("span", { text: "message " + e.source_id }),
          el("span", { text: "attempt " + e.attempt }),
          el("span", { text: e.reason }),
          e.instance ? el("span", { text: "instance " + e.instance }) : null),
        el("div", { class: "err", text: e.error_type + (e.message ? ": " + e.message : "") }));
      if (e.traceback) li.append(el("details", {}, el("summary", { text: "traceback" }), el("pre", { text: e.traceback })));
      return li;
    });
    document.getElementById("failures").replaceChildren(...items);
  }

  async function load() {
    const d = await request("GET", api);
    setText("where", d.where);
    setText("updated", "updated " + new Date(d.now_ms).toLocaleTimeString());
    statusBadge(document.getElementById("status"), d.status, d.healthy);
    const live = d.instances.filter((i) => i.alive).length;
    setText("meta", (d.mode || "") + " · " + live + " live instance" + (live === 1 ? "" : "s") +
            (d.settings.failure_policy ? " · failure policy " + d.settings.failure_policy : ""));
    renderCards(d);
    renderGraph(d.graph);
    renderCharts(d.history, d.now_ms);
    renderTasks(d);
    renderMembers(d);
    renderFailures(d.errors);
  }
  every(1000, load);

  /* -- dead letter ------------------------------------------------------------------ */
  const dialog = document.getElementById("confirm");
  let pending = null;
  function confirmThen(text, action) {
    setText("confirm-text", text);
    pending = action;
    dialog.showModal();
  }
  document.getElementById("confirm-cancel").addEventListener("click", () => { pending = null; dialog.close(); });
  document.getElementById("confirm-ok").addEventListener("click", () => {
    const action = pending;
    pending = null;
    dialog.close();
    if (action) action();
  });

  function notice(text, isError) {
    const n = document.getElementById("dl-notice");
    n.textContent = text;
    n.className = "notice" + (isError ? " error" : "");
  }

  async function change(action, selection, what) {
    try {
      const r = await request("POST", api + "/deadletters/" + action, selection);
      if (action === "requeue") {
        let text = "requeued " + r.requeued.length + (r.requeued.length === 1 ? " entry" : " entries");
        if (r.requeued.length) text += " to " + r.requeued[0].to;
        if (r.skipped.length) text += "; skipped " + r.skipped.length + ": " + r.skipped[0].why;
        if (r.missing.length) text += "; " + r.missing.length + " not found (already gone?)";
        notice(text, r.skipped.length > 0 || r.missing.length > 0);
      } else {
        notice("deleted " + r.deleted + (r.deleted === 1 ? " entry" : " entries"), false);
      }
    } catch (err) {
      notice(what + " failed: " + err.message, true);
    }
    refreshLetters();
  }

  let lettersKey = null;
  let writable = false;
  function renderLetters(d) {
    const info = d.dead_letter;
    let text = info ? info.name + (d.total !== null && d.total !== undefined ? " · " + fmtInt(d.total) + " entries" : "") : "";
    if (d.reason) text += (text ? " · " : "") + d.reason;
    if (d.total > d.entries.length) text += " · showing the oldest " + d.entries.length;
    setText("dl-info", text);
    writable = d.writable;
    const nothing = !d.available || !d.entries.length;
    document.getElementById("dl-requeue-all").disabled = !writable || nothing;
    document.getElementById("dl-purge-all").disabled = !writable || nothing;
    document.getElementById("deadletters").classList.toggle("hidden", nothing);
    const key = d.entries.map((e) => e.id).join("|") + "/" + writable;
    if (key === lettersKey) return;
    lettersKey = key;
    const rows = d.entries.map((e) => {
      const first = (e.error || "").split("\n")[0];
      const requeue = el("button", { type: "button", class: "small requeue", disabled: !writable, text: "Requeue",
        onclick: () => confirmThen("Requeue entry " + e.id + " (message " + e.source_id + ") to " + e.source + "?",
                                   () => change("requeue", { ids: [e.id] }, "requeue")) });
      const purge = el("button", { type: "button", class: "small danger purge", disabled: !writable, text: "Purge",
        onclick: () => confirmThen("Delete entry " + e.id + " (message " + e.source_id + ") for good?",
                                   () => change("purge", { ids: [e.id] }, "purge")) });
      return el("tr", { "data-entry": e.id },
        el("td", { text: e.id }), el("td", { text: fmtDateTime(e.last_failure_ms) }),
        el("td", { text: e.task || "-" }), el("td", { class: "num", text: e.attempts }),
        el("td", { class: "wrap", title: e.error, text: first }),
        el("td", { class: "wrap" }, el("code", { text: e.body_preview })),
        el("td", {}, requeue, " ", purge));
    });
    document.querySelector("#deadletters tbody").replaceChildren(...rows);
  }

  const refreshLetters = every(4000, async () => renderLetters(await request("GET", api + "/deadletters?count=50")));
  document.getElementById("dl-requeue-all").addEventListener("click", () =>
    confirmThen("Requeue every entry of the dead letter to its source?", () => change("requeue", { all: true }, "requeue")));
  document.getElementById("dl-purge-all").addEventListener("click", () =>
    confirmThen("Delete every entry of the dead letter for good?", () => change("purge", { all: true }, "purge")));
})();
