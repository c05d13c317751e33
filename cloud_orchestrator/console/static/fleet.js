/* Fleet: counts, a label-selector filter (the CLI's syntax), status and drift filters,
   one server-side page of gateways at a time. */
"use strict";
(() => {
  const { api, el, table, ago, content, fail } = C;
  const params = new URLSearchParams(location.search);
  const state = {
    selector: params.get("selector") || "all", status: params.get("status") || "any",
    drift: params.get("drift") === "1", page: Number(params.get("page") || 1),
  };
  const counts = el("div", { id: "counts", class: "counts" });
  const list = el("div", { id: "gateways" });
  const selector = el("input", { id: "selector", name: "selector", value: state.selector, size: 40,
    title: "all, KEY=VALUE, KEY!=VALUE, KEY=A|B, id=gw-1|gw-2; terms joined by commas" });
  const status = el("select", { id: "status", name: "status",
    title: "online: seen recently; offline: a pull gateway not seen; unobserved: a push gateway not contacted recently (dialled only during rollouts)" },
    ["any", "online", "offline", "unobserved"].map(s => el("option", { value: s, selected: s === state.status }, s)));
  const drift = el("input", { id: "drift", type: "checkbox", checked: state.drift });
  const form = el("form", { id: "filter", class: "filter", onsubmit: e => { e.preventDefault(); state.page = 1; load(); } },
    el("label", { for: "selector" }, "Selector "), selector, " ",
    el("label", { for: "status" }, "Status "), status, " ",
    el("label", {}, drift, " version drift only"), " ", el("button", { type: "submit", id: "apply" }, "Filter"));
  content(counts, form, el("p", { id: "message" }), list);

  function cell(model) {
    const text = model.model + " " + (model.running || "-") +
      (model.drift ? " (desired " + model.desired + ")" : "");
    return el("span", { class: model.drift ? "model drift" : "model" }, text);
  }
  function render(data) {
    const c = data.counts;
    counts.replaceChildren(...[["total", "gateways"], ["online", "online"], ["offline", "offline"],
      ["unobserved", "unobserved"], ["push", "push"], ["pull", "pull"], ["drift", "version drift"]]
      .map(([k, name]) => el("div", { class: "count " + k, "data-count": k }, el("b", {}, c[k]), " " + name)));
    const rows = data.gateways.map(g => el("tr", { "data-gateway": g.id, class: g.drift ? "drift" : "" },
      el("td", {}, g.id),
      el("td", {}, el("span", { class: "status " + g.status }, g.status), " ", ago(g.last_seen)),
      el("td", {}, g.mode),
      el("td", {}, Object.entries(g.labels).map(([k, v]) => el("span", { class: "label" }, k + "=" + v))),
      el("td", {}, g.models.map(cell))));
    const pager = el("p", { class: "pager" },
      el("button", { id: "prev", disabled: data.page <= 1, onclick: () => { state.page--; load(); } }, "Previous"),
      ` page ${data.page} of ${data.pages} (${data.matched} shown by the filter, ${data.server_ms} ms) `,
      el("button", { id: "next", disabled: data.page >= data.pages, onclick: () => { state.page++; load(); } }, "Next"));
    list.replaceChildren(table(["Gateway", "Status (last seen)", "Mode", "Labels", "Models: running (desired)"], rows,
      { id: "fleet-table" }), pager);
  }
  async function load() {
    state.selector = selector.value.trim() || "all";
    state.status = status.value;
    state.drift = drift.checked;
    const query = new URLSearchParams({ selector: state.selector, status: state.status, page: state.page, per_page: 50 });
    if (state.drift) query.set("drift", "1");
    history.replaceState(null, "", "?" + query);
    document.getElementById("message").textContent = "";
    try { render(await api("GET", "/api/v1/gateways?" + query)); } catch (e) { fail(e); }
  }
  load();
  setInterval(load, 15000);
})();
