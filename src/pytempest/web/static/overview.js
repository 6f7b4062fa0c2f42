/* The overview: one row per topology known to this director. */
"use strict";

(() => {
  const { el, request, fmtInt, fmtRate, setText, every, statusBadge, ago } = PT;
  const body = document.querySelector("#topologies tbody");

  function workersCell(row) {
    const parts = Object.entries(row.workers_by_task || {}).map(([task, n]) =>
      el("span", { class: n === 0 ? "zero" : "", text: task + " " + (n === null || n === undefined ? "-" : n) }));
    const cell = el("td", { class: "wrap" });
    parts.forEach((p, i) => { if (i) cell.append(" · "); cell.append(p); });
    if (row.workers_live) cell.title = row.workers_live + " live worker processes";
    return cell;
  }

  function inflightCell(row) {
    const cell = el("td", { text: fmtInt(row.inflight) + " / " + fmtInt(row.max_pending) });
    if (row.max_pending) {
      const fill = el("div", { class: "fill" });
      fill.style.width = Math.min(100, 100 * (row.inflight || 0) / row.max_pending) + "%";
      cell.append(el("span", { class: "mini" }, fill));
    }
    return cell;
  }

  function render(data) {
    setText("where", data.where);
    setText("updated", "updated " + new Date(data.now_ms).toLocaleTimeString());
    document.getElementById("empty").hidden = data.topologies.length > 0;
    const rows = data.topologies.map((t) => {
      const badge = el("span");
      statusBadge(badge, t.status, t.healthy);
      const failed = t.rates.failed > 0 ? "bad" : "";
      return el("tr", { "data-topology": t.name },
        el("td", {}, el("a", { href: "/topology/" + encodeURIComponent(t.name), text: t.name })),
        el("td", { title: t.written_ms ? "last snapshot " + ago(t.written_ms, data.now_ms) : "" }, badge),
        el("td", { class: "num", text: t.instances_live + " / " + t.instances_total }),
        workersCell(t),
        el("td", { class: "num rate-read", text: fmtRate(t.rates.read) }),
        el("td", { class: "num rate-acked", text: fmtRate(t.rates.acked) }),
        el("td", { class: "num rate-failed " + failed, text: fmtRate(t.rates.failed) }),
        el("td", { class: "num", text: fmtRate(t.rates.deadlettered) }),
        inflightCell(t),
        el("td", { class: "num", text: fmtInt(t.source_lag) }),
        el("td", { class: "num", text: fmtInt(t.source_pending) }),
        el("td", { class: "num" + (t.deadletters ? " warn" : ""), text: fmtInt(t.deadletters) }));
    });
    body.replaceChildren(...rows);
  }

  every(1000, async () => render(await request("GET", "/api/overview")));
})();
