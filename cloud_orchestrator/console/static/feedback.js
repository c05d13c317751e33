/* Feedback: per model and up to two versions over a time range, predictions per class
   over time, the top-1 confidence histogram, latency p50/p99 and error rate, compared
   side by side; hard examples as a gallery when the version's policy allows them.
   Charts are inline SVG drawn here: no chart library. */
"use strict";
(() => {
  const { api, el, when, content, fail } = C;
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const svg = (tag, attrs, ...kids) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const kid of kids.flat(Infinity)) node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return node;
  };
  function lines(series, width, height, id) {
    const names = Object.keys(series);
    const points = names.length ? series[names[0]].length : 0;
    const top = Math.max(1, ...names.flatMap(n => series[n]));
    const x = i => 30 + (i * (width - 40)) / Math.max(1, points - 1);
    const y = v => height - 20 - (v * (height - 30)) / top;
    const paths = names.map((n, k) => svg("polyline", { fill: "none", stroke: COLORS[k % 10], "stroke-width": 1.5, "data-class": n,
      points: series[n].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
    const legend = names.map((n, k) => svg("text", { x: 34 + (k % 5) * 80, y: 12 + Math.floor(k / 5) * 12, fill: COLORS[k % 10], "font-size": 10 }, n));
    return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", id, role: "img", "aria-label": "predictions per class over time" },
      svg("line", { x1: 30, y1: height - 20, x2: width - 10, y2: height - 20, stroke: "#999" }),
      svg("text", { x: 2, y: y(top) + 4, "font-size": 10 }, top), paths, legend);
  }
  function bars(values, width, height, id) {
    const top = Math.max(1, ...values);
    const w = (width - 40) / values.length;
    return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", id, role: "img", "aria-label": "top-1 confidence histogram" },
      values.map((v, i) => {
        const h = (v * (height - 30)) / top;
        return [svg("rect", { x: 30 + i * w + 1, y: height - 20 - h, width: w - 2, height: h, fill: "#1f77b4", "data-count": v }),
          svg("text", { x: 30 + i * w + 2, y: height - 6, "font-size": 9 }, (i / 10).toFixed(1))];
      }).flat(),
      svg("text", { x: 2, y: 14, "font-size": 10 }, top));
  }
  const params = new URLSearchParams(location.search);
  const model = el("select", { id: "model", name: "model" });
  const versionsBox = el("input", { id: "versions", name: "versions", value: params.get("versions") || "", placeholder: "newest two", size: 12 });
  const range = el("select", { id: "range", name: "range" },
    [["0.25", "last 15 minutes"], ["1", "last hour"], ["6", "last 6 hours"], ["24", "last 24 hours"], ["168", "last 7 days"]]
      .map(([h, t]) => el("option", { value: h, selected: (params.get("hours") || "1") === h }, t)));
  const out = el("div", { id: "feedback" });
  content(el("form", { class: "filter", onsubmit: e => { e.preventDefault(); load(); } },
    el("label", { for: "model" }, "Model "), model, " ", el("label", { for: "versions" }, "Versions (A,B) "), versionsBox, " ",
    el("label", { for: "range" }, "Range "), range, " ", el("button", { type: "submit", id: "show" }, "Show")),
    el("p", { id: "message" }), out);
  function column(v) {
    const stats = el("dl", { class: "stats" },
      el("dt", {}, "predictions"), el("dd", { class: "predictions" }, v.predictions),
      el("dt", {}, "error rate"), el("dd", {}, (100 * v.error_rate).toFixed(2) + " % (" + v.errors + ")"),
      el("dt", {}, "latency p50"), el("dd", {}, (v.latency_p50_us / 1000).toFixed(2) + " ms"),
      el("dt", {}, "latency p99"), el("dd", {}, (v.latency_p99_us / 1000).toFixed(2) + " ms"),
      el("dt", {}, "gateways"), el("dd", {}, v.gateways.join(", ") || "-"));
    const gallery = v.hard_examples_allowed
      ? el("div", { class: "gallery", id: "gallery-" + v.version }, v.hard_examples.length ? v.hard_examples.map(x =>
          el("figure", {}, el("img", { src: x.image, alt: `${x.label} ${x.confidence.toFixed(2)}`, width: 64, height: 64 }),
            el("figcaption", {}, `${x.label} ${x.confidence.toFixed(2)} ${x.gateway_id}`))) : "No hard example in this range.")
      : el("p", { class: "hint" }, "This version's policy does not collect hard examples.");
    return el("section", { class: "version", "data-version": v.version }, el("h2", {}, "Version " + v.version), stats,
      el("h3", {}, "Predictions per class"), lines(v.classes, 480, 180, "classes-" + v.version),
      el("h3", {}, "Top-1 confidence"), bars(v.confidence_histogram, 480, 140, "confidence-" + v.version),
      el("h3", {}, "Hard examples"), gallery);
  }
  async function load() {
    if (!model.value) return;
    const hours = Number(range.value);
    const now = Date.now() / 1000;
    const query = new URLSearchParams({ since: now - hours * 3600, until: now + 60 });
    if (versionsBox.value.trim()) query.set("versions", versionsBox.value.trim());
    history.replaceState(null, "", "?" + new URLSearchParams({ model: model.value, versions: versionsBox.value.trim(), hours }));
    try {
      const data = await api("GET", `/api/v1/feedback/${encodeURIComponent(model.value)}?${query}`);
      out.replaceChildren(el("p", {}, `${when(data.since)} to ${when(data.until)}, ${Math.round(data.step_seconds)} s per point`),
        el("div", { class: "compare" }, data.versions.map(column)));
      document.getElementById("message").textContent = "";
    } catch (e) { fail(e); }
  }
  api("GET", "/api/v1/models").then(data => {
    model.replaceChildren(...data.models.map(m => el("option", { value: m.name, selected: m.name === params.get("model") }, m.name)));
    if (!data.models.length) { fail(new Error("No model is published yet.")); return; }
    load();
    setInterval(load, 5000);
  }).catch(fail);
})();
